package plugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/plugin"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/uk"
)

// A fourth jurisdiction, wholly in this file: a copy of UK under the name xx,
// selected by another SSA issuer. It plugs into obdcr with no edit anywhere
// else, only by being in the list obdcr reads its configuration for.
type testJurisdiction struct{}

func (testJurisdiction) Name() string                { return "xx" }
func (testJurisdiction) Env() policy.JurisdictionEnv { return &testEnv{} }

type testEnv struct {
	SSAIssuer  string `env:"SSA_ISSUER" envDefault:"Test Directory" help:"SSA iss that selects the test profile"`
	SSAJWKSURL string `env:"SSA_JWKS_URL" help:"JWKS that signs the test profile's SSAs"`
}

func (e *testEnv) Check(enabled bool) error {
	if enabled && e.SSAJWKSURL == "" {
		return errors.New("OBDCR_XX_SSA_JWKS_URL: required when the xx profile is enabled")
	}
	return policy.CheckURL("OBDCR_XX_SSA_JWKS_URL", e.SSAJWKSURL)
}
func (e *testEnv) DirectoryJWKS() string        { return e.SSAJWKSURL }
func (e *testEnv) Offline(directoryJWKS string) { e.SSAJWKSURL = directoryJWKS }
func (e *testEnv) Build(d policy.JurisdictionDeps) policy.Built {
	p := uk.New(uk.Config{Issuer: e.SSAIssuer, DirectoryJWKS: e.SSAJWKSURL, Keys: d.Keys, Replay: d.Replay, IDTokenAlg: d.IDTokenAlg})
	p.Name = "xx"
	return policy.Built{Profile: p}
}

func TestAFourthJurisdictionPlugsIn(t *testing.T) {
	js := append(plugin.Jurisdictions(), testJurisdiction{})
	environ := env.Environ()
	environ["OBDCR_PROFILES"] = "uk,au,xx"
	environ["OBDCR_XX_SSA_JWKS_URL"] = environ["OBDCR_UK_SSA_JWKS_URL"] // the sandbox directory signs its SSAs too
	cfg, err := plugin.LoadConfigFor(environ, js)
	if err != nil {
		t.Fatal(err)
	}
	// Its variables are read, listed and checked like any other's.
	var names []string
	for _, v := range plugin.VariablesFor(js) {
		names = append(names, v.Name)
	}
	if !slices.Contains(names, "OBDCR_XX_SSA_ISSUER") || !slices.Contains(names, "OBDCR_XX_SSA_JWKS_URL") {
		t.Fatalf("its variables are not listed: %v", names)
	}
	bad := env.Environ()
	bad["OBDCR_PROFILES"] = "uk,xx"
	if _, err := plugin.LoadConfigFor(bad, js); err == nil || err.Error() != "OBDCR_XX_SSA_JWKS_URL: required when the xx profile is enabled" {
		t.Fatalf("its own check did not run: %v", err)
	}
	if _, err := plugin.LoadConfig(bad); err == nil {
		t.Fatal("a build without it accepted OBDCR_PROFILES=xx")
	}

	o, err := env.StartObdcr(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Stop() })
	// A TPP whose SSA names the test directory registers under xx.
	tpp, c := newTPP(t, sandbox.UK)
	res, err := c.Register(context.Background(), o.URL, request(t, tpp, func(ssa map[string]any) { ssa["iss"] = "Test Directory" }, nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusCreated || res.JSON()["client_id"] != clientIDFor("xx", tpp.SoftwareID) {
		t.Fatalf("status %d: %s", res.Status, res.Body)
	}
	// The admin API lists it, enabled.
	status, body := adminCall(t, o, http.MethodGet, "/admin/policies", "")
	var views []struct {
		Profile string `json:"profile"`
		Enabled bool   `json:"enabled"`
	}
	if err := json.Unmarshal(body, &views); err != nil || status != http.StatusOK {
		t.Fatalf("GET /admin/policies: %d %s", status, body)
	}
	if i := slices.IndexFunc(views, func(v struct {
		Profile string `json:"profile"`
		Enabled bool   `json:"enabled"`
	}) bool {
		return v.Profile == "xx"
	}); i < 0 || !views[i].Enabled {
		t.Fatalf("GET /admin/policies: %s", body)
	}
	if n, err := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_registrations_total", map[string]string{"profile": "xx", "outcome": "approved"}); err != nil || n != 1 {
		t.Fatalf("obdcr_registrations_total for xx: %v %v", n, err)
	}
}
