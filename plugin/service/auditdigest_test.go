package service

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// digestRun drives a digest as the server does: admit on each refusal, flush
// every quarter window (run's ticker). It totals what was written and counted.
type digestRun struct {
	d          *refusalDigest
	now        time.Time
	lastFlush  time.Time
	written    []store.AuditEntry
	suppressed int
}

func newDigestRun(t *testing.T, budget int, start time.Time) *digestRun {
	r := &digestRun{now: start, lastFlush: start}
	r.d = newRefusalDigest(time.Minute, budget, func(profile string, n int) {
		if profile != "uk" {
			t.Errorf("suppressed counted under profile %q", profile)
		}
		r.suppressed += n
	})
	return r
}

func (r *digestRun) refuse(e store.AuditEntry, gap time.Duration) {
	r.advance(gap)
	e.Time = r.now
	if e = e.Bounded(); r.d.admit(e, e.Time) {
		r.written = append(r.written, e)
	}
}

func (r *digestRun) advance(gap time.Duration) {
	r.now = r.now.Add(gap)
	for r.now.Sub(r.lastFlush) >= r.d.window/4 {
		r.lastFlush = r.lastFlush.Add(r.d.window / 4)
		r.written = append(r.written, r.d.flush(r.lastFlush)...)
	}
}

// drain runs the clock on until every window still open has been flushed.
func (r *digestRun) drain() { r.advance(r.d.window + r.d.window/4) }

func (r *digestRun) bytes(t *testing.T) int {
	n := 0
	for _, e := range r.written {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		n += len(b)
	}
	return n
}

// accounted: every refusal is written, summarised in a written entry or counted.
func (r *digestRun) accounted(t *testing.T) int {
	n := r.suppressed
	for _, e := range r.written {
		var more int
		if _, err := fmt.Sscanf(e.Description, "%d more refusals like this one", &more); err == nil {
			n += more
		} else {
			n++
		}
	}
	return n
}

func testCertificate(t *testing.T) *x509.Certificate {
	t.Helper()
	pki, err := sandbox.NewPKI("digest test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.Client(pkix.Name{CommonName: "tpp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return leaf.TLS.Leaf
}

// kidRefusal is the refusal the SSA rule gives a kid the directory does not
// have, as the register handler audits it: everything the caller chose varies.
func kidRefusal(cert *x509.Certificate, i int) store.AuditEntry {
	err := policy.Refuse(policy.InvalidSoftwareStatement, "software_statement", "kid %q is not a signing key of the directory (%s)",
		fmt.Sprintf("kid-%06d-%x", i, i*7919), "https://directory.example/jwks")
	err.Rule = "software_statement.signature"
	tr := policy.Trace{Profile: "uk", SoftwareID: fmt.Sprintf("claimed-%d", i), OrgID: fmt.Sprintf("org-%d", i)}
	return decisionEntry(store.KindRegistration, tr, nil, cert, err)
}

// The review's flood: 1,000 refusals from one certificate, each with a fresh kid
// (and claimed software_id), at 19/s, just under the default rate limit. The
// audit grows by at most the budget, and every refusal is still accounted for.
// Before, the description (holding the kid) was part of the key: 1,000 entries.
func TestRefusalDigestVariedKidFlood(t *testing.T) {
	cert := testCertificate(t)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, budget := range []int{60, 5, 1} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			r := newDigestRun(t, budget, start)
			for i := range 1000 {
				r.refuse(kidRefusal(cert, i), time.Second/19)
			}
			r.drain()
			if len(r.written) > budget || len(r.written) == 0 {
				t.Fatalf("%d entries written for 1,000 varied refusals; want 1 to %d", len(r.written), budget)
			}
			if got := r.accounted(t); got != 1000 {
				t.Fatalf("%d of 1,000 refusals written, summarised or counted", got)
			}
			t.Logf("budget %d: %d entries, %d bytes of entry JSON per 1,000 varied refusals", budget, len(r.written), r.bytes(t))
		})
	}
}

// Refusals varied across every rule and error code a certificate can meet, for
// three hours: at most the budget is written each hour, the rest is counted, and
// another certificate's budget is its own.
func TestRefusalDigestBudgetPerCertificateHour(t *testing.T) {
	certs := []*x509.Certificate{testCertificate(t), testCertificate(t)}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const budget = 60
	r := newDigestRun(t, budget, start)
	perHour := map[string]map[int]int{}
	total := 0
	for i := 0; r.now.Before(start.Add(3 * time.Hour)); i++ {
		cert := certs[i%2]
		e := kidRefusal(cert, i)
		e.Rule, e.Error = fmt.Sprintf("rule.%d", i%97), fmt.Sprintf("code_%d", i%13)
		r.refuse(e, time.Second/2)
		total++
	}
	r.drain()
	for _, e := range r.written {
		if perHour[e.CertThumbprint] == nil {
			perHour[e.CertThumbprint] = map[int]int{}
		}
		perHour[e.CertThumbprint][int(e.Time.Sub(start)/budgetPeriod)]++
	}
	if len(perHour) != 2 {
		t.Fatalf("entries of %d certificates; want both", len(perHour))
	}
	for cert, hours := range perHour {
		for h, n := range hours {
			if n > budget {
				t.Errorf("certificate %.8s: %d entries in hour %d; budget %d", cert, n, h, budget)
			}
		}
		if len(hours) < 3 {
			t.Errorf("certificate %.8s: entries in %d hours; the budget did not come back each hour", cert, len(hours))
		}
	}
	if r.suppressed == 0 {
		t.Fatal("nothing counted as suppressed")
	}
	if got := r.accounted(t); got != total {
		t.Fatalf("%d of %d refusals written, summarised or counted", got, total)
	}
}

