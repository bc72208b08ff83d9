package fapi

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// SigningKey is the edge's private key as a JWK with its kid and alg set.
type SigningKey struct {
	Private jwk.Key
	Public  jwk.Key
	Alg     string
	// signer is the raw key, its RSA CRT values computed once: signing with
	// Private would make jwx build a fresh *rsa.PrivateKey, and recompute
	// them, at every signature.
	signer crypto.Signer
	kid    string
}

// NewSigningKey wraps an RSA (≥ 2048 bits, PS256) or P-256 (ES256) private key;
// its kid is its RFC 7638 thumbprint, so a new key gets a new kid.
func NewSigningKey(raw crypto.PrivateKey) (*SigningKey, error) {
	var alg string
	var signer crypto.Signer
	switch k := raw.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key is %d bits; at least 2048 are required", k.N.BitLen())
		}
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("RSA key: %v", err)
		}
		k.Precompute()
		alg, signer = "PS256", k
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("an EC key must be on P-256 (ES256)")
		}
		alg, signer = "ES256", k
	default:
		return nil, fmt.Errorf("a %T is not an RSA or P-256 private key", raw)
	}
	priv, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, err
	}
	pub, err := priv.PublicKey()
	if err != nil {
		return nil, err
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	for _, k := range []jwk.Key{priv, pub} {
		_ = k.Set(jwk.KeyIDKey, kid)
		_ = k.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(alg))
		_ = k.Set(jwk.KeyUsageKey, jwk.ForSignature)
	}
	return &SigningKey{Private: priv, Public: pub, Alg: alg, signer: signer, kid: kid}, nil
}

// Sign makes a JWT of claims with the key.
func (k *SigningKey) Sign(claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "JWT")
	key := any(k.Private)
	if k.signer != nil { // a SigningKey made by NewSigningKey
		_ = h.Set(jws.KeyIDKey, k.kid)
		key = k.signer
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(k.Alg), key, jws.WithProtectedHeaders(h)))
	return string(out), err
}

// JARMLifetime is a JARM response's (JARM §2.1 says short; the issue sets ≤ 10 minutes).
const JARMLifetime = 5 * time.Minute

// JARM signs an authorization response (JARM §2.1): iss, aud = client_id, exp,
// and the response's parameters (code and state, or error).
func (k *SigningKey) JARM(issuer, clientID string, params map[string]string, now time.Time) (string, error) {
	claims := map[string]any{"iss": issuer, "aud": clientID, "exp": now.Add(JARMLifetime).Unix(), "iat": now.Unix()}
	for n, v := range params {
		if n != "iss" && v != "" {
			claims[n] = v
		}
	}
	return k.Sign(claims)
}

// halfHash is OIDC's c_hash/s_hash for SHA-256 algorithms (PS256, ES256, RS256):
// the left half of the hash, base64url.
func halfHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// ReissueIDToken verifies Hydra's front-channel ID token with Hydra's keys, then
// signs its claims again with the edge key, with c_hash for the code and s_hash
// for the client's own state (FAPI 1.0 Advanced §5.2.2.1), which Hydra never saw.
func (k *SigningKey) ReissueIDToken(hydraToken string, hydraKeys jwk.Set, issuer, clientID, nonce, code, state string, now time.Time) (string, error) {
	tok, err := jwt.Parse([]byte(hydraToken), jwt.WithKeySet(hydraKeys, jws.WithInferAlgorithmFromKey(true)),
		jwt.WithIssuer(issuer), jwt.WithAudience(clientID), jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithAcceptableSkew(10*time.Second))
	if err != nil {
		return "", fmt.Errorf("Hydra's ID token does not verify: %w", err)
	}
	claims, err := tok.AsMap(context.Background())
	if err != nil {
		return "", err
	}
	if n, _ := claims["nonce"].(string); n != nonce {
		return "", errors.New("Hydra's ID token carries another nonce")
	}
	out := make(map[string]any, len(claims)+2)
	for n, v := range claims {
		switch t := v.(type) {
		case time.Time:
			out[n] = t.Unix()
		default:
			out[n] = v
		}
	}
	out["c_hash"] = halfHash(code)
	delete(out, "s_hash")
	if state != "" {
		out["s_hash"] = halfHash(state)
	}
	return k.Sign(out)
}
