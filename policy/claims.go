package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

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
	// FAPI features Hydra cannot provide: asked for, they are refused (see HydraLimits).
	TLSClientCertificateBoundAccessTokens bool       `json:"tls_client_certificate_bound_access_tokens,omitempty"`
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
	Claims        RawClaims
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

// maxClaims bounds the top-level claims of a payload: a real request or SSA has
// about 30. Past it, every later step (the case check included) would be work an
// unsigned payload makes obdcr do.
const maxClaims = 200

// maxClaimName bounds a claim name's length; the longest standard one has 40 bytes.
const maxClaimName = 128

// RawClaims are a JWT payload's claims, checked and kept undecoded. Each value
// aliases the payload it was split from.
type RawClaims map[string]json.RawMessage

// ParseClaims checks a JWT payload and splits it into its claims in one pass. It
// refuses what encoding/json would let through silently: duplicate claims (escaped
// names included), names that differ only in case (which copy would a later check
// see?), invalid UTF-8 and absurd nesting. jsontext validates strictly and reads
// the payload in place, which is most of what a registration costs beyond its two
// signatures.
func ParseClaims(payload []byte) (RawClaims, error) {
	// Claim names must be unique (RFC 7519 §4); they are checked here as they are
	// read. Members of nested objects are not: no claim obdcr decodes is an object,
	// and tracking every object's names was a fifth of the parse.
	dec := jsontext.NewDecoder(bytes.NewBuffer(payload), jsontext.AllowDuplicateNames(true))
	if dec.PeekKind() != '{' {
		return nil, errors.New("payload is not a JSON object")
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, errors.New("payload is not a JSON object")
	}
	raw := make(RawClaims, 24)
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return nil, syntaxError(payload, err)
		}
		claim := name.String()
		if len(claim) > maxClaimName {
			return nil, fmt.Errorf("payload has a claim name over %d bytes", maxClaimName)
		}
		if len(raw) == maxClaims {
			return nil, fmt.Errorf("payload has more than %d claims", maxClaims)
		}
		value, err := dec.ReadValue()
		if err != nil {
			return nil, syntaxError(payload, err)
		}
		if k := value.Kind(); (k == '{' || k == '[') && depth(value) > maxJSONDepth-1 {
			return nil, fmt.Errorf("payload nests deeper than %d levels", maxJSONDepth)
		}
		if _, dup := raw[claim]; dup {
			return nil, &claimError{claim: claim, msg: "appears more than once"}
		}
		raw[claim] = json.RawMessage(value)
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, syntaxError(payload, err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, errors.New("payload has data after its JSON object")
	}
	return raw, foldedDuplicate(raw)
}

// syntaxError turns jsontext's error into one that names the claim at fault when
// there is one, without echoing the offending bytes. Only refused payloads pay for
// the UTF-8 check.
func syntaxError(payload []byte, err error) error {
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) {
		return errors.New("payload is not valid JSON")
	}
	claim := ""
	for first := range se.JSONPointer.Tokens() { // the top-level claim the error is in
		claim = first
		break
	}
	switch {
	case !utf8.Valid(payload):
		if claim != "" {
			return &claimError{claim: claim, msg: "is not valid UTF-8"}
		}
		return errors.New("payload is not valid UTF-8")
	case claim != "":
		return &claimError{claim: claim, msg: "is not valid JSON"}
	}
	return errors.New("payload is not valid JSON")
}

// foldedDuplicate refuses two claim names that differ only in case. Names in
// lower-case ASCII, which is all of them in practice, cannot collide with each
// other, so when every name is one nothing is allocated. Otherwise each name is
// keyed by its case fold, once: linear in the claims, never pairwise.
func foldedDuplicate(raw RawClaims) error {
	mixed := false
	for name := range raw {
		if !isLowerASCII(name) {
			mixed = true
			break
		}
	}
	if !mixed {
		return nil
	}
	seen := make(map[string]string, len(raw))
	for name := range raw {
		key := foldKey(name)
		if other, dup := seen[key]; dup {
			first, second := min(name, other), max(name, other)
			return &claimError{claim: second, msg: "differs from claim " + first + " only in case"}
		}
		seen[key] = name
	}
	return nil
}

