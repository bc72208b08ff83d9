package policy_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/policy/au"
	"github.com/obdcr/obdcr/policy/uk"
)

// FuzzSettingsDecoder: whatever an admin sends as settings, Merge either refuses
// it with a message naming a setting, or yields settings that, once validated,
// survive being stored and loaded again unchanged.
func FuzzSettingsDecoder(f *testing.F) {
	for _, s := range []string{`{}`, `{"clock_skew":"10s"}`, `{"signing_algs":["PS256"]}`, `{"allow_delete":false,"scopes":["accounts"]}`,
		`{"transport_certificate":"jwks"}`, `{"ssa_max_age":"-1s"}`, `{"colour":"blue"}`, `[]`, `{"signing_algs":null}`, `{"clock_skew":1e400}`} {
		f.Add([]byte(s))
	}
	// Long values: each error repeats only the start of what it names.
	long := strings.Repeat("\xff", 13000)
	for _, s := range []string{`{"` + long + `x":1}`, `{"transport_certificate":"` + long + `"}`, `{"clock_skew":"` + long + `"}`,
		`{"signing_algs":["` + long + `"]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, patch []byte) {
		defaults, limits := uk.Defaults(), uk.Limits
		if len(patch)%2 == 1 {
			defaults, limits = au.Defaults(), au.Limits
		}
		merged, err := defaults.Merge(patch)
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, ":") || len(msg) > 2000 {
				t.Fatalf("an error that names nothing, or echoes the input: %q", msg)
			}
			return
		}
		if err := merged.Validate(limits); err != nil {
			if msg := err.Error(); !strings.Contains(msg, ":") || len(msg) > 2000 {
				t.Fatalf("a validation error that names nothing, or echoes the input: %q", msg)
			}
			return
		}
		stored, err := json.Marshal(merged)
		if err != nil {
			t.Fatal(err)
		}
		loaded, err := defaults.Merge(stored)
		if err != nil {
			t.Fatalf("stored settings do not load again: %v\n%s", err, stored)
		}
		if normal(loaded) != normal(merged) {
			t.Fatalf("settings changed by a store and load:\n%+v\n%+v", merged, loaded)
		}
	})
}

// normal is settings as JSON, so that nil and empty lists compare alike.
func normal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
