package fapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/policy"
)

// TestEdgeDiscovery: both listeners serve one document, and it names the
// edge's endpoints and what the edge does (PAR, JARM, S256, RFC 9207).
func TestEdgeDiscovery(t *testing.T) {
	o := startEdge(t, nil)
	doc := readDoc(t).raw
	c := sandbox.NewClientWithCert(nil, env.Sandbox.PKI().Pool(), nil)
	res, err := c.Discovery(context.Background(), o.URL)
	if err != nil {
		t.Fatal(err)
	}
	var tpp map[string]any
	if err := json.Unmarshal(res.Body, &tpp); err != nil || !reflect.DeepEqual(tpp, doc) {
		t.Fatalf("the TPP listener's document differs from the edge's: %v", err)
	}
	aliases, _ := doc["mtls_endpoint_aliases"].(map[string]any)
	want := map[string]any{
		"issuer":                                env.Issuer(),
		"authorization_endpoint":                env.Issuer() + "/oauth2/auth",
		"jwks_uri":                              env.Issuer() + "/.well-known/jwks.json",
		"pushed_authorization_request_endpoint": o.URL + "/oauth2/par",
		"token_endpoint":                        o.URL + "/oauth2/token",
		"require_pushed_authorization_requests": true, // AU is enabled and requires PAR
		"authorization_response_iss_parameter_supported": true,
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	for k, v := range map[string]string{"pushed_authorization_request_endpoint": o.URL + "/oauth2/par",
		"token_endpoint": o.URL + "/oauth2/token", "registration_endpoint": o.URL + "/register"} {
		if aliases[k] != v {
			t.Errorf("mtls_endpoint_aliases.%s = %v, want %s", k, aliases[k], v)
		}
	}
	lists := map[string][]string{
		"code_challenge_methods_supported":           {"S256"},
		"authorization_signing_alg_values_supported": {"ES256"}, // the sandbox's edge key is P-256
	}
	for k, v := range lists {
		if got := strs(doc[k]); !slices.Equal(got, v) {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	for _, m := range []string{"jwt", "query.jwt", "fragment.jwt", "form_post.jwt", "fragment"} {
		if !slices.Contains(strs(doc["response_modes_supported"]), m) {
			t.Errorf("response_modes_supported %v lacks %s", doc["response_modes_supported"], m)
		}
	}
	// An empty response_modes setting allows every mode: the document says so,
	// never an empty list.
	environ, _ := env.EdgeEnviron()
	if st, body := putPolicy(t, o.AdminURL, environ["OBDCR_ADMIN_TOKEN"], "uk", `{"settings":{"response_modes":[]}}`); st != http.StatusOK {
		t.Fatalf("PUT uk response_modes []: %d %s", st, body)
	}
	doc = readDoc(t).raw
	for _, m := range policy.ResponseModes {
		if !slices.Contains(strs(doc["response_modes_supported"]), m) {
			t.Errorf("with UK's response_modes empty, response_modes_supported %v lacks %s", doc["response_modes_supported"], m)
		}
	}
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, s := range l {
		out = append(out, s.(string))
	}
	return out
}