// foldKey maps every rune to the least rune of its Unicode case-fold orbit, so
// that two names have the same key exactly when strings.EqualFold says they match.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

func isLowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			return false
		}
	}
	return true
}

// String returns a string claim, or "" if it is absent or not a string.
func (r RawClaims) String(name string) string {
	s, _ := jsonString(r[name])
	return s
}

// depth is how deeply a valid JSON value nests objects and arrays (strings skipped).
func depth(b []byte) int {
	d, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			d++
			deepest = max(deepest, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return deepest
}

// ClaimSet decodes claims into T by exact claim name (JSON names are case-sensitive,
// though encoding/json's struct matching is not). Build it once per type.
type ClaimSet[T any] struct {
	fields map[string][]int
}

// NewClaimSet indexes T's json tags, embedded structs included.
func NewClaimSet[T any]() ClaimSet[T] {
	fields := map[string][]int{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			idx := append(append([]int{}, prefix...), i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" && f.IsExported() {
				fields[name] = idx
			}
		}
	}
	walk(reflect.TypeOf((*T)(nil)).Elem(), nil)
	return ClaimSet[T]{fields: fields}
}

// Decode fills into from raw. Unknown claims are ignored, as RFC 7591 asks; an
// error names the claim at fault.
func (c ClaimSet[T]) Decode(raw RawClaims, into *T) error {
	v := reflect.ValueOf(into).Elem()
	for name, r := range raw {
		idx, ok := c.fields[name]
		if !ok {
			continue
		}
		f := v.FieldByIndex(idx)
		if err := decodeField(r, f); err != nil {
			return &claimError{claim: name, msg: typeMessage(err, f.Type())}
		}
	}
	return nil
}

// each calls f with every claim of from that encoding/json would write under
// omitempty: the answer to a TPP is built from it without a JSON round trip.
func (c ClaimSet[T]) each(from *T, f func(name string, v any)) {
	v := reflect.ValueOf(from).Elem()
	for name, idx := range c.fields {
		field := v.FieldByIndex(idx)
		if field.IsZero() || (field.Kind() == reflect.Slice && field.Len() == 0) {
			continue
		}
		f(name, field.Interface())
	}
}

// DecodeClaims is ParseClaims and a ClaimSet's Decode in one, for one-off use.
func DecodeClaims[T any](payload []byte, into *T) (RawClaims, error) {
	raw, err := ParseClaims(payload)
	if err != nil {
		return nil, err
	}
	return raw, NewClaimSet[T]().Decode(raw, into)
}

// decodeField decodes one claim whose bytes ParseClaims has already checked as
// JSON. Strings, and types with their own UnmarshalJSON, take the bytes directly:
// encoding/json would only check them again.
func decodeField(r json.RawMessage, f reflect.Value) error {
	if bytes.Equal(r, []byte("null")) {
		return nil
	}
	if f.Kind() == reflect.String && len(r) > 0 && r[0] == '"' {
		s, err := jsonString(r)
		f.SetString(s)
		return err
	}
	target := f.Addr()
	if f.Kind() == reflect.Pointer {
		if f.IsNil() {
			f.Set(reflect.New(f.Type().Elem()))
		}
		target = f
	}
	if u, ok := target.Interface().(json.Unmarshaler); ok {
		return u.UnmarshalJSON(r)
	}
	return json.Unmarshal(r, target.Interface())
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

// StatementDecoder is a profile's DecodeStatement for the SSA claims type T: it
// decodes by exact claim name, maps, and fills the registered claims and Claims.
func StatementDecoder[T any, P interface {
	*T
	Statement
}]() func(RawClaims) (*SoftwareStatement, error) {
	set := NewClaimSet[T]()
	return func(claims RawClaims) (*SoftwareStatement, error) {
		var s T
		if err := set.Decode(claims, &s); err != nil {
			return nil, err
		}
		st, err := P(&s).Statement()
		if err != nil {
			return nil, err
		}
		P(&s).base().Fill(st)
		st.Claims = claims
		return st, nil
	}
}
