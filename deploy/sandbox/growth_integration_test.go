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
// enough registrations (12) for the kernel's 10 ms CPU ticks to see.
func TestRunGrowth(t *testing.T) {
	env, o := startUnlimited(t)
	res, err := sandbox.RunGrowth(context.Background(), env.Sandbox.Sandbox, sandbox.GrowthConfig{
		ObdcrURL: o.URL, AdminURL: o.AdminURL, AdminToken: testenv.AdminToken, HydraAdmin: env.Hydra.AdminURL,
		Audience: env.Issuer(), TPPs: []int{2, 6}, Count: 60, Concurrency: 4, Prefill: 20}, io.Discard)
	if err != nil {
		t.Fatal(err)
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
