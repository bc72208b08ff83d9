package service

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/obdcr/obdcr/policy/store"
)

// refusalDigest keeps what a TPP can make obdcr write bounded. Refusals are like
// when the same certificate met the same rule with the same error code: the first
// of a kind in a window is written whole, the rest are counted, and one summary
// entry ("N more refusals like this one") is written when the window ends. Nothing
// the caller chose (a kid, a description, a claimed software_id) tells kinds
// apart, so varying it makes no new kind.
//
// Each certificate may have at most budget refusal entries written an hour,
// summaries included; past it, refusals are counted (suppressed) and not written.
// The tables of kinds and of certificates are bounded: past the first, refusals
// are counted together; past the second, the certificate whose hour began
// earliest is forgotten.
type refusalDigest struct {
	window     time.Duration
	max        int // kinds tracked
	budget     int // refusal entries per certificate an hour
	maxCerts   int // certificates whose budget is tracked
	suppressed func(profile string, n int)

	mu    sync.Mutex
	kinds map[digestKey]*digestCount
	certs map[string]*certBudget
}

type digestKey struct{ kind, profile, outcome, err, rule, cert string }

type digestCount struct {
	first store.AuditEntry // the entry written whole
	since time.Time        // start of its window
	more  int              // like refusals since, not written
}

// certBudget is a certificate's refusal entries written in the hour from since.
type certBudget struct {
	since   time.Time
	written int
}

// overflowKey collects refusals once maxDigestKinds are tracked.
var overflowKey = digestKey{kind: "*"}

const (
	maxDigestKinds = 10_000
	maxBudgetCerts = 10_000
	budgetPeriod   = time.Hour
)

// newRefusalDigest: suppressed is told of refusals past a certificate's budget
// (the server counts them in obdcr_audit_refusals_suppressed_total).
func newRefusalDigest(window time.Duration, budget int, suppressed func(profile string, n int)) *refusalDigest {
	return &refusalDigest{window: window, max: maxDigestKinds, budget: budget, maxCerts: maxBudgetCerts, suppressed: suppressed,
		kinds: map[digestKey]*digestCount{}, certs: map[string]*certBudget{}}
}

// admit reports whether e is to be written now. Entries that let something
// happen are always written, and so are the dry runs an admin asks for; a
// refusal only when none like it was in this window and its certificate's
// budget is not spent.
func (d *refusalDigest) admit(e store.AuditEntry, now time.Time) bool {
	if (e.Outcome != "refused" && e.Outcome != "failed") || e.Kind == store.KindDryRun {
		return true
	}
	k := digestKey{kind: e.Kind, profile: e.Profile, outcome: e.Outcome, err: e.Error, rule: e.Rule, cert: e.CertThumbprint}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.kinds[k]; ok {
		c.more++
		return false
	}
	if !d.spend(e.CertThumbprint, now) {
		d.suppressed(e.Profile, 1)
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

// spend takes one entry from cert's budget for the hour, if one is left.
func (d *refusalDigest) spend(cert string, now time.Time) bool {
	b, ok := d.certs[cert]
	if !ok || now.Sub(b.since) >= budgetPeriod {
		if !ok && len(d.certs) >= d.maxCerts {
			d.forgetOldest()
		}
		b = &certBudget{since: now}
		d.certs[cert] = b
	}
	if b.written >= d.budget {
		return false
	}
	b.written++
	return true
}

// forgetOldest drops the certificate whose hour began earliest. A scan, paid only
// when the table is full and a certificate not in it is refused; flush empties
// the table of hours that have passed.
func (d *refusalDigest) forgetOldest() {
	var oldest string
	var at time.Time
	for cert, b := range d.certs {
		if at.IsZero() || b.since.Before(at) {
			oldest, at = cert, b.since
		}
	}
	delete(d.certs, oldest)
}

// flush returns a summary entry for each kind with refusals not written, as far
// as its certificate's budget allows, and forgets the kinds whose window has
// passed and the budgets whose hour has.
func (d *refusalDigest) flush(now time.Time) []store.AuditEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []store.AuditEntry
	for k, c := range d.kinds {
		if now.Sub(c.since) < d.window {
			continue
		}
		delete(d.kinds, k)
		if c.more == 0 {
			continue
		}
		if !d.spend(c.first.CertThumbprint, now) {
			d.suppressed(c.first.Profile, c.more)
			continue
		}
		s := c.first
		s.ID, s.Time, s.RequestID = 0, now.UTC(), ""
		s.Description = fmt.Sprintf("%d more refusals like this one in the %s since %s: %s", c.more, d.window,
			c.since.UTC().Format(time.RFC3339), c.first.Description)
		out = append(out, s)
	}
	for cert, b := range d.certs {
		if now.Sub(b.since) >= budgetPeriod {
			delete(d.certs, cert)
		}
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
