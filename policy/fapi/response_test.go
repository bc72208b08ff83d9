package fapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

func testKeys(t testing.TB) map[string]crypto.Signer {
	t.Helper()
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]crypto.Signer{"PS256": r, "ES256": e}
}

// TestSigningKeyJARM: both algorithms the profiles allow for JARM sign a
// response that verifies with the published key and names its kid.
func TestSigningKeyJARM(t *testing.T) {
	for alg, raw := range testKeys(t) {
		t.Run(alg, func(t *testing.T) {
			k, err := NewSigningKey(raw)
			if err != nil || k.Alg != alg {
				t.Fatalf("NewSigningKey: %v, alg %v", err, k)
			}
			out, err := k.JARM("https://bank.example", "client-1", map[string]string{"code": "c", "state": "s"}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			msg, err := jws.Parse([]byte(out))
			if err != nil {
				t.Fatal(err)
			}
			h := msg.Signatures()[0].ProtectedHeaders()
			if h.KeyID() != k.Public.KeyID() || h.KeyID() == "" || h.Algorithm() != jwa.SignatureAlgorithm(alg) || h.Type() != "JWT" {
				t.Errorf("header kid %q alg %s typ %q; want kid %q alg %s typ JWT", h.KeyID(), h.Algorithm(), h.Type(), k.Public.KeyID(), alg)
			}
			if _, err := jws.Verify([]byte(out), jws.WithKey(jwa.SignatureAlgorithm(alg), k.Public)); err != nil {
				t.Errorf("does not verify with the public key: %v", err)
			}
		})
	}
}

// TestSigningKeyPrecomputed: a PS256 signature does not rebuild the RSA key
// (and recompute its CRT values) from the JWK each time; rebuilding it costs
// dozens of allocations more than the signature itself.
func TestSigningKeyPrecomputed(t *testing.T) {
	k, err := NewSigningKey(testKeys(t)["PS256"])
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iss": "https://bank.example", "aud": "client-1"}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := k.Sign(claims); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > maxSignAllocs {
		t.Errorf("a PS256 signature made %.0f allocations; at most %d without rebuilding the key", allocs, maxSignAllocs)
	}
}

func BenchmarkSigningKey(b *testing.B) {
	for alg, raw := range testKeys(b) {
		k, err := NewSigningKey(raw)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := k.JARM("https://bank.example", "client-1", map[string]string{"code": "c", "state": "s"}, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// maxSignAllocs: about 100 measured for a PS256 signature with the raw key
// kept, 156 when the key was rebuilt from its JWK each time.
const maxSignAllocs = 130
