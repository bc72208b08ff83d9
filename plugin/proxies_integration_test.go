package plugin_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/plugin"
)

// A TPP registers and manages its registration through real nginx and HAProxy
// terminating mutual TLS in front of obdcr, each with its configuration from
// deploy/proxies, as the README shows it, against a Hydra whose admin API wants
// a bearer token and a client certificate over TLS from a private CA.
func TestThroughRealProxies(t *testing.T) {
	dir := t.TempDir()
	leaf, err := env.Sandbox.PKI().Server("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, pemFile := filepath.Join(dir, "proxy.crt"), filepath.Join(dir, "proxy.key"), filepath.Join(dir, "proxy.pem")
	for path, b := range map[string][]byte{cert: leaf.CertPEM, key: leaf.KeyPEM, pemFile: append(append([]byte{}, leaf.CertPEM...), leaf.KeyPEM...)} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	proxies := []struct {
		name, format string
		start        func(vars map[string]string) (*testenv.Proxy, error)
	}{
		{"nginx", "pem-urlencoded", func(v map[string]string) (*testenv.Proxy, error) {
			return testenv.StartNginx("../deploy/proxies/nginx-mtls.conf", v)
		}},
		{"haproxy", "der-base64", func(v map[string]string) (*testenv.Proxy, error) {
			return testenv.StartHAProxy("../deploy/proxies/haproxy.cfg", v)
		}},
	}
	// Hydra's admin API as a bank runs it: a bearer token, a client certificate, TLS from a private CA.
	guard, err := testenv.StartGuard(dir, env.Hydra.AdminURL, "Bearer proxied-hydra-token-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	defer guard.Stop()
	clientCert, clientKey, _, err := guard.ClientCert(dir, "obdcr-to-hydra")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range proxies {
		t.Run(p.name, func(t *testing.T) {
			o := startObdcr(t, func(c *serverConfig) {
				c.ClientCertHeader, c.ClientCertFormat, c.TrustedProxies = "X-SSL-Client-Cert", p.format, []string{"127.0.0.1/32"}
				c.HydraAdminURL = guard.URL
				c.HydraAdminAuth = plugin.HydraAdminAuth{Token: "proxied-hydra-token-0123456789",
					ClientCertFile: clientCert, ClientKeyFile: clientKey, CAFile: guard.CAFile}
			})
			proxy, err := p.start(map[string]string{
				"SERVER_CERT": cert, "SERVER_KEY": key, "SERVER_PEM": pemFile, "CLIENT_CA": env.Sandbox.CAFile,
				"OBDCR": o.URL[len("https://"):], "OBDCR_CA": env.Sandbox.CAFile,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Stop()
			ctx := context.Background()
			tpp, c := newTPP(t, sandbox.UK)
			res, err := c.Register(ctx, proxy.URL, request(t, tpp, nil, nil))
			if err != nil || res.Status != http.StatusCreated {
				t.Fatalf("register through %s: %v %d %s\n%s", p.name, err, res.Status, res.Body, proxy.Log())
			}
			id := res.JSON()["client_id"].(string)
			tok, _, err := c.Token(ctx, env.Hydra.TokenURL(), id, "")
			if err != nil {
				t.Fatal(err)
			}
			if res, _ := c.Get(ctx, proxy.URL, id, tok); res.Status != http.StatusOK {
				t.Fatalf("GET through %s: %d %s", p.name, res.Status, res.Body)
			}
			if res, _ := c.Update(ctx, proxy.URL, id, tok, request(t, tpp, nil, nil)); res.Status != http.StatusOK {
				t.Fatalf("PUT through %s: %d %s", p.name, res.Status, res.Body)
			}
			// No certificate, and a forged header: the proxy drops the header, obdcr answers 401.
			leafPEM, _ := tpp.Transport()
			forger := sandbox.NewClientWithCert(tpp, env.Sandbox.PKI().Pool(), nil)
			req, _ := http.NewRequest(http.MethodPost, proxy.URL+"/register", nil)
			req.Header.Set("Content-Type", "application/jwt")
			req.Header.Set("X-SSL-Client-Cert", url.QueryEscape(string(leafPEM.CertPEM)))
			forged, err := forger.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			forged.Body.Close()
			if forged.StatusCode != http.StatusUnauthorized {
				t.Errorf("a forged header through %s: %d", p.name, forged.StatusCode)
			}
			// Discovery needs no certificate.
			if res, _ := forger.Discovery(ctx, proxy.URL); res.Status != http.StatusOK {
				t.Errorf("discovery through %s: %d", p.name, res.Status)
			}
			if res, _ := c.Delete(ctx, proxy.URL, id, tok); res.Status != http.StatusNoContent {
				t.Fatalf("DELETE through %s: %d %s", p.name, res.Status, res.Body)
			}
		})
	}
}
