package plugin_test

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/plugin"
)

// A secret or certificate file made invalid, emptied or deleted is reported
// (an error line naming the variable, obdcr_reload_failures_total{file}); the
// admin token file then fails closed, no admin token working until it is
// mended, and the others keep their last good value, so that a half-rotated
// certificate or Hydra credential does not take obdcr down.
func TestReloadFailuresAreReported(t *testing.T) {
	dir := t.TempDir()
	adminFile, hydraFile := filepath.Join(dir, "admin-token"), filepath.Join(dir, "hydra-token")
	certFile, keyFile, caFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "client-ca.pem")
	first, _ := env.Sandbox.PKI().Server("127.0.0.1", "localhost")
	second, _ := env.Sandbox.PKI().Server("127.0.0.1", "localhost")
	writeFile(t, adminFile, []byte("ops:admin-token-one-0123456789\n"))
	writeFile(t, hydraFile, []byte("hydra-token-0123456789"))
	writeFile(t, certFile, first.CertPEM)
	writeFile(t, keyFile, first.KeyPEM)
	writeFile(t, caFile, env.Sandbox.PKI().CertPEM)
	cfg := env.Config()
	cfg.AdminToken, cfg.AdminTokenFile = "", adminFile
	cfg.HydraAdminAuth = plugin.HydraAdminAuth{TokenFile: hydraFile} // the test Hydra ignores it
	cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSClientCAFile = certFile, keyFile, caFile
	var logs syncBuffer
	o, err := env.StartObdcrLogging(cfg, &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()

	tpp, _ := env.Sandbox.PKI().Client(pkix.Name{CommonName: "reload tpp"}, nil)
	verified := func() bool { // a TPP certificate from the CA in OBDCR_TLS_CLIENT_CA_FILE
		conn, err := tls.Dial("tcp", strings.TrimPrefix(o.URL, "https://"), &tls.Config{RootCAs: env.Sandbox.PKI().Pool(), Certificates: []tls.Certificate{tpp.TLS}})
		if err != nil {
			return false
		}
		defer conn.Close()
		return conn.Handshake() == nil && len(conn.ConnectionState().VerifiedChains) > 0
	}
	ready := func() int { // reads Hydra with HYDRA_ADMIN_TOKEN_FILE's token
		res, err := http.Get(o.AdminURL + "/health/ready")
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	write := func(path string, b []byte) func() { return func() { writeFile(t, path, b) } }
	remove := func(path string) func() {
		return func() {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}
	}
	steps := []struct {
		name     string
		change   func()
		serial   *big.Int       // the certificate a handshake gets
		accepted string         // the admin token that works ("" none)
		refused  string         // one that does not
		failures map[string]int // obdcr_reload_failures_total by file
	}{
		{"admin token file replaced by invalid content: every token refused", write(adminFile, []byte("ops:short")),
			first.TLS.Leaf.SerialNumber, "", "admin-token-one-0123456789", map[string]int{"OBDCR_ADMIN_TOKEN_FILE": 1}},
		{"restored with a new token: it works", write(adminFile, []byte("ops:admin-token-two-0123456789")),
			first.TLS.Leaf.SerialNumber, "admin-token-two-0123456789", "admin-token-one-0123456789", map[string]int{"OBDCR_ADMIN_TOKEN_FILE": 1}},
		{"admin token file emptied", write(adminFile, nil),
			first.TLS.Leaf.SerialNumber, "", "admin-token-two-0123456789", map[string]int{"OBDCR_ADMIN_TOKEN_FILE": 2}},
		{"restored after empty", write(adminFile, []byte("ops:admin-token-two-0123456789")),
			first.TLS.Leaf.SerialNumber, "admin-token-two-0123456789", "", map[string]int{"OBDCR_ADMIN_TOKEN_FILE": 2}},
		{"admin token file deleted", remove(adminFile),
			first.TLS.Leaf.SerialNumber, "", "admin-token-two-0123456789", map[string]int{"OBDCR_ADMIN_TOKEN_FILE": 3}},
		{"restored after delete", write(adminFile, []byte("ops:admin-token-three-0123456789")),
			first.TLS.Leaf.SerialNumber, "admin-token-three-0123456789", "admin-token-two-0123456789", map[string]int{"OBDCR_ADMIN_TOKEN_FILE": 3}},
		{"server certificate replaced by invalid PEM: the old one is served", write(certFile, []byte("-----BEGIN CERTIFICATE-----\nnot\n")),
			first.TLS.Leaf.SerialNumber, "admin-token-three-0123456789", "", map[string]int{"OBDCR_TLS_CERT_FILE": 1}},
		{"server certificate and key replaced by a good pair: the new one", func() { writeFile(t, keyFile, second.KeyPEM); writeFile(t, certFile, second.CertPEM) },
			second.TLS.Leaf.SerialNumber, "admin-token-three-0123456789", "", map[string]int{"OBDCR_TLS_CERT_FILE": 1}},
		{"client CA file emptied: TPP certificates still verified", write(caFile, nil),
			second.TLS.Leaf.SerialNumber, "admin-token-three-0123456789", "", map[string]int{"OBDCR_TLS_CLIENT_CA_FILE": 1}},
		{"Hydra token file deleted: Hydra still reached", remove(hydraFile),
			second.TLS.Leaf.SerialNumber, "admin-token-three-0123456789", "", map[string]int{"HYDRA_ADMIN_TOKEN_FILE": 1}},
	}
	failures := map[string]int{}
	for _, s := range steps {
		s.change()
		for f, n := range s.failures {
			failures[f] = n
		}
		var problems []string
		for deadline := time.Now().Add(6 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			problems = problems[:0]
			if s.accepted != "" {
				if st, _ := adminCallAs(t, o, s.accepted, http.MethodGet, "/admin/policies", ""); st != http.StatusOK {
					problems = append(problems, fmt.Sprintf("the admin token that should work got %d", st))
				}
			}
			if s.refused != "" {
				if st, _ := adminCallAs(t, o, s.refused, http.MethodGet, "/admin/policies", ""); st != http.StatusUnauthorized {
					problems = append(problems, fmt.Sprintf("the admin token that should be refused got %d", st))
				}
			}
			if got := servedSerial(t, o.URL); got.Cmp(s.serial) != 0 {
				problems = append(problems, "served certificate "+got.String()+", want "+s.serial.String())
			}
			if !verified() {
				problems = append(problems, "a TPP certificate was not verified")
			}
			if st := ready(); st != http.StatusOK {
				problems = append(problems, fmt.Sprintf("ready: %d", st))
			}
			for f, want := range failures {
				if got, err := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_reload_failures_total", map[string]string{"file": f}); err != nil || int(got) != want {
					problems = append(problems, fmt.Sprintf("obdcr_reload_failures_total{file=%q} %v (%v), want %d", f, got, err, want))
				}
			}
			if len(problems) == 0 || time.Now().After(deadline) {
				break
			}
		}
		if len(problems) != 0 {
			t.Fatalf("%s: %s\nlog:\n%s", s.name, strings.Join(problems, "; "), logs.String())
		}
	}
	// A file that breaks is reported when it breaks, not at its next use: here
	// nothing asks for the admin token.
	writeFile(t, adminFile, nil)
	failures["OBDCR_ADMIN_TOKEN_FILE"]++
	for deadline := time.Now().Add(6 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got, err := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_reload_failures_total", map[string]string{"file": "OBDCR_ADMIN_TOKEN_FILE"})
		if err == nil && int(got) == failures["OBDCR_ADMIN_TOKEN_FILE"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an emptied admin token file nobody used: %v failures (%v), want %d", got, err, failures["OBDCR_ADMIN_TOKEN_FILE"])
		}
	}
	// one error line per failure, each naming its variable
	for f, want := range failures {
		if got := strings.Count(logs.String(), `"file":"`+f+`"`); got != want || !strings.Contains(logs.String(), `"level":"ERROR","msg":"a changed file could not be applied`) {
			t.Errorf("%d error lines name %s, want %d", got, f, want)
		}
	}
}
