package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/policy/uk"
)

// The settings form sends only what the admin changed, lists split as typed
// (comma or space; response types by comma, since "code id_token" has a space).
func TestSettingsPatchFromTheForm(t *testing.T) {
	p := Policy{Profile: "uk", Enabled: true, Settings: uk.Defaults()}
	current := settingValues(p)
	cases := []struct {
		name    string
		changed map[string]string
		want    string
	}{
		{"nothing changed", nil, `{}`},
		{"algs by space", map[string]string{"signing_algs": "PS256"}, `{"signing_algs":["PS256"]}`},
		{"algs by comma and space", map[string]string{"signing_algs": " ES256,PS256 ,  "}, `{"signing_algs":["ES256","PS256"]}`},
		{"response types by comma", map[string]string{"response_types": "code,  code id_token"}, `{"response_types":["code","code id_token"]}`},
		{"scopes listed", map[string]string{"scopes": "accounts, payments"}, `{"scopes":["accounts","payments"]}`},
		{"a list emptied", map[string]string{"application_types": " "}, `{"application_types":[]}`},
		{"a duration as typed", map[string]string{"clock_skew": "1m"}, `{"clock_skew":"1m"}`},
		{"a box unticked", map[string]string{"allow_delete": ""}, `{"allow_delete":false}`},
		{"a box ticked", map[string]string{"multiple_registrations": "true"}, `{"multiple_registrations":true}`},
		{"bound tokens unticked", map[string]string{"bound_tokens": ""}, `{"bound_tokens":false}`},
		{"a choice", map[string]string{"transport_certificate": "jwks"}, `{"transport_certificate":"jwks"}`},
		{"the same value padded is no change", map[string]string{"grant_types": " " + current["grant_types"] + " "}, `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{}
			for field, v := range current {
				form.Set(field, v)
			}
			for field, v := range tc.changed {
				form.Set(field, v)
			}
			req := httptest.NewRequest(http.MethodPost, "/console/profiles/uk", nil)
			req.PostForm = form
			patch, values := settingsPatch(echo.New().NewContext(req, httptest.NewRecorder()), p)
			if got := normalJSON(t, patch); got != normalJSON(t, []byte(tc.want)) {
				t.Fatalf("patch %s, want %s", got, tc.want)
			}
			for field, v := range tc.changed {
				if want := strings.TrimSpace(v); values[field] != want {
					t.Errorf("the form shows %s as %q again, want %q", field, values[field], want)
				}
			}
			if _, err := p.Settings.Merge(patch); err != nil {
				t.Fatalf("the admin API's merge refuses the patch: %v", err)
			}
		})
	}
}

func normalJSON(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}
