package policy

import (
	"encoding/base64"
	"strings"
	"testing"
)

// An SSA stored before headers were read strictly was verified by jwx's parser
// then; its claims are still read back, so its TPP can manage the registration.
// Anything jwx refuses too stays refused.
func TestStoredPayloadReadsWhatWasVerifiedBefore(t *testing.T) {
	b64 := base64.RawURLEncoding.EncodeToString
	payload := `{"iss":"directory"}`
	cases := []struct {
		name   string
		header string
		encode func([]byte) string
		ok     bool
	}{
		{"a strict header", `{"alg":"PS256","kid":"k"}`, b64, true},
		{"a parameter twice", `{"alg":"PS256","kid":"k","kid":"k"}`, b64, true},
		{"an empty crit", `{"alg":"PS256","kid":"k","crit":[]}`, b64, true},
		{"padded segments", `{"alg":"PS256","kid":"k"}`, base64.URLEncoding.EncodeToString, true},
		{"a header that is not JSON", `{"alg":`, b64, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ssa := strings.Join([]string{c.encode([]byte(c.header)), c.encode([]byte(payload)), b64([]byte("sig"))}, ".")
			got, err := storedPayload(ssa)
			switch {
			case c.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case c.ok && string(got) != payload:
				t.Fatalf("payload %q", got)
			case !c.ok && err == nil:
				t.Fatalf("read %q; want a refusal", got)
			}
		})
	}
}
