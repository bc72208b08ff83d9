package policy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
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
	// header is the protected header, split by the same strict reader as the
	// claims: a parameter named twice is refused, never resolved last-wins.
	header RawClaims
	// signingInput and signature are kept from the one parse, so that verifying
	// does not parse the token again.
	signingInput []byte
	signature    []byte
}

// ParseJWS accepts only the compact serialization with exactly one signature:
// the JSON serialization, JWE (five parts) and unsecured tokens are refused here
// so that nothing downstream ever sees them. The token is decoded once: its
// header and payload are read by obdcr's strict JSON reader, and jwx checks the
// signature over the very bytes split here.
func ParseJWS(raw []byte) (*JWS, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, errors.New("is empty")
	}
	if raw[0] == '{' {
		return nil, errors.New("uses the JWS JSON serialization; only the compact serialization is accepted")
	}
	// Go's base64 decoder skips CR and LF; refused here, a token has one spelling.
	if bytes.ContainsAny(raw, "\r\n") {
		return nil, errors.New("is not a well-formed compact JWS: it contains a line break")
	}
	switch n := bytes.Count(raw, []byte{'.'}); n {
	case 2:
	case 4:
		return nil, errors.New("is a JWE; an encrypted request is not accepted, send a signed JWT")
	default:
		return nil, fmt.Errorf("is not a compact JWS (%d parts, want 3)", n+1)
	}
	protected, payload, signature, err := jws.SplitCompact(raw)
	if err != nil {
		return nil, fmt.Errorf("is not a well-formed compact JWS: %v", cleanJOSEError(err))
	}
	j := &JWS{Raw: raw, signingInput: raw[:len(protected)+1+len(payload)]}
	headerJSON, err := segment("header", protected)
	if err != nil {
		return nil, err
	}
	if j.header, err = splitObject(headerJSON, headerObject); err != nil {
		return nil, fmt.Errorf("is not a well-formed compact JWS: %v", headerError(err))
	}
	alg, err := j.headerString("alg")
	if err != nil {
		return nil, err
	}
	if j.KeyID, err = j.headerString("kid"); err != nil {
		return nil, err
	}
	j.Alg = jwa.SignatureAlgorithm(alg)
	// With b64=false (RFC 7797) the payload is sent as it is, so it is kept
	// undecoded; CheckHeader refuses the token.
	if b64, ok := j.header["b64"]; ok && string(b64) != "true" {
		j.Payload = payload
	} else if j.Payload, err = segment("payload", payload); err != nil {
		return nil, err
	}
	if j.signature, err = segment("signature", signature); err != nil {
		return nil, err
	}
	return j, nil
}

// segment decodes one part of a compact JWS: base64url without padding, as
// RFC 7515 §2 defines it, and in its one canonical spelling (unused trailing
// bits zero), so that not even the signature, which nothing signs, can be
// respelled.
func segment(part string, b []byte) ([]byte, error) {
	enc := base64.RawURLEncoding.Strict()
	out := make([]byte, enc.DecodedLen(len(b)))
	n, err := enc.Decode(out, b)
	if err != nil {
		return nil, fmt.Errorf("is not a well-formed compact JWS: its %s is not base64url without padding (RFC 7515 §2)", part)
	}
	return out[:n], nil
}

// headerString reads a string parameter of the header; an absent one is "".
func (j *JWS) headerString(name string) (string, error) {
	v, ok := j.header[name]
	if !ok {
		return "", nil
	}
	s, err := jsonString(v)
	if err != nil {
		return "", fmt.Errorf("is not a well-formed compact JWS: header parameter %s must be a string", name)
	}
	return s, nil
}

// headerError words a strict reader's error for a header, whose members are
// parameters, not claims.
func headerError(err error) error {
	var ce *claimError
	if errors.As(err, &ce) {
		return fmt.Errorf("header parameter %s %s", ce.claim, ce.msg)
	}
	return err
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
		return fmt.Errorf("header alg %s is a symmetric algorithm; only %s are accepted", echo(alg), strings.Join(allowedAlgs, ", "))
	case !slices.Contains(allowedAlgs, alg):
		return fmt.Errorf("header alg %s is not allowed; use one of %s", echo(alg), strings.Join(allowedAlgs, ", "))
	}
	// These parameters carry or point at a key (RFC 7515 §4.1.2-6).
	for _, name := range [...]string{jws.JWKSetURLKey, jws.X509URLKey, jws.JWKKey, jws.X509CertChainKey} {
		if _, ok := j.header[name]; ok {
			return fmt.Errorf("header %s is not accepted: keys come only from the published JWKS", name)
		}
	}
	if crit, ok := j.header[jws.CriticalKey]; ok {
		var names []string
		if json.Unmarshal(crit, &names) != nil || len(names) == 0 {
			return errors.New("header crit must be a non-empty list of names (RFC 7515 §4.1.11)")
		}
		for i, n := range names {
			names[i] = echo(n)
		}
		return fmt.Errorf("header crit names extensions this server does not understand: %s", strings.Join(names, ", "))
	}
	if b64, ok := j.header["b64"]; ok && string(b64) != "true" {
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

// echo repeats a header value in a refusal, which goes back to the caller as
// error_description: a short name as it is, anything else quoted in ASCII and
// clipped (RFC 6749 §5.2 allows only printable ASCII there).
func echo(v string) string {
	const most = 40
	plain := len(v) <= most
	for i := 0; plain && i < len(v); i++ {
		c := v[i]
		plain = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("+-._:", c) >= 0
	}
	if plain {
		return v
	}
	if len(v) > most {
		v = v[:most]
	}
	return fmt.Sprintf("%+q", v)
}

// cleanJOSEError keeps library messages short: they reach TPPs verbatim.
func cleanJOSEError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s) > 160 {
		s = s[i+2:]
	}
	return s
}
