package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/au"
	"github.com/obdcr/obdcr/policy/policytest"
	"github.com/obdcr/obdcr/policy/uk"
)

func ukFixture(t testing.TB) *policytest.Fixture {
	return policytest.NewFixture(t, sandbox.UK, func(keys policy.TrustStore, replay policy.ReplayCache, jwks string) *policy.Profile {
		return uk.New(uk.Config{DirectoryJWKS: jwks, Keys: keys, Replay: replay})
	})
}

// seeds are real requests and SSAs, and some near misses.
func seeds(f *testing.F, fx *policytest.Fixture) {
	good := fx.Request(f, nil, nil)
	f.Add(good)
	parts := strings.Split(string(good), ".")
	f.Add([]byte(parts[0] + "." + parts[1] + "."))
	f.Add([]byte(strings.Join(parts[:2], ".")))
	ssa, _ := fx.Authority.SSA(fx.TPP, time.Now(), nil)
	f.Add([]byte(ssa))
	f.Add([]byte(`{"payload":"e30","signatures":[]}`))
	f.Add([]byte("a.b.c.d.e"))
}

// Request and SSA parsing: never a panic; a parsed JWS's header check decides.
func FuzzParseJWS(f *testing.F) {
	seeds(f, ukFixture(f))
	f.Fuzz(func(t *testing.T, raw []byte) {
		j, err := policy.ParseJWS(raw)
		if err != nil {
			return
		}
		if err := j.CheckHeader([]string{"PS256", "ES256"}); err == nil {
			if a := j.Alg.String(); a != "PS256" && a != "ES256" {
				t.Fatalf("header check passed alg %q", a)
			}
			if j.KeyID == "" {
				t.Fatal("header check passed without a kid")
			}
			// What obdcr's own reader took from the token, jwx reads alike
			// whenever it parses the token at all.
			if m, err := jws.Parse(raw, jws.WithCompact()); err == nil && len(m.Signatures()) == 1 {
				h := m.Signatures()[0].ProtectedHeaders()
				if h.Algorithm() != j.Alg || h.KeyID() != j.KeyID || !bytes.Equal(m.Payload(), j.Payload) {
					t.Fatalf("obdcr read %s %q %q; jwx %s %q %q", j.Alg, j.KeyID, j.Payload, h.Algorithm(), h.KeyID(), m.Payload())
				}
			}
		}
	})
}

// Claim decoding into every profile's types: never a panic; anything decoded
// survives a round trip.
func FuzzDecodeClaims(f *testing.F) {
	fx := ukFixture(f)
	req, _ := policy.ParseJWS(fx.Request(f, nil, nil))
	f.Add(req.Payload)
	ssa, _ := fx.Authority.SSA(fx.TPP, time.Now(), nil)
	ssaJWS, _ := policy.ParseJWS([]byte(ssa))
	f.Add(ssaJWS.Payload)
	auAuth, _ := sandbox.NewAuthority(sandbox.AU)
	auTPP, _ := sandbox.NewTPP(sandbox.AU, "K", "https://k.example", fx.PKI)
	auSSA, _ := auAuth.SSA(auTPP, time.Now(), nil)
	auJWS, _ := policy.ParseJWS([]byte(auSSA))
	f.Add(auJWS.Payload)
	f.Add([]byte(`{"aud":["a",""],"iat":1.5,"redirect_uris":"https://x","software_roles":"r"}`))
	f.Add([]byte(`{"iss":"a","iss":"b"}`))
	decoders := []func(policy.RawClaims) (*policy.SoftwareStatement, error){
		uk.New(uk.Config{}).DecodeStatement, au.New(au.Config{}).DecodeStatement,
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var rc policy.RequestClaims
		if _, err := policy.DecodeClaims(payload, &rc); err == nil {
			if _, err := json.Marshal(rc); err != nil {
				t.Fatalf("decoded claims do not marshal: %v", err)
			}
		}
		raw, err := policy.ParseClaims(payload)
		if err != nil {
			return
		}
		for _, decode := range decoders {
			st, err := decode(raw)
			if err == nil && st == nil {
				t.Fatal("no statement and no error")
			}
		}
	})
}

// Redirect URI checks: whatever passes is an exact SSA entry, https, with a host,
// no fragment and not localhost.
func FuzzRedirectURIs(f *testing.F) {
	for _, s := range []string{"https://acme.example.com/cb", "http://acme.example.com/cb", "https://localhost/cb",
		"https://acme.example.com/cb#frag", "https://user@acme.example.com/", "https://127.0.0.1/x", "https://[::1]/", "HTTPS://A.EXAMPLE/",
		"https://acme.example.com:443/cb?x=1", "javascript:alert(1)", "https://LOCALHOST./cb", "https://a.localhost/cb", "https://127.1.2.3/", "https://[0:0:0:0:0:0:0:1]/", "https://[::ffff:127.0.0.1]/"} {
		f.Add(s)
	}
	rule := policy.RedirectURIs(policy.RedirectURIPolicy{Max: 20, MaxLength: 256})
	f.Fuzz(func(t *testing.T, uri string) {
		ev := &policy.Evaluation{Statement: &policy.SoftwareStatement{RedirectURIs: []string{uri}}, Granted: policy.ClientMetadata{RedirectURIs: policy.StringList{uri}}}
		if err := rule.Check(context.Background(), ev); err != nil {
			if _, ok := policy.AsError(err); !ok {
				t.Fatalf("not a refusal: %v", err)
			}
			return
		}
		u, err := url.Parse(uri)
		if err != nil || u.Scheme != "https" || u.Host == "" || strings.Contains(uri, "#") || u.User != nil {
			t.Fatalf("passed %q", uri)
		}
		h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		if ip, err := netip.ParseAddr(h); h == "localhost" || strings.HasSuffix(h, ".localhost") || (err == nil && ip.Unmap().IsLoopback()) {
			t.Fatalf("passed a localhost URI %q", uri)
		}
	})
}

// The whole UK chain: never a panic, never an error that is neither a refusal
// nor approval, never a client from something refused.
func FuzzRegister(f *testing.F) {
	fx := ukFixture(f)
	seeds(f, fx)
	f.Fuzz(func(t *testing.T, raw []byte) {
		before := fx.Hydra.Len()
		_, err := fx.Register(raw)
		if err != nil {
			if _, ok := policy.AsError(err); !ok {
				t.Fatalf("not a refusal: %T %v", err, err)
			}
			if fx.Hydra.Len() != before {
				t.Fatal("a refused request created a client")
			}
		}
	})
}
