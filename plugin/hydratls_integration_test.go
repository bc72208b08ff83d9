package plugin_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/plugin"
)

// Hydra's public API served over TLS from the bank's private CA, named in
// HYDRA_ADMIN_CA_FILE: obdcr serve's own setup check reaches it as obdcr doctor
// does, and finds nothing wrong with a correct deployment. Before one
// constructor built Hydra's clients for both, serve's check probed the public
// API without those roots and reported Hydra's registration endpoint on.
func TestSetupCheckReachesHydraPublicAPIOverPrivateTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := sandbox.NewPKI("bank private CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Server("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "bank-ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// Hydra's public API behind a TLS terminator with the private CA's certificate.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	publicURL := "https://" + ln.Addr().String()
	const obdcrPublic = "https://obdcr.bank.example"
	h, err := testenv.StartHydra("", "URLS_SELF_ISSUER="+publicURL, "URLS_SELF_PUBLIC="+publicURL,
		"WEBFINGER_OIDC_DISCOVERY_CLIENT_REGISTRATION_URL="+obdcrPublic+"/register")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	upstream, _ := url.Parse(h.PublicURL)
	proxy := &http.Server{Handler: httputil.NewSingleHostReverseProxy(upstream), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = proxy.Serve(ln) }()
	defer proxy.Close()

	o := startObdcr(t, func(c *serverConfig) {
		c.HydraAdminURL, c.HydraPublicURL, c.Issuer, c.PublicURL = h.AdminURL, publicURL, publicURL, obdcrPublic
		c.HydraAdminAuth.CAFile = caFile
	})
	var findings []plugin.Finding
	for deadline := time.Now().Add(30 * time.Second); findings == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the setup check did not end within 30 s")
		}
		findings = o.Server.SetupFindings()
	}
	for _, f := range findings {
		if f.Severity != plugin.SeverityOK {
			t.Errorf("a correct deployment got a finding: %s %s: %s", f.Severity, f.Check, f.Message)
		}
		if f.Check == "hydra.registration_endpoint" && !strings.Contains(f.Message, "off") {
			t.Errorf("registration endpoint: %s", f.Message)
		}
	}
	if t.Failed() {
		return
	}
	// And obdcr's discovery, made from Hydra's over the same TLS, is served.
	res, err := anonymous().Get(o.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("discovery over Hydra's private TLS: %d", res.StatusCode)
	}
}
