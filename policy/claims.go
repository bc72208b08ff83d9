package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The claims obdcr reads, as Go types: JWT value types, client metadata, the
// registration request and the software statement, and the error that names a
// claim. Reading a payload strictly is in claims_parse.go; decoding claims into
// these types by exact name in claims_decode.go.

// NumericDate is a JWT time (RFC 7519 §2): seconds since the epoch, integer or not.
type NumericDate struct{ time.Time }

func (d *NumericDate) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return errors.New("must be a number of seconds since 1970")
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return errors.New("is out of range")
	}
	sec, frac := math.Modf(f)
	d.Time = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	return nil
}

func (d NumericDate) MarshalJSON() ([]byte, error) { return json.Marshal(d.Unix()) }

// StringList accepts a JSON string or an array of strings: `aud` may be either
// (RFC 7519 §4.1.3), and AU sends `software_roles` as a string where UK sends an array.
// Empty strings are dropped, since real clients send "" for values they do not use.
type StringList []string

func (l *StringList) UnmarshalJSON(b []byte) error {
	*l = nil
	if len(b) > 0 && b[0] == '"' {
		s, err := jsonString(b)
		if s != "" {
			*l = StringList{s}
		}
		return err
	}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var all []string
	if err := jsonv2.Unmarshal(b, &all); err != nil {
		return errNotStrings
	}
	out := StringList(all[:0])
	for _, s := range all {
		if s != "" {
			out = append(out, s)
		}
	}
	*l = out
	return nil
}

var errNotStrings = errors.New("must be a string or an array of strings")

// LooseString accepts a string or a number: real OB SSAs send software_version as 1.5.
type LooseString string

func (s *LooseString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		v, err := jsonString(b)
		*s = LooseString(v)
		return err
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("must be a string or a number")
	}
	*s = LooseString(n.String())
	return nil
}

// jsonString reads a JSON string literal that has already been checked as JSON.
// Most claims have no escapes and are taken as they are.
func jsonString(b []byte) (string, error) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", errors.New("must be a string")
	}
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b[1 : len(b)-1]), nil
	}
	u, err := jsontext.AppendUnquote(nil, b)
	return string(u), err
}

