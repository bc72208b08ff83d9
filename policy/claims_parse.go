package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Strict parsing of a JWT payload into its claims, and the bounds that keep an
// unsigned payload from costing more than a real one.

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
	return splitObject(payload, payloadObject)
}

// jsonObject names the JSON object a split reads, for its error messages, and
// how many members to expect.
type jsonObject struct {
	what   string // "payload"
	member string // "claim"
	hint   int
}

var (
	payloadObject = jsonObject{what: "payload", member: "claim", hint: 24}
	// headerObject is a JWS protected header (RFC 7515 §4): its parameter names
	// must be unique too, and a real one has under ten.
	headerObject = jsonObject{what: "header", member: "parameter", hint: 8}
)

// splitObject is the one strict reader of untrusted JSON objects: a JWT's claims
// and a JWS's protected header. Each value aliases doc.
func splitObject(doc []byte, o jsonObject) (RawClaims, error) {
	// Member names must be unique (RFC 7519 §4, RFC 7515 §4); they are checked
	// here as they are read. Members of nested objects are not: no claim obdcr
	// decodes is an object, and tracking every object's names was a fifth of the
	// parse.
	dec := jsontext.NewDecoder(bytes.NewBuffer(doc), jsontext.AllowDuplicateNames(true))
	if dec.PeekKind() != '{' {
		return nil, fmt.Errorf("%s is not a JSON object", o.what)
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, fmt.Errorf("%s is not a JSON object", o.what)
	}
	raw := make(RawClaims, o.hint)
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return nil, syntaxError(doc, o, err)
		}
		claim := name.String()
		if len(claim) > maxClaimName {
			return nil, fmt.Errorf("%s has a %s name over %d bytes", o.what, o.member, maxClaimName)
		}
		if len(raw) == maxClaims {
			return nil, fmt.Errorf("%s has more than %d %ss", o.what, maxClaims, o.member)
		}
		value, err := dec.ReadValue()
		if err != nil {
			return nil, syntaxError(doc, o, err)
		}
		if k := value.Kind(); (k == '{' || k == '[') && depth(value) > maxJSONDepth-1 {
			return nil, fmt.Errorf("%s nests deeper than %d levels", o.what, maxJSONDepth)
		}
		if _, dup := raw[claim]; dup {
			return nil, &claimError{claim: claim, msg: "appears more than once"}
		}
		raw[claim] = json.RawMessage(value)
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, syntaxError(doc, o, err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, fmt.Errorf("%s has data after its JSON object", o.what)
	}
	return raw, foldedDuplicate(raw, o)
}

// syntaxError turns jsontext's error into one that names the claim at fault when
// there is one, without echoing the offending bytes. Only refused payloads pay for
// the UTF-8 check.
func syntaxError(doc []byte, o jsonObject, err error) error {
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) {
		return fmt.Errorf("%s is not valid JSON", o.what)
	}
	claim := ""
	for first := range se.JSONPointer.Tokens() { // the top-level claim the error is in
		claim = first
		break
	}
	switch {
	case !utf8.Valid(doc):
		if claim != "" {
			return &claimError{claim: claim, msg: "is not valid UTF-8"}
		}
		return fmt.Errorf("%s is not valid UTF-8", o.what)
	case claim != "":
		return &claimError{claim: claim, msg: "is not valid JSON"}
	}
	return fmt.Errorf("%s is not valid JSON", o.what)
}

// foldedDuplicate refuses two member names that differ only in case. Names in
// lower-case ASCII, which is all of them in practice, cannot collide with each
// other, so when every name is one nothing is allocated. Otherwise each name is
// keyed by its case fold, once: linear in the claims, never pairwise.
func foldedDuplicate(raw RawClaims, o jsonObject) error {
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
			return &claimError{claim: second, msg: "differs from " + o.member + " " + first + " only in case"}
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
