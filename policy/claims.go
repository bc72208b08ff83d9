package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// NumericDate is a JWT time (RFC 7519 §2): seconds since the epoch, integer or not.
type NumericDate struct{ time.Time }

func (d *NumericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
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
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*l = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = nil
		if s != "" {
			*l = StringList{s}
		}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return errors.New("must be a string or an array of strings")
	}
	out := ss[:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	*l = StringList(out)
	return nil
}

// LooseString accepts a string or a number: real OB SSAs send software_version as 1.5.
type LooseString string

func (s *LooseString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var v string
		err := json.Unmarshal(b, &v)
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
	ClientName                        string     `json:"client_name,omitempty"`
	ClientURI                         string     `json:"client_uri,omitempty"`
	LogoURI                           string     `json:"logo_uri,omitempty"`
	PolicyURI                         string     `json:"policy_uri,omitempty"`
	TosURI                            string     `json:"tos_uri,omitempty"`
	JWKSURI                           string     `json:"jwks_uri,omitempty"`
	Contacts                          StringList `json:"contacts,omitempty"`
	SoftwareID                        string     `json:"software_id,omitempty"`
}

// RequestClaims is the TPP's signed registration request (OBIE DCR, CDS DCR).
type RequestClaims struct {
	Issuer            string       `json:"iss"`
	Audience          StringList   `json:"aud"`
	IssuedAt          *NumericDate `json:"iat"`
	ExpiresAt         *NumericDate `json:"exp"`
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
	Claims        map[string]any
}

// StatementBase holds the registered JWT claims every SSA has; profiles embed it.
type StatementBase struct {
	Issuer    string       `json:"iss"`
	IssuedAt  *NumericDate `json:"iat"`
	ExpiresAt *NumericDate `json:"exp"`
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
}

// maxJSONDepth bounds nesting in claims: no real SSA or request goes past 5 levels,
// and a deep document is a way to burn CPU in every later step.
const maxJSONDepth = 16

// DecodeClaims decodes a JWT payload into the struct v, claim by claim so that an
// error always names its claim, and returns every claim as a generic map too. It
// refuses what encoding/json would let through silently: duplicate claims (which
// copy would a later check see?), invalid UTF-8 and absurd nesting. Unknown
// claims are ignored, as RFC 7591 asks.
func DecodeClaims(payload []byte, v any) (map[string]any, error) {
	if err := checkJSON(payload); err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return nil, errors.New("payload is not a JSON object")
	}
	all := make(map[string]any, len(raw))
	for name, r := range raw {
		var x any
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.UseNumber()
		_ = dec.Decode(&x) // checkJSON has already proved r well-formed
		all[name] = x
	}
	if err := decodeFields(reflect.ValueOf(v).Elem(), raw); err != nil {
		return nil, err
	}
	return all, nil
}

func decodeFields(sv reflect.Value, raw map[string]json.RawMessage) error {
	st := sv.Type()
	for i := 0; i < st.NumField(); i++ {
		f := st.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if err := decodeFields(sv.Field(i), raw); err != nil {
				return err
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		r, ok := raw[name]
		if !ok || bytes.Equal(bytes.TrimSpace(r), []byte("null")) {
			continue
		}
		if err := json.Unmarshal(r, sv.Field(i).Addr().Interface()); err != nil {
			return &claimError{claim: name, msg: typeMessage(err, f.Type)}
		}
	}
	return nil
}

func typeMessage(err error, t reflect.Type) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("must be %s, not a JSON %s", jsonKind(t), te.Value)
	}
	return err.Error()
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

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "an array of strings"
	case reflect.Bool:
		return "a boolean"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return "a number"
	}
}

// checkJSON walks the tokens once to find duplicate keys, bad UTF-8 and depth.
func checkJSON(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("payload is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		obj  bool
		keys map[string]struct{}
		key  bool // next string token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return errors.New("payload is not valid JSON")
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return fmt.Errorf("payload nests deeper than %d levels", maxJSONDepth)
				}
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{obj: t == '{', keys: map[string]struct{}{}, key: t == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.obj && top.key {
				if _, dup := top.keys[t]; dup {
					return &claimError{claim: t, msg: "appears more than once"}
				}
				top.keys[t] = struct{}{}
				top.key = false
				continue
			}
		}
		if top != nil && top.obj {
			top.key = true
		}
	}
}

// ClaimError is a decoding or validation failure of one claim; profiles use it
// in their statement decoders so the refusal names the claim.
func ClaimError(claim, msg string) error { return &claimError{claim: claim, msg: msg} }
