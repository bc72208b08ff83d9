package plugin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
)

// discovery reads obdcr's published document.
func discovery(t *testing.T, o *testenv.Obdcr) (int, map[string]any) {
	t.Helper()
	res, err := anonymous().Get(o.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var doc map[string]any
	_ = json.NewDecoder(res.Body).Decode(&doc)
	return res.StatusCode, doc
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// universe is every value a DCR client might take from a discovery document,
// for each member the document's promise covers, and how to ask for it.
var universe = []struct {
	member string
	values []string
	ask    func(v string) func(map[string]any)
}{
	{"token_endpoint_auth_methods_supported", []string{"private_key_jwt", "client_secret_basic", "client_secret_post", "client_secret_jwt", "tls_client_auth", "self_signed_tls_client_auth", "none"},
		func(v string) func(map[string]any) {
			return func(m map[string]any) {
				m["token_endpoint_auth_method"] = v
				if v != "private_key_jwt" {
					delete(m, "token_endpoint_auth_signing_alg")
				}
			}
		}},
	{"token_endpoint_auth_signing_alg_values_supported", []string{"PS256", "ES256", "RS256", "HS256", "none", "EdDSA"},
		func(v string) func(map[string]any) {
			return func(m map[string]any) { m["token_endpoint_auth_signing_alg"] = v }
		}},
	{"request_object_signing_alg_values_supported", []string{"PS256", "ES256", "RS256", "HS256", "none"},
		func(v string) func(map[string]any) {
			return func(m map[string]any) { m["request_object_signing_alg"] = v }
		}},
	{"id_token_signing_alg_values_supported", []string{"PS256", "ES256", "RS256", "none"},
		func(v string) func(map[string]any) {
			return func(m map[string]any) { m["id_token_signed_response_alg"] = v }
		}},
	{"response_types_supported", []string{"code id_token", "code", "token", "id_token", "code token", "code id_token token", "none"},
		func(v string) func(map[string]any) {
			return func(m map[string]any) { m["response_types"] = []string{v} }
		}},
	{"grant_types_supported", []string{"authorization_code", "client_credentials", "refresh_token", "implicit", "password"},
		func(v string) func(map[string]any) {
			return func(m map[string]any) {
				m["grant_types"] = slices.Compact([]string{"authorization_code", v})
			}
		}},
}

// What the document lists, /register accepts; what /register refuses for every
// enabled profile, the document does not list.
func TestDiscoveryMatchesRegistration(t *testing.T) {
	o := startObdcr(t, nil)
	// secret methods on too, so the document has more than one method to keep true
	if status, body := adminCall(t, o, http.MethodPut, "/admin/policies/uk", `{"settings":{"multiple_registrations":true,"token_endpoint_auth_methods":["private_key_jwt","client_secret_basic"]}}`); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	status, doc := discovery(t, o)
	if status != http.StatusOK {
		t.Fatalf("discovery: %d %v", status, doc)
	}
	if doc["registration_endpoint"] != o.URL+"/register" || doc["tls_client_certificate_bound_access_tokens"] != false {
		t.Fatalf("registration_endpoint %v, certificate-bound %v", doc["registration_endpoint"], doc["tls_client_certificate_bound_access_tokens"])
	}
	if aliases, _ := doc["mtls_endpoint_aliases"].(map[string]any); aliases["registration_endpoint"] != o.URL+"/register" {
		t.Errorf("mtls_endpoint_aliases %v", doc["mtls_endpoint_aliases"])
	}
	if doc["issuer"] != env.Issuer() || doc["token_endpoint"] != env.Hydra.TokenURL() {
		t.Errorf("Hydra's own members were not kept: issuer %v token_endpoint %v", doc["issuer"], doc["token_endpoint"])
	}
	tpp, c := newTPP(t, sandbox.UK)
	for _, u := range universe {
		advertised := strs(doc[u.member])
		for _, v := range u.values {
			t.Run(u.member+"/"+v, func(t *testing.T) {
				res, err := c.Register(context.Background(), o.URL, request(t, tpp, nil, u.ask(v)))
				if err != nil {
					t.Fatal(err)
				}
				listed := slices.Contains(advertised, v)
				switch {
				case listed && res.Status != http.StatusCreated:
					t.Errorf("listed in %s, refused at /register: %d %s", u.member, res.Status, res.Body)
				case !listed && res.Status == http.StatusCreated:
					t.Errorf("accepted at /register, missing from %s %v", u.member, advertised)
				}
			})
		}
	}
}

// A profile switched off or re-tuned shows in the document within 5 s; AU alone
// lists only what AU accepts.
func TestDiscoveryFollowsThePolicy(t *testing.T) {
	o := startObdcr(t, nil)
	waitFor := func(what string, cond func(doc map[string]any) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, doc := discovery(t, o)
			if cond(doc) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not in the document within 5 s: %v", what, doc)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	adminCall(t, o, http.MethodPut, "/admin/policies/uk", `{"enabled":false}`)
	waitFor("UK off", func(doc map[string]any) bool {
		return strings.Join(strs(doc["response_types_supported"]), ",") == "code" && slices.Contains(strs(doc["scopes_supported"]), "cdr:registration")
	})
	// AU alone: each listed value registers.
	_, doc := discovery(t, o)
	for _, u := range universe {
		for _, v := range strs(doc[u.member]) {
			tpp, c := newTPP(t, sandbox.AU)
			res, _ := c.Register(context.Background(), o.URL, request(t, tpp, nil, u.ask(v)))
			if res.Status != http.StatusCreated {
				t.Errorf("AU alone lists %s %q, and /register refused it: %d %s", u.member, v, res.Status, res.Body)
			}
		}
	}
	adminCall(t, o, http.MethodPut, "/admin/policies/au", `{"settings":{"signing_algs":["PS256"]}}`)
	waitFor("AU PS256 only", func(doc map[string]any) bool {
		return strings.Join(strs(doc["request_object_signing_alg_values_supported"]), ",") == "PS256"
	})
	adminCall(t, o, http.MethodPut, "/admin/policies/au", `{"enabled":false}`)
	waitFor("nothing on", func(doc map[string]any) bool { return len(strs(doc["token_endpoint_auth_methods_supported"])) == 0 })
}

// Cold start with Hydra down: 503. Once read, the document outlives an outage.
func TestDiscoveryWhileHydraIsDown(t *testing.T) {
	h, err := testenv.StartHydra(env.Sandbox.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	cfg := env.Config()
	cfg.HydraAdminURL, cfg.HydraPublicURL, cfg.Issuer = h.AdminURL, h.PublicURL, h.PublicURL
	h.Stop()
	o, err := env.StartObdcr(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()
	if status, doc := discovery(t, o); status != http.StatusServiceUnavailable || doc["error"] != "temporarily_unavailable" {
		t.Fatalf("cold start, Hydra down: %d %v", status, doc)
	}
	if err := h.Restart(); err != nil {
		t.Fatal(err)
	}
	if status, _ := discovery(t, o); status != http.StatusOK {
		t.Fatalf("Hydra up: %d", status)
	}
	h.Stop()
	if status, doc := discovery(t, o); status != http.StatusOK || doc["registration_endpoint"] == nil {
		t.Fatalf("Hydra down after a read: %d %v", status, doc)
	}
}

// obdcr serve runs the setup check at start-up: the test Hydra's own discovery
// still names its own registration endpoint, and obdcr counts that one problem.
func TestSetupProblemsAtStartUp(t *testing.T) {
	var logs syncBuffer
	o, err := env.StartObdcrLogging(env.Config(), &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_setup_problems", nil)
		if err == nil && v == 1 && strings.Contains(logs.String(), `"check":"hydra.discovery"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("obdcr_setup_problems %v (%v); log:\n%s", v, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
