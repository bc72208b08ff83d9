package store

import (
	"encoding/binary"
	"encoding/json"
	"time"
)

// auditLog is one of the memory store's bounded logs, in id order. Each entry is
// held encoded (encodeEntry): one string of about 200 bytes for an approval,
// with no pointers in it for the collector to scan. As AuditEntry values (a
// 352-byte struct and five strings of its own) 3,000 approvals held 2 MB, which
// the collector's headroom doubled in obdcr's peak memory.
type auditLog struct{ entries []heldEntry }

type heldEntry struct {
	id  int64
	rec string
}

func (l *auditLog) len() int       { return len(l.entries) }
func (l *auditLog) id(i int) int64 { return l.entries[i].id }

// at is entry i whole; summary is it without Before and After, which are the
// only parts of a read that allocate (filters look at the rest).
func (l *auditLog) at(i int) AuditEntry { return decodeEntry(l.entries[i].id, l.entries[i].rec, true) }
func (l *auditLog) summary(i int) AuditEntry {
	return decodeEntry(l.entries[i].id, l.entries[i].rec, false)
}

// add appends e, dropping the oldest tenth once over the bound, so that the copy
// is paid once per tenth of the bound, not on every entry.
func (l *auditLog) add(e AuditEntry) {
	l.entries = append(l.entries, heldEntry{id: e.ID, rec: encodeEntry(e)})
	if len(l.entries) > maxMemoryAudit {
		keep := maxMemoryAudit * 9 / 10
		l.entries = append(l.entries[:0:0], l.entries[len(l.entries)-keep:]...)
	}
}

// prune drops entries before t, policy changes kept.
func (l *auditLog) prune(before time.Time) int64 {
	kept := l.entries[:0]
	for _, h := range l.entries {
		if e := decodeEntry(h.id, h.rec, false); e.Kind == KindPolicy || !e.Time.Before(before) {
			kept = append(kept, h)
		}
	}
	n := int64(len(l.entries) - len(kept))
	clear(l.entries[len(kept):])
	l.entries = kept
	return n
}

// entryFields are an entry's strings in their encoded order. Before and After
// are encoded as strings too. A field added to AuditEntry and not here is
// caught by TestHeldEntryKeepsEveryField.
func entryFields(e *AuditEntry) [15]*string {
	return [15]*string{&e.Kind, &e.Profile, &e.SoftwareID, &e.OrgID, &e.ClientID, &e.Outcome, &e.Error, &e.Rule,
		&e.Description, &e.RequestID, &e.Actor, &e.CertThumbprint, &e.ClaimedSoftwareID, &e.ClaimedOrgID, &e.ClaimedClientID}
}

// encodeEntry is e's time (Unix nanoseconds) and then each string field and
// Before and After, each as its length and bytes. The id is held beside it.
func encodeEntry(e AuditEntry) string {
	fields := entryFields(&e)
	n := binary.MaxVarintLen64 + 2*binary.MaxVarintLen64 + len(e.Before) + len(e.After)
	for _, f := range fields {
		n += binary.MaxVarintLen64 + len(*f)
	}
	b := make([]byte, 0, n)
	b = binary.AppendVarint(b, e.Time.UnixNano())
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(*f)))
		b = append(b, *f...)
	}
	for _, raw := range [][]byte{e.Before, e.After} {
		b = binary.AppendUvarint(b, uint64(len(raw)))
		b = append(b, raw...)
	}
	return string(b)
}

// decodeEntry reverses encodeEntry. Its strings share rec's bytes (rec never
// changes), so reading an entry allocates only Before and After, when set.
// Times come back in UTC, as the store writes them. Without raw, Before and
// After are left out.
func decodeEntry(id int64, rec string, raw bool) AuditEntry {
	e := AuditEntry{ID: id}
	r := entryReader{rec: rec}
	e.Time = time.Unix(0, r.varint()).UTC()
	for _, f := range entryFields(&e) {
		*f = r.next()
	}
	if !raw {
		return e
	}
	if s := r.next(); s != "" {
		e.Before = json.RawMessage(s)
	}
	if s := r.next(); s != "" {
		e.After = json.RawMessage(s)
	}
	return e
}

type entryReader struct {
	rec string
	at  int
}

func (r *entryReader) varint() int64 {
	v, n := binary.Varint([]byte(r.rec[r.at:min(len(r.rec), r.at+binary.MaxVarintLen64)]))
	r.at += n
	return v
}

func (r *entryReader) next() string {
	n, k := binary.Uvarint([]byte(r.rec[r.at:min(len(r.rec), r.at+binary.MaxVarintLen64)]))
	r.at += k
	s := r.rec[r.at : r.at+int(n)]
	r.at += int(n)
	return s
}
