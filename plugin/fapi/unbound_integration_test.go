package fapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/plugin"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/uk"
)

// looseJurisdiction is a test-only copy of UK, named xx, whose limits let
// bound_tokens be switched off: no shipped profile's do (FAPI 1.0 Advanced
// and the CDS both require certificate-bound tokens).
type looseJurisdiction struct{}

func (looseJurisdiction) Name() string                { return "xx" }
func (looseJurisdiction) Env() policy.JurisdictionEnv { return &looseEnv{} }

type looseEnv struct {
	SSAJWKSURL string `env:"SSA_JWKS_URL" help:"JWKS that signs the test profile's SSAs"`
}

func (e *looseEnv) Check(bool) error             { return policy.CheckURL("OBDCR_XX_SSA_JWKS_URL", e.SSAJWKSURL) }
func (e *looseEnv) DirectoryJWKS() string        { return e.SSAJWKSURL }
func (e *looseEnv) Offline(directoryJWKS string) { e.SSAJWKSURL = directoryJWKS }
func (e *looseEnv) Build(d policy.JurisdictionDeps) policy.Built {
	p := uk.New(uk.Config{Issuer: "Loose Directory", DirectoryJWKS: e.SSAJWKSURL, Keys: d.Keys, Replay: d.Replay, IDTokenAlg: d.IDTokenAlg})
	p.Name = "xx"
	p.Limits.UnboundTokens = true
	return policy.Built{Profile: p}
}

func putPolicy(t testing.TB, adminURL, adminToken, profile, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, adminURL+"/admin/policies/"+profile, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestUnboundTokensProfile: under a profile whose limits allow it, with
// bound_tokens false, discovery and the 201 say
// tls_client_certificate_bound_access_tokens false (a registration asking for
// true is refused naming it), the token endpoint's tokens are unbound
// (introspection has no cnf; the nginx check and the management API accept
// them over the registered certificate and the check over another), while a
// token the edge never issued is still refused; switched back on, the next
// token is bound and discovery says true again.
func TestUnboundTokensProfile(t *testing.T) {
	var environ map[string]string
	o := startEdgeFor(t, append(plugin.Jurisdictions(), looseJurisdiction{}), func(e map[string]string) {
		e["OBDCR_PROFILES"] = "xx"
		e["OBDCR_XX_SSA_JWKS_URL"] = e["OBDCR_UK_SSA_JWKS_URL"] // the sandbox directory signs its SSAs too
		e["OBDCR_INTROSPECTION_TOKENS"] = "rs:" + introspectionToken
		environ = e
	})
	admin := environ["OBDCR_ADMIN_TOKEN"]
	if st, body := putPolicy(t, o.AdminURL, admin, "xx", `{"settings":{"bound_tokens":false}}`); st != http.StatusOK || !strings.Contains(body, `"bound_tokens":false`) {
		t.Fatalf("bound_tokens false on a profile allowing it: %d %s", st, body)
	}
	if got := readDoc(t).raw["tls_client_certificate_bound_access_tokens"]; got != false {
		t.Fatalf("discovery with every enabled profile unbound: tls_client_certificate_bound_access_tokens %v", got)
	}
	ctx := context.Background()
	tpp, err := env.Sandbox.AddTPP(sandbox.UK, fmt.Sprintf("U%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := sandbox.NewClient(tpp, env.Sandbox.PKI().Pool())
	registerXX := func(bound any) *sandbox.Response {
		now := time.Now()
		ssa, err := env.Sandbox.Authority(sandbox.UK).SSA(tpp, now, func(m map[string]any) { m["iss"] = "Loose Directory" })
		if err != nil {
			t.Fatal(err)
		}
		req, err := tpp.Request(ssa, env.Issuer(), now, func(m map[string]any) {
			if bound != nil {
				m["tls_client_certificate_bound_access_tokens"] = bound
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Register(ctx, o.URL, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := registerXX(true); res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), "tls_client_certificate_bound_access_tokens") {
		t.Fatalf("asking for bound tokens under bound_tokens false: %d %s", res.Status, res.Body)
	}
	res := registerXX(nil)
	if res.Status != http.StatusCreated || res.JSON()["tls_client_certificate_bound_access_tokens"] != false {
		t.Fatalf("the 201 under bound_tokens false: %d %s", res.Status, res.Body)
	}
	clientID := res.JSON()["client_id"].(string)
	cc, _, err := c.Token(ctx, o.URL+"/oauth2/token", clientID, "accounts")
	if err != nil {
		t.Fatalf("client_credentials: %v", err)
	}
	mine, _ := tpp.Transport()
	other, err := env.Sandbox.AddTPP(sandbox.UK, fmt.Sprintf("V%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	theirs, _ := other.Transport()
	if st, in := introspect(t, o.AdminURL, introspectionToken, cc); st != 200 || in["active"] != true || in["cnf"] != nil {
		t.Fatalf("introspection of an unbound token: %d %v", st, in)
	}
	for name, cert := range map[string]*sandbox.Leaf{"its own": mine, "another TPP's": theirs} {
		if st := check(t, o.AdminURL, cc, cert); st != http.StatusNoContent {
			t.Fatalf("check of an unbound token over %s certificate: %d, want 204", name, st)
		}
	}
	if r, err := c.Get(ctx, o.URL, clientID, cc); err != nil || r.Status != http.StatusOK {
		t.Fatalf("management with an unbound token over the registered certificate: %v %+v", err, r)
	}
	if st := check(t, o.AdminURL, "never-issued-by-the-edge", mine); st != http.StatusUnauthorized {
		t.Fatalf("check of a token the edge has no record of: %d", st)
	}

	// Switched back on: the next token is bound, and discovery says so.
	if st, body := putPolicy(t, o.AdminURL, admin, "xx", `{"settings":{"bound_tokens":true}}`); st != http.StatusOK {
		t.Fatalf("bound_tokens true: %d %s", st, body)
	}
	if got := readDoc(t).raw["tls_client_certificate_bound_access_tokens"]; got != true {
		t.Fatalf("discovery with bound_tokens true again: %v", got)
	}
	bound, _, err := c.Token(ctx, o.URL+"/oauth2/token", clientID, "accounts")
	if err != nil {
		t.Fatal(err)
	}
	st, in := introspect(t, o.AdminURL, introspectionToken, bound)
	if cnf, _ := in["cnf"].(map[string]any); st != 200 || cnf["x5t#S256"] != policy.Thumbprint(mine.TLS.Leaf) {
		t.Fatalf("introspection after bound_tokens true: %d %v", st, in)
	}
	if st := check(t, o.AdminURL, bound, theirs); st != http.StatusUnauthorized {
		t.Fatalf("check of a bound token over another certificate: %d", st)
	}
}
