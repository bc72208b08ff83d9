package fapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestProxyGivesSmallAnswersALength(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		wantLength  bool // the browser gets a Content-Length, not chunks
	}{
		{name: "a redirect's small page", method: http.MethodGet, contentType: "text/html", body: `<a href="/x">See Other</a>`, wantLength: true},
		{name: "an answer at the limit", method: http.MethodGet, contentType: "application/json", body: strings.Repeat("a", wholeAnswer), wantLength: true},
		{name: "a longer answer still streams, whole", method: http.MethodGet, contentType: "application/json", body: strings.Repeat("b", wholeAnswer+10)},
		{name: "an event stream is never held", method: http.MethodGet, contentType: "text/event-stream", body: "data: 1\n\n"},
		{name: "HEAD keeps its headers as they are", method: http.MethodHead, contentType: "text/html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hydra := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(http.StatusSeeOther)
				if r.Method != http.MethodHead {
					// Flushing first makes the answer chunked, as Hydra's are.
					w.(http.Flusher).Flush()
					_, _ = io.WriteString(w, tt.body)
				}
			}))
			defer hydra.Close()
			target, _ := url.Parse(hydra.URL)
			edge := httptest.NewServer(newProxy(target, http.DefaultTransport))
			defer edge.Close()
			req, _ := http.NewRequest(tt.method, edge.URL+"/oauth2/sessions/logout", nil)
			res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			got, _ := io.ReadAll(res.Body)
			if string(got) != tt.body || res.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d, %d bytes; want %d, %d bytes", res.StatusCode, len(got), http.StatusSeeOther, len(tt.body))
			}
			if hasLength := res.ContentLength == int64(len(tt.body)) && len(res.TransferEncoding) == 0; hasLength != tt.wantLength {
				t.Fatalf("Content-Length %d, Transfer-Encoding %v; want a length: %v", res.ContentLength, res.TransferEncoding, tt.wantLength)
			}
		})
	}
}
