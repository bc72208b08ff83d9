package hydra

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// echoed is Hydra's answer to a create: the whole client back, its JWKS with
// certificate chains included.
const echoed = `{"client_id":"c1","client_secret":"s3cret","created_at":"2026-12-07T10:00:00Z",` +
	`"jwks":{"keys":[{"kty":"RSA","kid":"k","n":"` + "AQAB" + `","e":"AQAB","x5c":["MIIB..."]}]},"contacts":["a@b"],"redirect_uris":["https://tpp/cb"]}`

func TestLeanCreateHandsOnOnlyWhatHydraAloneKnows(t *testing.T) {
	tests := []struct {
		name, method, path string
		status             int
		body               string
		want               string // the body the generated client reads
	}{
		{"a create's answer is cut to the secret and the time", http.MethodPost, "/admin/clients", http.StatusCreated, echoed,
			`{"client_id":"c1","client_secret":"s3cret","created_at":"2026-12-07T10:00:00Z"}`},
		{"a read is whole", http.MethodGet, "/admin/clients/c1", http.StatusOK, echoed, echoed},
		{"a replace is whole", http.MethodPut, "/admin/clients/c1", http.StatusOK, echoed, echoed},
		{"a refused create keeps Hydra's error", http.MethodPost, "/admin/clients", http.StatusConflict, `{"error":"conflict"}`, `{"error":"conflict"}`},
		{"an answer that is not a client is left for the generated client to report", http.MethodPost, "/admin/clients", http.StatusCreated, `[1]`, `[1]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader("{}"))
			res, err := withLeanCreate(srv.Client()).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			got, _ := io.ReadAll(res.Body)
			if string(got) != tt.want || res.ContentLength != int64(len(tt.want)) || res.StatusCode != tt.status {
				t.Fatalf("status %d, length %d, body %s; want %d, %d, %s", res.StatusCode, res.ContentLength, got, tt.status, len(tt.want), tt.want)
			}
		})
	}
}

// The generated client still reads the cut answer into its own type.
func TestLeanCreateAnswerDecodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var sent map[string]any
		_ = json.NewDecoder(r.Body).Decode(&sent)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, echoed)
	}))
	defer srv.Close()
	a, err := NewAdmin(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Create(t.Context(), Client{ID: "c1", RedirectURIs: []string{"https://tpp/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Secret != "s3cret" || c.CreatedAt.IsZero() || c.ID != "c1" || len(c.RedirectURIs) != 1 {
		t.Fatalf("%+v", c)
	}
}
