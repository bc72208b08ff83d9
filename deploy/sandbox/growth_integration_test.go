package sandbox_test

import (
	"context"
	"io"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
)

// The growth run at its smallest: it prefills Hydra, grows the TPPs, and reads
// every figure from obdcr's own metrics. Each of its five blocks holds
// enough registrations (12) for the kernel's 10 ms CPU ticks to see. The
// paired comparison's blocks land on their own obdcr each: the reference sees
// the first step's TPPs and nothing else. (Both obdcrs run in this test's
// process, so their CPU figures are the process's; make bench runs them apart.)
func TestRunGrowth(t *testing.T) {
	env, o := startUnlimited(t)
	ref := startAnotherUnlimited(t, env)
	approved := func(adminURL string) float64 {
		v, err := sandbox.MetricSum(adminURL+"/metrics", "obdcr_registrations_total", map[string]string{"outcome": "approved"})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	res, err := sandbox.RunGrowth(context.Background(), env.Sandbox.Sandbox, sandbox.GrowthConfig{
		ObdcrURL: o.URL, AdminURL: o.AdminURL, AdminToken: testenv.AdminToken, HydraAdmin: env.Hydra.AdminURL,
		Audience: env.Issuer(), TPPs: []int{2, 6}, Count: 60, Concurrency: 4, Prefill: 20,
		ReferenceURL: ref.URL, ReferenceAdminURL: ref.AdminURL}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Paired
	if p == nil {
		t.Fatal("no paired comparison with a reference obdcr given")
	}
	if p.SmallTPPs != 2 || p.LargeTPPs != 6 || p.BlockSize != 12 || p.Errors != 0 || len(p.SmallBlocks) != 6 || len(p.LargeBlocks) != 6 ||
		len(p.PairRatios) != 6 || p.Ratio <= 0 || p.CPUMsSmall <= 0 || p.CPUMsLarge <= 0 {
		t.Errorf("paired %+v", p)
	}
	// The reference: its TPPs once each, then its six blocks. The stepped obdcr:
	// each step's TPPs once and its 60, then the large side's six blocks.
	if got, want := approved(ref.AdminURL), float64(2+6*12); got != want {
		t.Errorf("the reference obdcr approved %v registrations, want %v", got, want)
	}
	if got, want := approved(o.AdminURL), float64(2+60+6+60+6*12); got != want {
		t.Errorf("the stepped obdcr approved %v registrations, want %v", got, want)
	}
	if res.Prefilled != 20 || len(res.Steps) != 2 || res.OrgLookupMs <= 0 || res.SoftwareLookup <= 0 {
		t.Fatalf("%+v", res)
	}
	for _, s := range res.Steps {
		if s.Errors != 0 || s.PerSecond <= 0 || s.CPUMsPerRegistration <= 0 || s.PeakRSSMiB <= 0 || s.JWKSCached < float64(s.TPPs) ||
			len(s.CPUMsPerBlock) != 5 || s.CPUMsPerRegistration != s.CPUMsPerBlock[2] {
			t.Errorf("step %+v", s)
		}
	}
}
