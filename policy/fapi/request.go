package fapi

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// AuthRequest is a verified authorization request: what the request object said,
// every value checked against the registration.
type AuthRequest struct {
	ClientID            string `json:"client_id"`
	ResponseType        string `json:"response_type"`
	ResponseMode        string `json:"response_mode,omitempty"`
	RedirectURI         string `json:"redirect_uri"`
	Scope               string `json:"scope"`
	State               string `json:"state,omitempty"`
	Nonce               string `json:"nonce,omitempty"`
	CodeChallenge       string `json:"code_challenge,omitempty"`
	CodeChallengeMethod string `json:"code_challenge_method,omitempty"`
	// Claims, ACRValues, Prompt, MaxAge and UILocales go on to Hydra unchanged.
	Claims    json.RawMessage `json:"claims,omitempty"`
	ACRValues string          `json:"acr_values,omitempty"`
	Prompt    string          `json:"prompt,omitempty"`
	MaxAge    *int64          `json:"max_age,omitempty"`
	UILocales string          `json:"ui_locales,omitempty"`
	PAR       bool            `json:"par,omitempty"`
	// PushedID names the pushed request this came from, so that the callback
	// uses it up once the authorization is answered.
	PushedID string `json:"pushed_id,omitempty"`
}

// Hybrid: the answer carries an ID token in the front channel.
func (r *AuthRequest) Hybrid() bool { return r.ResponseType == "code id_token" }

// JARM: the client asked for a signed authorization response.
func (r *AuthRequest) JARM() bool { return IsJARM(r.ResponseMode) }

// IsJARM says whether a response_mode is one of JARM's.
func IsJARM(mode string) bool {
	return mode == "jwt" || strings.HasSuffix(mode, ".jwt")
}

// maxRequestLifetime is FAPI 1.0 Advanced §5.2.2 (13): exp - nbf at most 60 minutes.
const maxRequestLifetime = 60 * time.Minute

// clockSkew is what a request object's nbf may be ahead of this clock.
const clockSkew = 10 * time.Second

// maxRequestObject bounds a request object's size before it is parsed.
const maxRequestObject = 16 << 10

