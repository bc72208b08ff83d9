package plugin

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/obdcr/obdcr/policy/store"
)

// refusalDigest keeps a flood of like refusals from being written once each: the
// first of a kind in a window is written whole, the rest are counted, and one
// summary entry ("N more refusals like this one") is written when the window
// ends. Refusals are like when the same certificate met the same rule with the
// same answer. The set of kinds tracked is bounded; past it, refusals are counted
// together.
type refusalDigest struct {
	window time.Duration
	max    int

	mu    sync.Mutex
	kinds map[digestKey]*digestCount
}

type digestKey struct {
	kind, profile, outcome, err, rule, cert string
	desc                                    [16]byte // the answer's text, hashed: its length is the caller's choice
}

type digestCount struct {
	first store.AuditEntry // the entry written whole
	since time.Time        // start of its window
	more  int              // like refusals since, not written
}

// overflowKey collects refusals once maxDigestKinds are tracked.
var overflowKey = digestKey{kind: "*"}

const maxDigestKinds = 10_000

func newRefusalDigest(window time.Duration) *refusalDigest {
	return &refusalDigest{window: window, max: maxDigestKinds, kinds: map[digestKey]*digestCount{}}
}

// admit reports whether e is to be written now. Entries that let something
// happen are always written; a refusal only when none like it was in this window.
func (d *refusalDigest) admit(e store.AuditEntry, now time.Time) bool {
	if e.Outcome != "refused" && e.Outcome != "failed" {
		return true
	}
	sum := sha256.Sum256([]byte(e.Description))
	k := digestKey{kind: e.Kind, profile: e.Profile, outcome: e.Outcome, err: e.Error, rule: e.Rule, cert: e.CertThumbprint}
	copy(k.desc[:], sum[:16])
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.kinds[k]; ok {
		c.more++
		return false
	}
	if len(d.kinds) >= d.max {
		k = overflowKey
		if c, ok := d.kinds[k]; ok {
			c.more++
			return false
		}
		e = store.AuditEntry{Kind: e.Kind, Outcome: e.Outcome, Description: "refusals of many kinds at once; not each recorded"}
	}
	d.kinds[k] = &digestCount{first: e, since: now}
	return true
}

// flush returns a summary entry for each kind with refusals not written, and
// forgets the kinds whose window has passed.
func (d *refusalDigest) flush(now time.Time) []store.AuditEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []store.AuditEntry
	for k, c := range d.kinds {
		if now.Sub(c.since) < d.window {
			continue
		}
		if c.more > 0 {
			s := c.first
			s.ID, s.Time, s.RequestID = 0, now.UTC(), ""
			s.Description = fmt.Sprintf("%d more refusals like this one in the %s since %s: %s", c.more, d.window,
				c.since.UTC().Format(time.RFC3339), c.first.Description)
			out = append(out, s)
		}
		delete(d.kinds, k)
	}
	return out
}

// run writes the summaries every window until ctx ends, and once more then.
func (d *refusalDigest) run(ctx context.Context, write func(context.Context, store.AuditEntry) error) {
	t := time.NewTicker(d.window / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, e := range d.flush(now) {
				_ = write(ctx, e.Bounded())
			}
		}
	}
}