// The table of budgets is bounded: certificates past it forget the oldest.
func TestRefusalDigestBudgetTableBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := newRefusalDigest(time.Minute, 1, func(string, int) {})
	d.maxCerts = 50
	for i := range 1000 {
		e := store.AuditEntry{Kind: store.KindRegistration, Outcome: "refused", Error: "invalid_software_statement",
			CertThumbprint: fmt.Sprintf("%064d", i)}
		if !d.admit(e, now.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("certificate %d's first refusal was not written", i)
		}
		if len(d.certs) > d.maxCerts {
			t.Fatalf("%d budgets tracked; bound %d", len(d.certs), d.maxCerts)
		}
	}
	if _, ok := d.certs[fmt.Sprintf("%064d", 0)]; ok {
		t.Fatal("the oldest budget was kept")
	}
	if _, ok := d.certs[fmt.Sprintf("%064d", 999)]; !ok {
		t.Fatal("the newest budget was forgotten")
	}
	if d.flush(now.Add(2 * budgetPeriod)); len(d.certs) != 0 {
		t.Fatalf("%d budgets kept after their hour", len(d.certs))
	}
}

// Approvals and an admin's dry runs are never held back, whatever the budget.
func TestRefusalDigestWritesWhatIsNotATPPRefusal(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := newRefusalDigest(time.Minute, 0, func(string, int) {})
	for _, e := range []store.AuditEntry{
		{Kind: store.KindRegistration, Outcome: "approved", CertThumbprint: "a"},
		{Kind: store.KindManagement, Outcome: "updated", CertThumbprint: "a"},
		{Kind: store.KindManagement, Outcome: "deleted", CertThumbprint: "a"},
		{Kind: store.KindDryRun, Outcome: "refused", Actor: "alice", Error: "invalid_redirect_uri"},
		{Kind: store.KindDryRun, Outcome: "refused", Actor: "alice", Error: "invalid_redirect_uri"},
	} {
		if !d.admit(e, now) {
			t.Errorf("held back: %+v", e)
		}
	}
	if d.admit(store.AuditEntry{Kind: store.KindRegistration, Outcome: "refused", CertThumbprint: "a"}, now) {
		t.Error("a refusal was written with a budget of 0")
	}
}

func TestRefusalDigest(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	refusal := func(cert, desc string) store.AuditEntry {
		return store.AuditEntry{Kind: store.KindManagement, Outcome: "refused", Error: "invalid_token", CertThumbprint: cert, Description: desc}
	}
	unlimited := func() *refusalDigest { return newRefusalDigest(time.Minute, 1<<30, func(string, int) {}) }
	d := unlimited()
	if !d.admit(refusal("a", "x"), now) {
		t.Fatal("the first refusal of its kind was not written")
	}
	for range 1000 {
		if d.admit(refusal("a", "x"), now.Add(time.Second)) {
			t.Fatal("a like refusal in the same window was written")
		}
	}
	other := refusal("a", "x")
	other.Error = "invalid_request"
	if !d.admit(refusal("b", "x"), now) || !d.admit(other, now) {
		t.Fatal("a refusal of another certificate or error code was held back")
	}
	if !d.admit(store.AuditEntry{Kind: store.KindRegistration, Outcome: "approved"}, now) {
		t.Fatal("an approval was held back")
	}
	if got := d.flush(now.Add(30 * time.Second)); len(got) != 0 {
		t.Fatalf("summaries before the window ended: %v", got)
	}
	got := d.flush(now.Add(time.Minute))
	if len(got) != 1 || !strings.HasPrefix(got[0].Description, "1000 more refusals like this one") || got[0].CertThumbprint != "a" {
		t.Fatalf("summaries %+v", got)
	}
	if !d.admit(refusal("a", "x"), now.Add(time.Minute)) {
		t.Fatal("a refusal after its window was not written")
	}
	// Kinds are bounded: past the bound, refusals are counted together.
	d = unlimited()
	d.max = 10
	written := 0
	for i := range 1000 {
		if d.admit(refusal(strings.Repeat("c", i%50+1), "x"), now) {
			written++
		}
	}
	if written != 11 || len(d.kinds) != 11 {
		t.Fatalf("%d written, %d kinds tracked; want 11 and 11", written, len(d.kinds))
	}
}