// Verifier checks request objects and client assertions.
type Verifier struct {
	// Issuer is the edge's public URL: a request object's aud.
	Issuer string
	Keys   policy.TrustStore
	Replay policy.ReplayCache
	Now    func() time.Time
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// requestClaims is a request object's payload; unknown members are ignored.
type requestClaims struct {
	Iss      string              `json:"iss"`
	Aud      policy.StringList   `json:"aud"`
	Exp      *policy.NumericDate `json:"exp"`
	Nbf      *policy.NumericDate `json:"nbf"`
	ClientID string              `json:"client_id"`
	Request  json.RawMessage     `json:"request"`
	RequestU json.RawMessage     `json:"request_uri"`
	AuthRequest
}

// Untrusted reads a request object's payload without checking it, only to know
// where an error may be sent: the redirect URI is used only if it is one the
// client registered, exactly.
func Untrusted(raw string) (redirectURI, state, responseMode, responseType string) {
	if len(raw) > maxRequestObject {
		return "", "", "", ""
	}
	j, err := policy.ParseJWS([]byte(raw))
	if err != nil {
		return "", "", "", ""
	}
	var c requestClaims
	if json.Unmarshal(j.Payload, &c) != nil {
		return "", "", "", ""
	}
	return c.RedirectURI, c.State, c.ResponseMode, c.ResponseType
}

// RequestObject verifies a request object of client c (RFC 9101, FAPI 1.0
// Advanced §5.2.2, CDS). par says it came by PAR, where PKCE is always required.
func (v *Verifier) RequestObject(ctx context.Context, c *Client, raw string, par bool) (*AuthRequest, error) {
	if len(raw) > maxRequestObject {
		return nil, refuse(InvalidRequestObject, "the request object is over %d bytes", maxRequestObject)
	}
	j, err := policy.ParseJWS([]byte(raw))
	if err != nil {
		return nil, refuse(InvalidRequestObject, "the request object %v", err)
	}
	if err := j.CheckHeader(c.requestAlgs()); err != nil {
		return nil, refuse(InvalidRequestObject, "the request object's %v", err)
	}
	if err := v.verifyWith(ctx, c, j); err != nil {
		return nil, refuse(InvalidRequestObject, "the request object's signature: %v", err)
	}
	var cl requestClaims
	if err := json.Unmarshal(j.Payload, &cl); err != nil {
		return nil, refuse(InvalidRequestObject, "the request object's payload is not a JSON object of the expected claims: %v", err)
	}
	if err := v.checkClaims(c, &cl); err != nil {
		return nil, err
	}
	r := cl.AuthRequest
	r.ClientID, r.PAR = c.ID, par
	return &r, CheckRequest(c, &r)
}

func (v *Verifier) verifyWith(ctx context.Context, c *Client, j *policy.JWS) error {
	if c.JWKSURI == "" {
		return errors.New("the client has no registered JWKS")
	}
	key, err := v.Keys.Key(ctx, c.JWKSURI, j.KeyID)
	if err != nil {
		return err
	}
	return j.Verify(key)
}

// checkClaims: the JWT claims of a request object (FAPI 1.0 Advanced §5.2.2 (10, 13, 17)).
func (v *Verifier) checkClaims(c *Client, cl *requestClaims) error {
	now := v.now()
	switch {
	case cl.Iss != c.ID:
		return refuse(InvalidRequestObject, "the request object's iss must be the client_id %s", c.ID)
	case !slices.Contains(cl.Aud, v.Issuer):
		return refuse(InvalidRequestObject, "the request object's aud must be the issuer %s", v.Issuer)
	case cl.ClientID != "" && cl.ClientID != c.ID:
		return refuse(InvalidRequestObject, "the request object's client_id %q is not the client's", clip(cl.ClientID))
	case cl.Exp == nil:
		return refuse(InvalidRequestObject, "the request object has no exp")
	case cl.Nbf == nil:
		return refuse(InvalidRequestObject, "the request object has no nbf")
	case !now.Before(cl.Exp.Time):
		return refuse(InvalidRequestObject, "the request object expired at %s", cl.Exp.UTC().Format(time.RFC3339))
	case cl.Nbf.After(now.Add(clockSkew)):
		return refuse(InvalidRequestObject, "the request object's nbf %s is in the future", cl.Nbf.UTC().Format(time.RFC3339))
	case cl.Exp.Sub(cl.Nbf.Time) > maxRequestLifetime:
		return refuse(InvalidRequestObject, "the request object's exp is %s after its nbf; at most 60 minutes are allowed", cl.Exp.Sub(cl.Nbf.Time))
	case len(cl.Request) > 0 || len(cl.RequestU) > 0:
		return refuse(InvalidRequestObject, "a request object must not hold request or request_uri")
	}
	return nil
}

// CheckRequest checks a request's values against the registration and profile.
func CheckRequest(c *Client, r *AuthRequest) error {
	switch {
	case r.RedirectURI == "":
		return page(InvalidRequest, "redirect_uri is required in the request object")
	case !slices.Contains(c.RedirectURIs, r.RedirectURI):
		return page(InvalidRequest, "redirect_uri %q is not one the client registered", clip(r.RedirectURI))
	case r.ResponseType == "":
		return refuse(InvalidRequest, "response_type is required in the request object")
	case !slices.Contains(c.ResponseTypes, r.ResponseType):
		return refuse(UnsupportedResponseType, "response_type %q is not one the client registered (%s)", clip(r.ResponseType), strings.Join(c.ResponseTypes, ", "))
	case r.ResponseType != "code" && r.ResponseType != "code id_token":
		return refuse(UnsupportedResponseType, "response_type must be code or code id_token")
	case r.ResponseMode != "" && !slices.Contains(policy.ResponseModes, r.ResponseMode):
		return refuse(InvalidRequest, "response_mode %q is not supported", clip(r.ResponseMode))
	case r.ResponseMode != "" && len(c.Rules.ResponseModes) > 0 && !slices.Contains(c.Rules.ResponseModes, r.ResponseMode):
		return refuse(InvalidRequest, "response_mode %q is not allowed here; use one of %s", clip(r.ResponseMode), strings.Join(c.Rules.ResponseModes, ", "))
	case r.ResponseType == "code" && !strings.HasSuffix(r.ResponseMode, "jwt") && c.Rules.CodeNeedsJARM:
		return refuse(InvalidRequest, "response_type code needs response_mode jwt (JARM) here (FAPI 1.0 Advanced §5.2.2-2); or use code id_token")
	case r.ResponseType == "code" && !strings.HasSuffix(r.ResponseMode, "jwt") && c.JARMAlg != "":
		return refuse(InvalidRequest, "the client registered authorization_signed_response_alg: response_mode must be jwt")
	case r.ResponseType == "code id_token" && (r.ResponseMode == "query" || r.ResponseMode == "query.jwt"):
		return refuse(InvalidRequest, "response_mode %s cannot carry an ID token", r.ResponseMode)
	case !slices.Contains(strings.Fields(r.Scope), "openid"):
		return refuse(InvalidScope, "scope must include openid")
	case r.Hybrid() && r.Nonce == "":
		return refuse(InvalidRequest, "nonce is required for response_type code id_token")
	case len(r.Nonce) > 512 || len(r.State) > 512:
		return refuse(InvalidRequest, "nonce and state are limited to 512 characters")
	}
	if r.PAR || c.Rules.PKCERequired || c.Rules.RequirePAR {
		switch {
		case r.CodeChallenge == "":
			return refuse(InvalidRequest, "code_challenge (PKCE, S256) is required")
		case r.CodeChallengeMethod != "S256":
			return refuse(InvalidRequest, "code_challenge_method must be S256")
		}
	}
	if r.CodeChallenge != "" && r.CodeChallengeMethod != "S256" {
		return refuse(InvalidRequest, "code_challenge_method must be S256")
	}
	return nil
}

// clip keeps a caller's value short in a description that is sent back.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
