package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Decoding parsed claims into Go types by exact claim name, with errors that name
// the claim and the JSON type it should have been.

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
