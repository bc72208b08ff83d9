package store

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every field of AuditEntry survives the memory store's encoding: the full
// case sets each one by reflection, so a field added to AuditEntry and not to
// entryFields fails here rather than vanishing from the memory store's audit.
func TestHeldEntryKeepsEveryField(t *testing.T) {
	full := AuditEntry{}
	v := reflect.ValueOf(&full).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Kind() == reflect.String:
			f.SetString("value of " + v.Type().Field(i).Name + " ünïcode")
		case f.Type() == reflect.TypeOf(json.RawMessage{}):
			f.SetBytes([]byte(`{"field":"` + v.Type().Field(i).Name + `"}`))
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(time.Date(2026, 12, 7, 23, 30, 1, 123456789, time.UTC)))
		case f.Kind() == reflect.Int64:
			f.SetInt(int64(1000 + i))
		default:
			t.Fatalf("AuditEntry.%s is a %s: teach encodeEntry and this test about it", v.Type().Field(i).Name, f.Type())
		}
	}
	cases := []struct {
		name string
		in   AuditEntry
	}{
		{"every field set", full},
		{"an approval as the service writes it", AuditEntry{ID: 7, Time: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), Kind: KindRegistration,
			Profile: "uk", SoftwareID: "sw", OrgID: "org", ClientID: "c", Outcome: "approved", RequestID: "r", CertThumbprint: "x5t"}},
		{"only a time and an id", AuditEntry{ID: 1, Time: time.Unix(0, 1).UTC()}},
		{"before 1970", AuditEntry{ID: 2, Time: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), Kind: KindPolicy}},
		{"a large after", AuditEntry{ID: 3, Time: time.Unix(1, 0).UTC(), After: json.RawMessage(`"` + strings.Repeat("a", 70_000) + `"`)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var l auditLog
			l.add(c.in)
			if got := l.at(0); !reflect.DeepEqual(got, c.in) {
				t.Errorf("held and read back:\n got %+v\nwant %+v", got, c.in)
			}
			want := c.in
			want.Before, want.After = nil, nil
			if got := l.summary(0); !reflect.DeepEqual(got, want) {
				t.Errorf("summary:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// An approval is held in a few hundred bytes, not the 700 or so of a struct and
// its strings; reading it back allocates nothing but the entry's Before and After.
func TestHeldEntryIsCompact(t *testing.T) {
	e := AuditEntry{ID: 7, Time: time.Now().UTC(), Kind: KindRegistration, Profile: "uk", SoftwareID: "0015800001041REAAY-sw",
		OrgID: "0015800001041REAAY", ClientID: "3f1c6a52-9d7e-4b8a-a0c1-2f9e8d7c6b5a", Outcome: "approved",
		RequestID: "9c1b2a3d4e5f60718293a4b5c6d7e8f9", CertThumbprint: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}
	if n := len(encodeEntry(e)); n > 220 {
		t.Errorf("an approval encodes to %d bytes, want at most 220", n)
	}
	var l auditLog
	l.add(e)
	if a := testing.AllocsPerRun(100, func() { _ = l.summary(0) }); a != 0 {
		t.Errorf("reading an entry's summary allocates %v times", a)
	}
}
