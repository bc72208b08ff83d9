package policy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// JWS is a compact JWS whose structure has been parsed. Its header is checked by
// CheckHeader and its signature by Verify; until then Payload is untrusted.
type JWS struct {
	Raw     []byte
	Alg     jwa.SignatureAlgorithm
	KeyID   string
	Payload []byte
	headers jws.Headers
	// signingInput and signature are kept from the one parse, so that verifying
	// does not parse the token again.
	signingInput []byte
	signature    []byte
}

// ParseJWS accepts only the compact serialization with exactly one signature:
// the JSON serialization, JWE (five parts) and unsecured tokens are refused here
// so that nothing downstream ever sees them.
func ParseJWS(raw []byte) (*JWS, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, errors.New("is empty")
	}
	if raw[0] == '{' {
		return nil, errors.New("uses the JWS JSON serialization; only the compact serialization is accepted")
	}
	switch n := bytes.Count(raw, []byte{'.'}); n {
	case 2:
	case 4:
		return nil, errors.New("is a JWE; an encrypted request is not accepted, send a signed JWT")
	default:
		return nil, fmt.Errorf("is not a compact JWS (%d parts, want 3)", n+1)
	}
	msg, err := jws.Parse(raw, jws.WithCompact())
	if err != nil {
		return nil, fmt.Errorf("is not a well-formed compact JWS: %v", cleanJOSEError(err))
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		return nil, errors.New("must carry exactly one signature")
	}
	h := sigs[0].ProtectedHeaders()
	dot := bytes.LastIndexByte(raw, '.')
	return &JWS{Raw: raw, Alg: h.Algorithm(), KeyID: h.KeyID(), Payload: msg.Payload(), headers: h,
		signingInput: raw[:dot], signature: sigs[0].Signature()}, nil
}

// CheckHeader applies RFC 8725 before any key is looked up: the algorithm must be on
// the allow-list, a kid must name the key, and no header may point at key material,
// because obdcr takes keys only from the trust store, never from the token.
func (j *JWS) CheckHeader(allowedAlgs []string) error {
	alg := j.Alg.String()
	switch {
	case alg == "":
		return errors.New("header has no alg")
	case strings.EqualFold(alg, "none"):
		return errors.New("header alg none is never accepted (RFC 8725 §3.1)")
	case strings.HasPrefix(strings.ToUpper(alg), "HS"):
		return fmt.Errorf("header alg %s is a symmetric algorithm; only %s are accepted", alg, strings.Join(allowedAlgs, ", "))
	case !slices.Contains(allowedAlgs, alg):
		return fmt.Errorf("header alg %s is not allowed; use one of %s", alg, strings.Join(allowedAlgs, ", "))
	}
	for _, name := range []string{jws.JWKSetURLKey, jws.X509URLKey, jws.JWKKey, jws.X509CertChainKey} {
		if _, ok := j.headers.Get(name); ok {
			return fmt.Errorf("header %s is not accepted: keys come only from the published JWKS", name)
		}
	}
	if crit := j.headers.Critical(); len(crit) > 0 {
		return fmt.Errorf("header crit names extensions this server does not understand: %s", strings.Join(crit, ", "))
	}
	if b64, ok := j.headers.Get("b64"); ok && b64 != true {
		return errors.New("header b64=false is not accepted")
	}
	if j.KeyID == "" {
		return errors.New("header has no kid; the signing key must be named")
	}
	return nil
}

// Verify checks the signature with key, which must suit the header's algorithm
// and meet FAPI's minimum sizes (RSA 2048, EC 256 bits in practice).
func (j *JWS) Verify(key *PublicKey) error {
	if key.Alg != "" && key.Alg != j.Alg.String() {
		return fmt.Errorf("key %q is for %s, the header says %s", j.KeyID, key.Alg, j.Alg)
	}
	if key.Use != "" && key.Use != string(jwk.ForSignature) {
		return fmt.Errorf("key %q has use %q, not sig", j.KeyID, key.Use)
	}
	if key.rawErr != "" {
		return fmt.Errorf("key %q cannot be used: %v", j.KeyID, key.rawErr)
	}
	raw := key.Raw
	switch k := raw.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("key %q is RSA %d bits; FAPI requires at least 2048", j.KeyID, k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 256 {
			return fmt.Errorf("key %q is EC %d bits; at least 256 are required", j.KeyID, k.Curve.Params().BitSize)
		}
	default:
		return fmt.Errorf("key %q is a %T, not a public RSA or EC key", j.KeyID, raw)
	}
	v, err := jws.NewVerifier(j.Alg)
	if err != nil {
		return fmt.Errorf("alg %s cannot be verified", j.Alg)
	}
	if err := v.Verify(j.signingInput, j.signature, raw); err != nil {
		return fmt.Errorf("signature does not verify with key %q", j.KeyID)
	}
	return nil
}

// cleanJOSEError keeps library messages short: they reach TPPs verbatim.
func cleanJOSEError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s) > 160 {
		s = s[i+2:]
	}
	return s
}
