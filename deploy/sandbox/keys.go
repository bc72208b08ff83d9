// Package sandbox is a local UK Open Banking Directory, AU CDR Register and TPP
// simulator: it issues keys, certificates, SSAs and signed registration requests,
// and serves the JWKS and status endpoints a real directory would. The demo, the
// tests and TPP developers use it.
package sandbox

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Key is a signing key with its kid and algorithm.
type Key struct {
	KID     string
	Alg     jwa.SignatureAlgorithm
	Private jwk.Key
}

// NewKey makes a PS256 (RSA 2048) or ES256 (P-256) key.
func NewKey(alg, kid string) (*Key, error) {
	var raw crypto.Signer
	var err error
	switch alg {
	case "PS256", "RS256":
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("sandbox: no key type for %s", alg)
	}
	if err != nil {
		return nil, err
	}
	return keyFromRaw(raw, alg, kid)
}

func keyFromRaw(raw any, alg, kid string) (*Key, error) {
	k, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, err
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	_ = k.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(alg))
	_ = k.Set(jwk.KeyUsageKey, jwk.ForSignature)
	return &Key{KID: kid, Alg: jwa.SignatureAlgorithm(alg), Private: k}, nil
}

// Public is the key as published in a JWKS.
func (k *Key) Public() jwk.Key {
	pub, _ := k.Private.PublicKey()
	return pub
}

// Signer returns the raw crypto.Signer (for TLS and client assertions).
func (k *Key) Signer() crypto.Signer {
	var raw any
	_ = k.Private.Raw(&raw)
	return raw.(crypto.Signer)
}

// Sign signs claims as a compact JWS with typ JWT and this kid. headers adds or
// overrides protected headers; a test uses it to try hostile ones.
func (k *Key) Sign(claims map[string]any, headers map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return k.SignPayload(payload, headers)
}

// SignPayload signs bytes as they are (tests use it for malformed claims).
func (k *Key) SignPayload(payload []byte, headers map[string]any) (string, error) {
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "JWT")
	_ = h.Set(jws.KeyIDKey, k.KID)
	for name, v := range headers {
		if err := h.Set(name, v); err != nil {
			return "", err
		}
	}
	var raw any
	if err := k.Private.Raw(&raw); err != nil {
		return "", err
	}
	out, err := jws.Sign(payload, jws.WithKey(k.Alg, raw, jws.WithProtectedHeaders(h)))
	return string(out), err
}

// MarshalJSON stores the private key as a JWK.
func (k *Key) MarshalJSON() ([]byte, error) { return json.Marshal(k.Private) }

// UnmarshalJSON reads a key stored by MarshalJSON.
func (k *Key) UnmarshalJSON(b []byte) error {
	key, err := jwk.ParseKey(b)
	if err != nil {
		return err
	}
	k.Private, k.KID = key, key.KeyID()
	if a, ok := key.Algorithm().(jwa.SignatureAlgorithm); ok {
		k.Alg = a
	} else {
		k.Alg = jwa.SignatureAlgorithm(key.Algorithm().String())
	}
	return nil
}
