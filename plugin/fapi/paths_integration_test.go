package fapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEdgeListenerPaths: the issuer's public face passes Hydra's pages, but
// its userinfo takes no token the edge bound (a stolen one would do there,
// without its certificate: RFC 8705 §3), an empty verifier does not have Hydra
// start a flow the edge never checked, and a POSTed authorization request is
// read as carefully as a GET.
func TestEdgeListenerPaths(t *testing.T) {
	startEdge(t, nil)
	doc := readDoc(t)
	browser := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsRoots()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cases := []struct {
		name, method, path, contentType, body string
		status                                int
		error                                 string // the JSON answer's error, or what Hydra's page says
	}{
		{"Hydra's error page", "GET", "/oauth2/fallbacks/error?error=x", "", "", http.StatusInternalServerError, "An OAuth 2.0 Error Occurred"},
		{"Hydra's health", "GET", "/health/alive", "", "", http.StatusOK, `"status":"ok"`},
		{"userinfo, the token in the body", "POST", "/userinfo", "application/x-www-form-urlencoded", "access_token=x", http.StatusUnauthorized, "invalid_request"},
		{"an empty login verifier", "GET", "/oauth2/auth?login_verifier=&client_id=nobody&response_type=code", "", "", http.StatusBadRequest, ""},
		{"a POST with a query", "POST", "/oauth2/auth?client_id=nobody", "application/x-www-form-urlencoded", "x=1", http.StatusBadRequest, ""},
		{"a POST not a form", "POST", "/oauth2/auth", "application/json", `{"client_id":"nobody"}`, http.StatusBadRequest, ""},
		{"a POST over the bound", "POST", "/oauth2/auth", "application/x-www-form-urlencoded", "request=" + strings.Repeat("a", 70<<10), http.StatusBadRequest, ""},
		{"a POST for an unknown client", "POST", "/oauth2/auth", "application/x-www-form-urlencoded", "client_id=nobody&request_uri=urn:x", http.StatusBadRequest, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, doc.Issuer+tc.path, strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			res, err := browser.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("HTTP %d (Location %q): %.300s; want %d", res.StatusCode, res.Header.Get("Location"), body, tc.status)
			}
			if tc.error != "" && res.StatusCode < 500 && res.StatusCode != http.StatusOK {
				var e struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
				}
				if json.Unmarshal(body, &e) != nil || e.Error != tc.error || e.Description == "" {
					t.Fatalf("answer %.300s; want error %s with a description", body, tc.error)
				}
			} else if !strings.Contains(string(body), tc.error) {
				t.Fatalf("answer %.300s; want Hydra's, saying %q", body, tc.error)
			}
		})
	}
}
