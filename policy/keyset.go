package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// PublicKey is one key of a JWKS as obdcr holds it: what verifying a signature
// and matching a transport certificate need, and nothing else. jwx parses the
// JWKS; this is what is kept of it, because a cache of 10,000 TPPs' sets as jwx
// holds them is some 40 objects a TPP for every garbage collection to visit.
type PublicKey struct {
	KID string
	Alg string // "" when the JWKS does not say
	Use string // "" when the JWKS does not say
	// Raw is the key as Go's crypto packages take it (*rsa.PublicKey,
	// *ecdsa.PublicKey, ...). It is kept only for keys that may sign (use sig,
	// or no use): a tls or enc key never verifies a JWS, so its material is dropped.
	Raw any
	// rawErr is why the key material could not be had, for Verify to say.
	rawErr string
	// cert is the SHA-256 of the key's first x5c certificate (its x5t#S256);
	// hasCert says whether the JWKS gave one.
	cert    [sha256.Size]byte
	hasCert bool
}

// KeySet is a JWKS held compactly (see PublicKey).
type KeySet struct {
	Keys []PublicKey
}

// NewKeySet keeps of set what obdcr uses.
func NewKeySet(set jwk.Set) *KeySet {
	s := &KeySet{Keys: make([]PublicKey, 0, set.Len())}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		s.Keys = append(s.Keys, NewPublicKey(k))
	}
	return s
}

// ParseKeySet parses a JWKS document with jwx and keeps what obdcr uses; a set
// of more than maxKeys keys is refused.
func ParseKeySet(doc []byte, maxKeys int) (*KeySet, error) {
	set, err := jwk.Parse(doc)
	if err != nil {
		return nil, err
	}
	if set.Len() > maxKeys {
		return nil, fmt.Errorf("has %d keys, more than the %d allowed", set.Len(), maxKeys)
	}
	return NewKeySet(set), nil
}

// NewPublicKey keeps of k what obdcr uses.
func NewPublicKey(k jwk.Key) PublicKey {
	p := PublicKey{KID: k.KeyID(), Alg: intern(k.Algorithm().String()), Use: intern(k.KeyUsage())}
	if p.Use == "" || p.Use == string(jwk.ForSignature) {
		var raw any
		if err := k.Raw(&raw); err != nil {
			p.rawErr = err.Error()
		} else {
			p.Raw = raw
		}
	}
	// The certificate itself when the JWKS gives it (x5c), its thumbprint
	// (x5t#S256) only when it does not: a thumbprint beside a chain could
	// name another certificate.
	if chain := k.X509CertChain(); chain != nil && chain.Len() > 0 {
		first, _ := chain.Get(0)
		if der, err := base64.StdEncoding.DecodeString(string(first)); err == nil {
			p.cert, p.hasCert = sha256.Sum256(der), true
		}
	} else if t := k.X509CertThumbprintS256(); t != "" {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(t, "="))
		p.hasCert = err == nil && len(b) == sha256.Size
		copy(p.cert[:], b)
	}
	return p
}

// Lookup returns the key named kid.
func (s *KeySet) Lookup(kid string) (*PublicKey, bool) {
	if s == nil {
		return nil, false
	}
	for i := range s.Keys {
		if s.Keys[i].KID == kid {
			return &s.Keys[i], true
		}
	}
	return nil, false
}

// CertKey returns the key whose certificate (x5t#S256, or the first of its x5c)
// is cert and whose use is use (any use when ""), or nil.
func (s *KeySet) CertKey(cert *x509.Certificate, use string) *PublicKey {
	if s == nil || cert == nil {
		return nil
	}
	sum := sha256.Sum256(cert.Raw)
	for i := range s.Keys {
		if k := &s.Keys[i]; k.hasCert && (use == "" || k.Use == use) && subtle.ConstantTimeCompare(k.cert[:], sum[:]) == 1 {
			return k
		}
	}
	return nil
}

// CertThumbprint is the key's x5t#S256, or "" if the JWKS gave no certificate.
func (k *PublicKey) CertThumbprint() string {
	if !k.hasCert {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(k.cert[:])
}

// intern returns the common algorithm and use names as constants, so that
// 10,000 sets do not each hold their own copy of "PS256" and "sig".
func intern(s string) string {
	switch s {
	case "sig":
		return "sig"
	case "tls":
		return "tls"
	case "enc":
		return "enc"
	case "PS256":
		return "PS256"
	case "ES256":
		return "ES256"
	case "RS256":
		return "RS256"
	}
	return s
}
