package fapi

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// JWTBearer is RFC 7523's client_assertion_type.
const JWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Authenticator says which client sent a request to PAR or the token endpoint,
// from its form and the TLS client certificate (nil when none was presented).
// private_key_jwt is the one here; Methods adds tls_client_auth.
type Authenticator interface {
	Authenticate(ctx context.Context, form url.Values, cert *x509.Certificate) (*Client, error)
}

// maxAssertionLifetime bounds how far ahead an assertion's exp may be, and so
// how long its jti is held.
const maxAssertionLifetime = 10 * time.Minute

// PrivateKeyJWT authenticates by a client assertion (RFC 7523) as FAPI 2.0 says:
// aud may be the issuer or the endpoint's URL, PS256 or ES256 only, and the jti
// is single-use across replicas.
type PrivateKeyJWT struct {
	Verifier *Verifier
	Clients  Clients
	// Audiences are accepted aud values: the issuer, and the PAR and token URLs
	// (both the edge's and the mTLS aliases).
	Audiences []string
}

type assertionClaims struct {
	Iss string              `json:"iss"`
	Sub string              `json:"sub"`
	Aud policy.StringList   `json:"aud"`
	Exp *policy.NumericDate `json:"exp"`
	Nbf *policy.NumericDate `json:"nbf"`
	Jti string              `json:"jti"`
}

func unauthorized(format string, args ...any) *Error {
	e := refuse(InvalidClient, format, args...)
	e.Status = 401
	return e
}

// Authenticate returns the client the assertion proves, or an invalid_client error.
func (p *PrivateKeyJWT) Authenticate(ctx context.Context, form url.Values, _ *x509.Certificate) (*Client, error) {
	if t := form.Get("client_assertion_type"); t != JWTBearer {
		return nil, unauthorized("client_assertion_type must be %s (private_key_jwt)", JWTBearer)
	}
	raw := form.Get("client_assertion")
	if len(raw) > maxRequestObject {
		return nil, unauthorized("client_assertion is over %d bytes", maxRequestObject)
	}
	j, err := policy.ParseJWS([]byte(raw))
	if err != nil {
		return nil, unauthorized("client_assertion %v", err)
	}
	var cl assertionClaims
	if err := json.Unmarshal(j.Payload, &cl); err != nil {
		return nil, unauthorized("client_assertion's payload: %v", err)
	}
	if cl.Iss == "" || cl.Iss != cl.Sub {
		return nil, unauthorized("client_assertion's iss and sub must both be the client_id")
	}
	if id := form.Get("client_id"); id != "" && id != cl.Iss {
		return nil, unauthorized("client_id does not match the client_assertion's iss")
	}
	c, err := p.Clients.Client(ctx, cl.Iss)
	if errors.Is(err, ErrUnknownClient) {
		return nil, unauthorized("client %q is not registered", clip(cl.Iss))
	}
	if err != nil {
		return nil, err
	}
	if err := j.CheckHeader(c.assertionAlgs()); err != nil {
		return nil, unauthorized("client_assertion's %v", err)
	}
	if err := p.Verifier.verifyWith(ctx, c, j); err != nil {
		return nil, unauthorized("client_assertion's signature: %v", err)
	}
	now := p.Verifier.now()
	switch {
	case !slices.ContainsFunc(cl.Aud, func(a string) bool { return slices.Contains(p.Audiences, a) }):
		return nil, unauthorized("client_assertion's aud must be the issuer %s or this endpoint's URL", p.Verifier.Issuer)
	case cl.Exp == nil:
		return nil, unauthorized("client_assertion has no exp")
	case !now.Before(cl.Exp.Time):
		return nil, unauthorized("client_assertion expired")
	case cl.Nbf != nil && cl.Nbf.After(now.Add(clockSkew)):
		// RFC 7523 §3 item 5: not to be accepted before its nbf.
		return nil, unauthorized("client_assertion's nbf %s is in the future", cl.Nbf.UTC().Format(time.RFC3339))
	case cl.Exp.Sub(now) > maxAssertionLifetime:
		return nil, unauthorized("client_assertion's exp is more than %s ahead", maxAssertionLifetime)
	case cl.Jti == "" || len(cl.Jti) > 256:
		return nil, unauthorized("client_assertion needs a jti of at most 256 characters")
	}
	ok, err := p.Verifier.Replay.Claim(ctx, "edge-assertion:"+c.ID+":"+cl.Jti, cl.Exp.Time)
	if err != nil {
		return nil, &Error{Code: TemporarilyUnavailable, Description: "the replay cache cannot be reached; try again", Status: 503}
	}
	if !ok {
		return nil, unauthorized("client_assertion's jti was already used")
	}
	return c, nil
}
