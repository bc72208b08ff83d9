package policy_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
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

// ParseJWS and CheckHeader together refuse every token shape and header that
// RFC 7515, RFC 8725 and FAPI rule out, each with a message naming what is wrong.
// The header is read by the strict reader the claims use, so a parameter sent twice
// is refused, never resolved last-wins (RFC 7515 §4).
func TestParseJWSAndCheckHeader(t *testing.T) {
	b64 := base64.RawURLEncoding.EncodeToString
	token := func(header string) string { return b64([]byte(header)) + "." + b64([]byte(`{"iss":"tpp"}`)) + ".c2ln" }
	allowed := []string{"PS256", "ES256"}
	cases := []struct {
		name   string
		token  string
		parse  string // what ParseJWS's error mentions; "" parses
		header string // what CheckHeader's error mentions; "" passes
	}{
		{"a good header", token(`{"alg":"PS256","kid":"k1","typ":"JWT"}`), "", ""},
		{"b64 true", token(`{"alg":"PS256","kid":"k1","b64":true}`), "", ""},
		{"empty", "  ", "is empty", ""},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, "JSON serialization", ""},
		{"JWE", "a.b.c.d.e", "is a JWE", ""},
		{"two parts", "a.b", "2 parts, want 3", ""},
		{"padded header", base64.URLEncoding.EncodeToString([]byte(`{"alg":"PS256","kid":"k"}`)) + ".e30.c2ln", "header is not base64url without padding", ""},
		{"signature respelled", b64([]byte(`{"alg":"PS256","kid":"k"}`)) + ".e30.c2lnbh", "signature is not base64url", ""},
		{"a line break", b64([]byte(`{"alg":"PS256","kid":"k"}`)) + ".e30.c2\nln", "line break", ""},
		{"a carriage return", b64([]byte(`{"alg":"PS256","kid":"k"}`)) + ".e\r30.c2ln", "line break", ""},
		{"standard base64 payload", b64([]byte(`{"alg":"PS256","kid":"k"}`)) + ".ab+/.c2ln", "payload is not base64url", ""},
		{"signature not base64url", b64([]byte(`{"alg":"PS256","kid":"k"}`)) + ".e30.c2l*", "signature is not base64url", ""},
		{"header an array", token(`["alg"]`), "header is not a JSON object", ""},
		{"header bad JSON", token(`{"alg":"PS256",}`), "not valid JSON", ""},
		{"header data after", token(`{"alg":"PS256"} {}`), "header has data after its JSON object", ""},
		{"alg twice", token(`{"alg":"PS256","kid":"k","alg":"none"}`), "header parameter alg appears more than once", ""},
		{"alg twice, escaped", token(`{"alg":"PS256","kid":"k","\u0061lg":"none"}`), "header parameter alg appears more than once", ""},
		{"alg in two cases", token(`{"alg":"PS256","kid":"k","ALG":"none"}`), "header parameter alg differs from parameter ALG only in case", ""},
		{"alg a number", token(`{"alg":256,"kid":"k"}`), "header parameter alg must be a string", ""},
		{"kid an object", token(`{"alg":"PS256","kid":{}}`), "header parameter kid must be a string", ""},
		{"header deeply nested", token(`{"alg":"PS256","x":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`), "header nests deeper than", ""},
		{"no alg", token(`{"kid":"k"}`), "", "header has no alg"},
		{"alg none", token(`{"alg":"none","kid":"k"}`), "", "alg none is never accepted"},
		{"alg HS256", token(`{"alg":"HS256","kid":"k"}`), "", "symmetric algorithm"},
		{"alg RS256", token(`{"alg":"RS256","kid":"k"}`), "", "header alg RS256 is not allowed; use one of PS256, ES256"},
		{"alg unknown", token(`{"alg":"XY512","kid":"k"}`), "", "header alg XY512 is not allowed"},
		{"jku", token(`{"alg":"PS256","kid":"k","jku":"https://trap/jwks"}`), "", "header jku is not accepted"},
		{"x5u", token(`{"alg":"PS256","kid":"k","x5u":"https://trap/cert"}`), "", "header x5u is not accepted"},
		{"jwk", token(`{"alg":"PS256","kid":"k","jwk":{"kty":"oct","k":"AA"}}`), "", "header jwk is not accepted"},
		{"jwk null", token(`{"alg":"PS256","kid":"k","jwk":null}`), "", "header jwk is not accepted"},
		{"x5c", token(`{"alg":"PS256","kid":"k","x5c":["MII"]}`), "", "header x5c is not accepted"},
		{"crit", token(`{"alg":"PS256","kid":"k","crit":["urn:x","exp"],"urn:x":1}`), "", "does not understand: urn:x, exp"},
		{"crit empty", token(`{"alg":"PS256","kid":"k","crit":[]}`), "", "crit must be a non-empty list"},
		{"crit null", token(`{"alg":"PS256","kid":"k","crit":null}`), "", "crit must be a non-empty list"},
		{"jku null", token(`{"alg":"PS256","kid":"k","jku":null}`), "", "header jku is not accepted"},
		{"alg with a line break", token(`{"alg":"PS\n256","kid":"k"}`), "", `header alg "PS\n256" is not allowed`},
		{"alg long", token(`{"alg":"` + strings.Repeat("A", 500) + `","kid":"k"}`), "", `header alg "` + strings.Repeat("A", 40) + `" is not allowed`},
		{"crit name not ASCII", token(`{"alg":"PS256","kid":"k","crit":["é"]}`), "", `understand: "\u00e9"`},
		{"crit a string", token(`{"alg":"PS256","kid":"k","crit":"urn:x"}`), "", "crit must be a non-empty list"},
		{"b64 false", b64([]byte(`{"alg":"PS256","kid":"k","b64":false}`)) + ".raw payload.c2ln", "", "b64=false is not accepted"},
		{"b64 a string", token(`{"alg":"PS256","kid":"k","b64":"true"}`), "", "b64=false is not accepted"},
		{"no kid", token(`{"alg":"PS256"}`), "", "header has no kid"},
		{"empty kid", token(`{"alg":"PS256","kid":""}`), "", "header has no kid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j, err := policy.ParseJWS([]byte(c.token))
			if c.parse != "" {
				if err == nil || !strings.Contains(err.Error(), c.parse) {
					t.Fatalf("ParseJWS: %v; want it to mention %q", err, c.parse)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseJWS: %v", err)
			}
			err = j.CheckHeader(allowed)
			switch {
			case c.header == "" && err != nil:
				t.Fatalf("CheckHeader refused: %v", err)
			case c.header != "" && (err == nil || !strings.Contains(err.Error(), c.header)):
				t.Fatalf("CheckHeader: %v; want it to mention %q", err, c.header)
			}
		})
	}
}

