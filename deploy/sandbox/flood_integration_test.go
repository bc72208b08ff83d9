package sandbox_test

import (
	"context"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/plugin"
)

// The load tool's floods, against a real obdcr and Hydra: none grows obdcr's
// request series or its audit. (Its resident memory is bounded where obdcr runs
// alone, as make test runs the built binary; here it shares the test process.)
func TestRunFlood(t *testing.T) {
	env, o := startUnlimited(t)
	want := map[string]string{sandbox.FloodMethods: "405", sandbox.FloodManagement: "401", sandbox.FloodRefusals: "400", sandbox.FloodClaims: "400"}
	for _, mode := range sandbox.FloodModes {
		t.Run(mode, func(t *testing.T) {
			res, err := sandbox.RunFlood(context.Background(), env.Sandbox.Sandbox, sandbox.FloodConfig{
				ObdcrURL: o.URL, AdminURL: o.AdminURL, AdminToken: testenv.AdminToken, Mode: mode, Count: 300, Concurrency: 4})
			if err != nil {
				t.Fatal(err)
			}
			switch mode {
			case sandbox.FloodSignIn: // ten, whatever the count: half multipart (415), half urlencoded (413)
				if res.Requests != 10 || res.Statuses["415"] != 5 || res.Statuses["413"] != 5 {
					t.Errorf("%d requests, statuses %v; want 5 × 415 and 5 × 413", res.Requests, res.Statuses)
				}
			default:
				if res.Statuses[want[mode]] != 300 {
					t.Errorf("statuses %v; want 300 × %s", res.Statuses, want[mode])
				}
			}
			if res.SeriesAfter != res.SeriesBefore || res.AuditAfter != res.AuditBefore {
				t.Errorf("series %d -> %d, audit %d -> %d", res.SeriesBefore, res.SeriesAfter, res.AuditBefore, res.AuditAfter)
			}
			if res.RSSPeakMiB <= 0 {
				t.Errorf("resident memory not read: %+v", res)
			}
		})
	}
}

// startUnlimited is a sandbox, Hydra and obdcr with the rate limit off: the load
// tool stands for many TPPs from one address.
func startUnlimited(t *testing.T) (*testenv.Env, *testenv.Obdcr) {
	t.Helper()
	env, err := testenv.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	return env, startAnotherUnlimited(t, env)
}

// startAnotherUnlimited starts an obdcr of its own (its own store) on env, rate limit off.
func startAnotherUnlimited(t *testing.T, env *testenv.Env) *testenv.Obdcr {
	t.Helper()
	cfg := env.Config()
	cfg.TPPRateLimit = plugin.Rate{}
	o, err := env.StartObdcr(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Stop() })
	return o
}
