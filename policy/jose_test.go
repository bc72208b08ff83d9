package policy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/obdcr/obdcr/policy"
)

// A TPP's or a directory's JWKS may hold keys FAPI does not allow: too short,
// published for another algorithm or for encryption, or not a public key at all.
// A signature made with such a key never verifies, and the message names the key
// and what is wrong with it.
func TestVerifyRefusesKeysFAPIDoesNotAllow(t *testing.T) {
	rsaKey := func(bits int) *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	strong, other, weak := rsaKey(2048), rsaKey(2048), rsaKey(1024)
	ec256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	public := func(raw any, set map[string]any) jwk.Key {
		k, err := jwk.FromRaw(raw)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range set {
			if err := k.Set(name, v); err != nil {
				t.Fatal(err)
			}
		}
		return k
	}
	sign := func(alg jwa.SignatureAlgorithm, key any) *policy.JWS {
		hdr := jws.NewHeaders()
		_ = hdr.Set(jws.KeyIDKey, "k1")
		raw, err := jws.Sign([]byte(`{"iss":"tpp"}`), jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
		if err != nil {
			t.Fatal(err)
		}
		j, err := policy.ParseJWS(raw)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	cases := []struct {
		name    string
		token   *policy.JWS
		key     jwk.Key
		mention string // "" verifies
	}{
		{"PS256 with its RSA 2048 key", sign(jwa.PS256, strong), public(&strong.PublicKey, nil), ""},
		{"ES256 with its P-256 key", sign(jwa.ES256, ec256), public(&ec256.PublicKey, map[string]any{"alg": "ES256", "use": "sig"}), ""},
		{"RSA 1024", sign(jwa.PS256, weak), public(&weak.PublicKey, nil), "RSA 1024 bits; FAPI requires at least 2048"},
		{"a key published for RS256", sign(jwa.PS256, strong), public(&strong.PublicKey, map[string]any{"alg": "RS256"}), `key "k1" is for RS256, the header says PS256`},
		{"a key published for encryption", sign(jwa.PS256, strong), public(&strong.PublicKey, map[string]any{"use": "enc"}), `has use "enc", not sig`},
		{"a symmetric key", sign(jwa.PS256, strong), public([]byte("0123456789abcdef0123456789abcdef"), nil), "not a public RSA or EC key"},
		{"another TPP's key", sign(jwa.PS256, strong), public(&other.PublicKey, nil), `signature does not verify with key "k1"`},
		{"an EC key for an RSA signature", sign(jwa.PS256, strong), public(&ec256.PublicKey, nil), `signature does not verify with key "k1"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := policy.NewPublicKey(c.key)
			err := c.token.Verify(&key)
			switch {
			case c.mention == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.mention == "":
			case err == nil:
				t.Fatalf("verified; want %q", c.mention)
			case !strings.Contains(err.Error(), c.mention):
				t.Fatalf("error %q; want it to mention %q", err, c.mention)
			}
		})
	}
}
