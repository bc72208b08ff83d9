package plugin_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/cert"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/plugin/view"
)

// sign signs payload with key under alg with extra protected headers, as an attacker would.
func sign(t *testing.T, alg jwa.SignatureAlgorithm, key any, payload []byte, headers map[string]any) string {
	t.Helper()
	h := jws.NewHeaders()
	for k, v := range headers {
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func b64url(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestHostileJOSE(t *testing.T) {
	o := startObdcr(t, nil)
	var fetched atomic.Int32
	trap := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fetched.Add(1) }))
	defer trap.Close()

	tpp, c := newTPP(t, sandbox.UK)
	now := time.Now()
	ssa, _ := env.Sandbox.Directory.SSA(tpp, now, nil)
	claims := tpp.RequestClaims(ssa, env.Issuer(), now)
	payload, _ := json.Marshal(claims)
	var rsaKey any
	_ = tpp.Signing.Private.Raw(&rsaKey)
	pub := tpp.Signing.Public()
	var rawPub any
	_ = pub.Raw(&rawPub)
	pubDER, _ := x509.MarshalPKIXPublicKey(rawPub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	leaf, _ := tpp.Transport()
	kid := map[string]any{"kid": tpp.Signing.KID}
	with := func(extra map[string]any) map[string]any {
		h := map[string]any{"kid": tpp.Signing.KID}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	ssaWith := func(extra map[string]any) string {
		h := map[string]any{"kid": env.Sandbox.Directory.Key.KID}
		for k, v := range extra {
			h[k] = v
		}
		var dk any
		_ = env.Sandbox.Directory.Key.Private.Raw(&dk)
		p, _ := json.Marshal(env.Sandbox.Directory.SSAClaims(tpp, now))
		return sign(t, jwa.PS256, dk, p, h)
	}
	withSSA := func(s string) []byte {
		m := tpp.RequestClaims(s, env.Issuer(), now)
		b, _ := json.Marshal(m)
		return b
	}
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	nestedPayload, _ := json.Marshal(map[string]any{"x": 1})
	manyURIs := make([]string, 500)
	for i := range manyURIs {
		manyURIs[i] = "https://acme.example.com/cb" + strings.Repeat("x", i%7)
	}

	cases := []struct {
		name string
		body string
		code string
	}{
		{"request alg none", "eyJhbGciOiJub25lIiwia2lkIjoiayJ9." + b64url(claims) + ".", "invalid_client_metadata"},
		{"request HS256 with the public key as secret", sign(t, jwa.HS256, pubPEM, payload, kid), "invalid_client_metadata"},
		{"request RS256 where PS256 is wanted", sign(t, jwa.RS256, rsaKey, payload, kid), "invalid_client_metadata"},
		{"request jku", sign(t, jwa.PS256, rsaKey, payload, with(map[string]any{"jku": trap.URL + "/jwks"})), "invalid_client_metadata"},
		{"request x5u", sign(t, jwa.PS256, rsaKey, payload, with(map[string]any{"x5u": trap.URL + "/cert"})), "invalid_client_metadata"},
		{"request jwk", sign(t, jwa.PS256, rsaKey, payload, with(map[string]any{"jwk": pub})), "invalid_client_metadata"},
		{"request x5c", sign(t, jwa.PS256, rsaKey, payload, with(map[string]any{"x5c": x5c(leaf.TLS.Leaf.Raw)})), "invalid_client_metadata"},
		{"request unknown crit", sign(t, jwa.PS256, rsaKey, payload, with(map[string]any{"crit": []string{"urn:x"}, "urn:x": true})), "invalid_client_metadata"},
		{"SSA alg none", tppSign(t, tpp, withSSA("eyJhbGciOiJub25lIiwia2lkIjoiayJ9."+b64url(env.Sandbox.Directory.SSAClaims(tpp, now))+".")), "invalid_software_statement"},
		{"SSA jku", tppSign(t, tpp, withSSA(ssaWith(map[string]any{"jku": trap.URL + "/jwks"}))), "invalid_software_statement"},
		{"SSA signed by the TPP", tppSign(t, tpp, withSSA(mustSign(t, tpp.Signing, env.Sandbox.Directory.SSAClaims(tpp, now)))), "invalid_software_statement"},
		{"nested JWT as the payload", sign(t, jwa.PS256, rsaKey, []byte(`"`+mustSign(t, tpp.Signing, map[string]any{"x": 1})+`"`), with(map[string]any{"cty": "JWT"})), "invalid_client_metadata"},
		{"JWE", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", "invalid_client_metadata"},
		{"JSON serialization", `{"payload":"` + base64.RawURLEncoding.EncodeToString(payload) + `","signatures":[]}`, "invalid_client_metadata"},
		{"duplicate claims", sign(t, jwa.PS256, rsaKey, []byte(strings.Replace(string(payload), `{`, `{"iss":"evil",`, 1)), kid), "invalid_client_metadata"},
		{"non-UTF-8", sign(t, jwa.PS256, rsaKey, append(append([]byte(`{"iss":"`), 0xff, 0xfe), []byte(`"}`)...), kid), "invalid_client_metadata"},
		{"deeply nested JSON", sign(t, jwa.PS256, rsaKey, []byte(`{"x":`+deep+`}`), kid), "invalid_client_metadata"},
		{"payload an array", sign(t, jwa.PS256, rsaKey, []byte(`[1,2]`), kid), "invalid_client_metadata"},
		{"payload a string", sign(t, jwa.PS256, rsaKey, nestedPayload[:0], kid), "invalid_client_metadata"},
		{"500 redirect URIs", tppSign(t, tpp, mutated(claims, "redirect_uris", manyURIs)), "invalid_redirect_uri"},
		{"a huge claim", tppSign(t, tpp, mutated(claims, "client_name", strings.Repeat("n", 40<<10))), ""},
		{"whitespace", "   ", "invalid_client_metadata"},
		{"three empty parts", "..", "invalid_client_metadata"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.Register(context.Background(), o.URL, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status >= 500 {
				t.Fatalf("%d: %s", res.Status, res.Body)
			}
			if tc.code == "" {
				if res.Status != 400 && res.Status != 201 {
					t.Fatalf("%d %s", res.Status, res.Body)
				}
				return
			}
			if res.Status != 400 || res.JSON()["error"] != tc.code {
				t.Fatalf("got %d %s, want 400 %s", res.Status, res.Body, tc.code)
			}
			// RFC 6749 §5.2's characters only, whatever the message quotes.
			if d, _ := res.JSON()["error_description"].(string); d == "" || d != view.OAuthText(d) {
				t.Fatalf("error_description %q is empty or has characters RFC 6749 does not allow", d)
			}
		})
	}
	if n := fetched.Load(); n != 0 {
		t.Fatalf("a URL named in a header was fetched %d times", n)
	}
}

func mustSign(t *testing.T, k *sandbox.Key, claims map[string]any) string {
	t.Helper()
	s, err := k.Sign(claims, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tppSign(t *testing.T, tpp *sandbox.TPP, payload []byte) string {
	t.Helper()
	s, err := tpp.Signing.SignPayload(payload, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mutated(claims map[string]any, k string, v any) []byte {
	m := map[string]any{}
	for key, val := range claims {
		m[key] = val
	}
	m[k] = v
	b, _ := json.Marshal(m)
	return b
}

func x5c(der []byte) *cert.Chain {
	var c cert.Chain
	_ = c.AddString(base64.StdEncoding.EncodeToString(der))
	return &c
}
