package plugin

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/plugin/service"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// FuzzManagementPath: whatever path, token and proxy header a caller without a
// certificate sends to /register/{client_id}, the answer is 401 and nothing is
// audited, whatever the header's bytes.
func FuzzManagementPath(f *testing.F) {
	for _, s := range []struct{ id, auth, header string }{
		{"00000000-0000-0000-0000-000000000000", "Bearer x", ""},
		{"x", "", "-----BEGIN CERTIFICATE-----%0AMIIB%0A-----END CERTIFICATE-----"},
		{strings.Repeat("a", 300), "Bearer " + strings.Repeat("b", 300), "%ZZ"},
		{"%0a%1b[2K", "Basic abc", "\x00\xff"},
	} {
		f.Add(s.id, s.auth, s.header)
	}
	mem := store.NewMemory()
	tr, err := newTracing(context.Background(), "test")
	if err != nil {
		f.Fatal(err)
	}
	log, m := slog.New(slog.NewJSONHandler(discard{}, nil)), newMetrics()
	s := &Server{tracing: tr, log: log, store: mem, metrics: m,
		svc: service.New(service.Deps{Registrar: &policy.Registrar{}, Store: mem, Log: log, AuditRefusals: 60,
			Metrics: service.Metrics{Registrations: m.registrations, Management: m.management, Suppressed: m.countSuppressed}}),
		unprovenLog: newLogSampler(5, 20), certs: newCertSource("X-Client-Cert", headerFormats["pem-urlencoded"], []string{"127.0.0.0/8"}, x509.NewCertPool)}
	s.tpp = s.newEcho("tpp")
	s.tpp.GET("/register/:client_id", s.getRegistration)
	s.tpp.PUT("/register/:client_id", s.putRegistration)
	s.tpp.DELETE("/register/:client_id", s.deleteRegistration)
	f.Fuzz(func(t *testing.T, id, auth, header string) {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			req := httptest.NewRequest(method, "/register/x", nil)
			req.URL.Path, req.URL.RawPath = "/register/"+id, "/register/"+url.PathEscape(id)
			req.RemoteAddr = "127.0.0.1:40000"
			if auth != "" {
				req.Header["Authorization"] = []string{auth}
			}
			if header != "" {
				req.Header["X-Client-Cert"] = []string{header}
			}
			rec := httptest.NewRecorder()
			s.tpp.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized && rec.Code != http.StatusNotFound {
				t.Fatalf("%s %q: %d %s", method, id, rec.Code, rec.Body)
			}
		}
		if got, _ := mem.Audit(context.Background(), store.AuditQuery{}); len(got) != 0 {
			t.Fatalf("a caller without a certificate was audited: %+v", got)
		}
	})
}
