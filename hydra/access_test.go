package hydra_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/hydra"
)

// Hydra's TLS certificate moves to a new CA while obdcr runs: the CA bundle it
// trusts is rotated the usual way (old and new, then new alone), and every
// request verifies against the bundle of its time, with no restart.
func TestTransportsFollowRotatedRoots(t *testing.T) {
	oldCA, err := sandbox.NewPKI("Hydra's old CA")
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := sandbox.NewPKI("Hydra's new CA")
	if err != nil {
		t.Fatal(err)
	}
	oldLeaf, _ := oldCA.Server("127.0.0.1")
	newLeaf, _ := newCA.Server("127.0.0.1")
	var served atomic.Pointer[tls.Certificate]
	served.Store(&oldLeaf.TLS)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return served.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	// A handshake per request, as after a Hydra restart.
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	srv.SetKeepAlivesEnabled(false)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "https://" + ln.Addr().String()

	both := oldCA.Pool()
	both.AddCert(newCA.Cert)
	var trusted atomic.Pointer[x509.CertPool]
	transports := map[string]http.RoundTripper{
		"admin":  hydra.NewAdminTransport(hydra.AdminAccess{RootCAs: trusted.Load, Authorization: func() string { return "Bearer t" }}),
		"public": hydra.NewPublicTransport(trusted.Load),
	}
	steps := []struct {
		name   string
		trust  *x509.CertPool
		serve  *tls.Certificate
		wantOK bool
	}{
		{"the old CA, Hydra on the old certificate", oldCA.Pool(), &oldLeaf.TLS, true},
		{"the old CA, Hydra moved to the new one", oldCA.Pool(), &newLeaf.TLS, false},
		{"the bundle of both, the old certificate", both, &oldLeaf.TLS, true},
		{"the bundle of both, the new certificate", both, &newLeaf.TLS, true},
		{"the new CA alone, the new certificate", newCA.Pool(), &newLeaf.TLS, true},
		{"the new CA alone, the old certificate", newCA.Pool(), &oldLeaf.TLS, false},
	}
	for _, s := range steps {
		trusted.Store(s.trust)
		served.Store(s.serve)
		for name, rt := range transports {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			res, err := rt.RoundTrip(req)
			if err == nil {
				res.Body.Close()
			}
			if (err == nil) != s.wantOK {
				t.Errorf("%s, %s transport: error %v, want ok=%v", s.name, name, err, s.wantOK)
			}
		}
	}
}

// With no CA file, the system roots: a private CA's certificate is refused.
func TestTransportsWithoutRootsUseTheSystemRoots(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	for name, rt := range map[string]http.RoundTripper{"admin": hydra.NewAdminTransport(hydra.AdminAccess{}), "public": hydra.NewPublicTransport(nil)} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if res, err := rt.RoundTrip(req); err == nil {
			res.Body.Close()
			t.Errorf("%s transport trusted httptest's own CA without being told", name)
		}
	}
}
