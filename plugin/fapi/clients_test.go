package fapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/obdcr/obdcr/hydra"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

func newKey(t *testing.T) *pf.SigningKey {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := pf.NewSigningKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestUnshaped: a Hydra client is an edge registration's only when it
// redirects to the callback alone and trusts obdcr's assertion key alone, with
// private_key_jwt in its alg; each way around the edge is named.
func TestUnshaped(t *testing.T) {
	const callback = "https://edge.example" + CallbackPath
	key, other := newKey(t), newKey(t)
	shaped, err := Shape(hydra.Client{ID: "c", RedirectURIs: []string{"https://tpp.example/cb"}, JWKSURI: "https://tpp.example/jwks",
		TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthSigningAlg: "PS256", Metadata: []byte(`{"schema":1}`)}, callback, key.Public, key.Alg)
	if err != nil {
		t.Fatal(err)
	}
	if shaped.ID != "c" || string(shaped.Metadata) != `{"schema":1}` {
		t.Fatalf("Shape lost the client_id or metadata: %+v", shaped)
	}
	withOther, _ := Shape(shaped, callback, other.Public, other.Alg)
	for _, tc := range []struct {
		name   string
		change func(*hydra.Client)
		want   string
	}{
		{"shaped", func(*hydra.Client) {}, ""},
		{"the TPP's redirect URI", func(c *hydra.Client) { c.RedirectURIs = []string{"https://tpp.example/cb"} }, "redirects to URIs other than the edge's callback"},
		{"the callback and another", func(c *hydra.Client) { c.RedirectURIs = append(c.RedirectURIs, "https://tpp.example/cb") }, "redirects to URIs other than the edge's callback"},
		{"the TPP's jwks_uri", func(c *hydra.Client) { c.JWKS, c.JWKSURI = nil, "https://tpp.example/jwks" }, "trusts the keys at its own jwks_uri"},
		{"another key", func(c *hydra.Client) { c.JWKS = withOther.JWKS }, "trusts a key other than obdcr's assertion key"},
		{"no key", func(c *hydra.Client) { c.JWKS = nil }, "trusts a key other than obdcr's assertion key"},
		{"another auth method", func(c *hydra.Client) { c.TokenEndpointAuthMethod = "client_secret_basic" }, "authenticates with client_secret_basic ES256, not private_key_jwt ES256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := shaped
			tc.change(&c)
			got := Unshaped(c, callback, key.Public, key.Alg)
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("a shaped client is said to stray: %q", got)
			case tc.want != "" && (len(got) != 1 || got[0] != tc.want):
				t.Errorf("Unshaped = %q, want [%q]", got, tc.want)
			}
		})
	}
}
