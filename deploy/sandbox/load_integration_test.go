package sandbox_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
)

// The load tool drives real registrations over mutual TLS through obdcr into a
// real Hydra, then Hydra alone, and reports what each phase cost.
func TestRunLoad(t *testing.T) {
	env, err := testenv.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	o, err := env.StartObdcr(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()

	const count, tpps = 24, 3
	res, err := sandbox.RunLoad(context.Background(), env.Sandbox.Sandbox, sandbox.LoadConfig{
		ObdcrURL: o.URL, AdminURL: o.AdminURL, AdminToken: testenv.AdminToken, HydraAdmin: env.Hydra.AdminURL,
		Audience: env.Issuer(), Concurrency: 4, Count: count, TPPs: tpps, OpenLoopSeconds: 0.5,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]sandbox.Phase{"obdcr + Hydra": res.Obdcr, "Hydra alone": res.Hydra} {
		if p.Count != count || p.Errors != 0 || p.PerSecond <= 0 || p.P50 <= 0 || p.P50 > p.P99 {
			t.Errorf("%s: %+v", name, p)
		}
		if p.CPU.Hydra <= 0 || p.CPU.Load <= 0 {
			t.Errorf("%s: no CPU time read: %+v", name, p.CPU)
		}
	}
	if res.Obdcr.CPU.Obdcr <= 0 {
		t.Errorf("obdcr's CPU time was not read: %+v", res.Obdcr.CPU)
	}
	if want := res.Obdcr.PerSecond / res.Hydra.PerSecond; math.Abs(res.ObdcrOverHydra-want) > 1e-9 {
		t.Errorf("ratio %v, want %v", res.ObdcrOverHydra, want)
	}
	if ol := res.OpenLoop; ol == nil || ol.Obdcr.Sent == 0 || ol.Hydra.Sent == 0 || ol.Obdcr.P99ms <= 0 || ol.Obdcr.P50ms > ol.Obdcr.P99ms ||
		ol.Obdcr.P99ms > ol.Obdcr.P999ms || ol.P99Ratio <= 0 || len(ol.KneeSteps) == 0 {
		t.Errorf("open loop: %+v", ol)
	}
	if res.JWKSFetchesPerRegistration != 0 {
		t.Errorf("JWKS fetched %v times per registration after warm-up", res.JWKSFetchesPerRegistration)
	}

	// Every registration made a client, and so did every create of Hydra alone.
	clients := listClients(t, env.Hydra.AdminURL)
	if made := count + tpps; clients < made+count {
		t.Errorf("Hydra has %d clients, want at least %d", clients, made+count)
	}
	// The run put UK's multiple_registrations back as it found it.
	if multiple(t, o.AdminURL) {
		t.Error("multiple_registrations was left on")
	}
}

func listClients(t *testing.T, hydraAdmin string) int {
	t.Helper()
	res, err := http.Get(hydraAdmin + "/admin/clients?page_size=500")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var list []json.RawMessage
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	return len(list)
}

func multiple(t *testing.T, adminURL string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, adminURL+"/admin/policies", nil)
	req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var policies []struct {
		Profile  string `json:"profile"`
		Settings struct {
			Multiple bool `json:"multiple_registrations"`
		} `json:"settings"`
	}
	if err := json.NewDecoder(res.Body).Decode(&policies); err != nil {
		t.Fatal(err)
	}
	for _, p := range policies {
		if p.Profile == sandbox.UK {
			return p.Settings.Multiple
		}
	}
	t.Fatal("no UK policy")
	return false
}