// ClientMetadata is the RFC 7591 / OIDC client metadata a profile may register.
// It is both what the request asks for and, after the rules, what is granted.
type ClientMetadata struct {
	RedirectURIs                      StringList `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod           string     `json:"token_endpoint_auth_method,omitempty"`
	TokenEndpointAuthSigningAlg       string     `json:"token_endpoint_auth_signing_alg,omitempty"`
	GrantTypes                        StringList `json:"grant_types,omitempty"`
	ResponseTypes                     StringList `json:"response_types,omitempty"`
	Scope                             string     `json:"scope,omitempty"`
	ApplicationType                   string     `json:"application_type,omitempty"`
	IDTokenSignedResponseAlg          string     `json:"id_token_signed_response_alg,omitempty"`
	IDTokenEncryptedResponseAlg       string     `json:"id_token_encrypted_response_alg,omitempty"`
	IDTokenEncryptedResponseEnc       string     `json:"id_token_encrypted_response_enc,omitempty"`
	RequestObjectSigningAlg           string     `json:"request_object_signing_alg,omitempty"`
	AuthorizationSignedResponseAlg    string     `json:"authorization_signed_response_alg,omitempty"`
	AuthorizationEncryptedResponseAlg string     `json:"authorization_encrypted_response_alg,omitempty"`
	AuthorizationEncryptedResponseEnc string     `json:"authorization_encrypted_response_enc,omitempty"`
	TLSClientAuthSubjectDN            string     `json:"tls_client_auth_subject_dn,omitempty"`
	// RFC 8705 §2.1.2: with tls_client_auth, exactly one of these or the subject DN.
	TLSClientAuthSANDNS   string `json:"tls_client_auth_san_dns,omitempty"`
	TLSClientAuthSANURI   string `json:"tls_client_auth_san_uri,omitempty"`
	TLSClientAuthSANIP    string `json:"tls_client_auth_san_ip,omitempty"`
	TLSClientAuthSANEmail string `json:"tls_client_auth_san_email,omitempty"`
	// FAPI features Hydra cannot provide: asked for, they are refused (see HydraLimits).
	// A pointer, so that a request asking for false is told apart from one not asking.
	TLSClientCertificateBoundAccessTokens *bool      `json:"tls_client_certificate_bound_access_tokens,omitempty"`
	RequirePushedAuthorizationRequests    bool       `json:"require_pushed_authorization_requests,omitempty"`
	ClientName                            string     `json:"client_name,omitempty"`
	ClientURI                             string     `json:"client_uri,omitempty"`
	LogoURI                               string     `json:"logo_uri,omitempty"`
	PolicyURI                             string     `json:"policy_uri,omitempty"`
	TosURI                                string     `json:"tos_uri,omitempty"`
	JWKSURI                               string     `json:"jwks_uri,omitempty"`
	Contacts                              StringList `json:"contacts,omitempty"`
	SoftwareID                            string     `json:"software_id,omitempty"`
}

// RequestClaims is the TPP's signed registration request (OBIE DCR, CDS DCR).
type RequestClaims struct {
	Issuer            string       `json:"iss"`
	Audience          StringList   `json:"aud"`
	IssuedAt          *NumericDate `json:"iat"`
	ExpiresAt         *NumericDate `json:"exp"`
	NotBefore         *NumericDate `json:"nbf"`
	ID                string       `json:"jti"`
	SoftwareStatement string       `json:"software_statement"`
	ClientMetadata
}

// SoftwareStatement is a directory-signed SSA in the terms every profile shares.
// Each profile decodes its directory's claim names into it; Claims keeps them all.
type SoftwareStatement struct {
	Raw           string
	Issuer        string
	IssuedAt      time.Time
	ExpiresAt     time.Time // zero: the SSA has no exp (UK)
	NotBefore     time.Time // zero: the SSA has no nbf
	ID            string
	SoftwareID    string
	OrgID         string
	OrgName       string
	OrgStatus     string // UK org_status; empty where the directory has none
	LegalEntityID string // AU
	ClientName    string
	ClientURI     string
	LogoURI       string
	PolicyURI     string
	TosURI        string
	JWKSURI       string
	RedirectURIs  []string
	Roles         []string
	Scope         []string // AU: the scopes the Register granted
	Claims        RawClaims
}

// StatementBase holds the registered JWT claims every SSA has; profiles embed it.
type StatementBase struct {
	Issuer    string       `json:"iss"`
	IssuedAt  *NumericDate `json:"iat"`
	ExpiresAt *NumericDate `json:"exp"`
	NotBefore *NumericDate `json:"nbf"`
	ID        string       `json:"jti"`
}

// Fill copies the registered claims into st.
func (b StatementBase) Fill(st *SoftwareStatement) {
	st.Issuer, st.ID = b.Issuer, b.ID
	if b.IssuedAt != nil {
		st.IssuedAt = b.IssuedAt.Time
	}
	if b.ExpiresAt != nil {
		st.ExpiresAt = b.ExpiresAt.Time
	}
	if b.NotBefore != nil {
		st.NotBefore = b.NotBefore.Time
	}
}

// claimError is a decoding failure that knows the claim at fault.
type claimError struct{ claim, msg string }

func (e *claimError) Error() string { return e.claim + ": " + e.msg }

// ClaimOf returns the claim a decoding error names, if it names one.
func ClaimOf(err error) string {
	var ce *claimError
	if errors.As(err, &ce) {
		return ce.claim
	}
	return ""
}

// ClaimError is a decoding or validation failure of one claim; profiles use it
// in their statement decoders so the refusal names the claim.
func ClaimError(claim, msg string) error { return &claimError{claim: claim, msg: msg} }

// Statement is what a directory's SSA claims type implements: how its claim names
// map onto SoftwareStatement, and whatever its specification requires of them.
type Statement interface {
	Statement() (*SoftwareStatement, error)
	base() *StatementBase
}

func (b *StatementBase) base() *StatementBase { return b }