// ParseJWS reads what jwx reads from a token jwx signed: the same algorithm, key
// id, payload (every length, so every base64 tail) and signature, which verifies.
func TestParseJWSAgreesWithJWX(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.FromRaw(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 8; n++ {
		payload := make([]byte, 40+n)
		_, _ = rand.Read(payload)
		hdr := jws.NewHeaders()
		_ = hdr.Set(jws.KeyIDKey, "k\"1")
		_ = hdr.Set(jws.TypeKey, "JWT")
		raw, err := jws.Sign(payload, jws.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(hdr)))
		if err != nil {
			t.Fatal(err)
		}
		ours, err := policy.ParseJWS(raw)
		if err != nil {
			t.Fatalf("%d bytes: %v", len(payload), err)
		}
		theirs, err := jws.Parse(raw, jws.WithCompact())
		if err != nil {
			t.Fatal(err)
		}
		h := theirs.Signatures()[0].ProtectedHeaders()
		if ours.Alg != h.Algorithm() || ours.KeyID != h.KeyID() || !bytes.Equal(ours.Payload, theirs.Payload()) {
			t.Fatalf("%d bytes: ours %s %q %x; jwx %s %q %x", len(payload), ours.Alg, ours.KeyID, ours.Payload, h.Algorithm(), h.KeyID(), theirs.Payload())
		}
		k := policy.NewPublicKey(pub)
		if err := ours.Verify(&k); err != nil {
			t.Fatalf("%d bytes: %v", len(payload), err)
		}
	}
}
