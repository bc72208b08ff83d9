package plugin_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin"
)

// servedSerial is the serial of the certificate a new TLS handshake with addr gets.
func servedSerial(t *testing.T, url string) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), &tls.Config{RootCAs: env.Sandbox.PKI().Pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := testenv.WriteFileAtomic(path, b); err != nil {
		t.Fatal(err)
	}
}

// Hydra's admin API behind a guard that wants TLS from a private CA, a bearer
// token and a client certificate. obdcr registers, manages and deletes through
// it; then every secret and certificate is rotated during a load run, with no
// failed registration and no restart: Hydra's token, obdcr's client certificate
// to Hydra and the CA it checks Hydra's certificate with, obdcr's own certificate and the
// client CAs it trusts TPPs with, and the admin tokens.
func TestHydraBehindAGuardWithEverythingRotating(t *testing.T) {
	dir := t.TempDir()
	guard, err := testenv.StartGuard(dir, env.Hydra.AdminURL, "Bearer hydra-token-one-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	defer guard.Stop()
	tokenFile := filepath.Join(dir, "hydra-token")
	writeFile(t, tokenFile, []byte("hydra-token-one-0123456789\n"))
	certFile, keyFile, _, err := guard.ClientCert(dir, "hydra-client")
	if err != nil {
		t.Fatal(err)
	}
	adminTokenFile := filepath.Join(dir, "admin-token")
	writeFile(t, adminTokenFile, []byte("ops:admin-token-one-0123456789"))
	// obdcr's own certificate and client CAs, in files of this test's own
	serverCert, serverKey, clientCAs := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "client-ca.pem")
	first, _ := env.Sandbox.PKI().Server("127.0.0.1", "localhost")
	writeFile(t, serverCert, first.CertPEM)
	writeFile(t, serverKey, first.KeyPEM)
	writeFile(t, clientCAs, env.Sandbox.PKI().CertPEM)

	cfg := env.Config()
	cfg.HydraAdminURL = guard.URL
	cfg.HydraAdminAuth = plugin.HydraAdminAuth{TokenFile: tokenFile, ClientCertFile: certFile, ClientKeyFile: keyFile, CAFile: guard.CAFile}
	cfg.AdminToken, cfg.AdminTokenFile = "", adminTokenFile
	cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSClientCAFile = serverCert, serverKey, clientCAs
	var logs syncBuffer
	o, err := env.StartObdcrLogging(cfg, &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()
	ctx := context.Background()
	admin := func(token string) int {
		status, _ := adminCallAs(t, o, token, http.MethodGet, "/admin/policies", "")
		return status
	}
	if s := admin("admin-token-one-0123456789"); s != http.StatusOK {
		t.Fatalf("the admin token from the file: %d", s)
	}
	if got, err := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_certificate_expiry_timestamp_seconds", map[string]string{"certificate": "server"}); err != nil || int64(got) != first.TLS.Leaf.NotAfter.Unix() {
		t.Fatalf("the server certificate's expiry: %v (%v), want %d", got, err, first.TLS.Leaf.NotAfter.Unix())
	}

	// Every admin call to Hydra goes through the guard: create, introspect, get, delete.
	r := registerTPP(t, o, sandbox.UK)
	if res, _ := r.client.Get(ctx, o.URL, r.clientID, r.token); res.Status != http.StatusOK {
		t.Fatalf("GET through the guard: %d %s", res.Status, res.Body)
	}
	if res, _ := r.client.Delete(ctx, o.URL, r.clientID, r.token); res.Status != http.StatusNoContent {
		t.Fatalf("DELETE through the guard: %d %s", res.Status, res.Body)
	}
	if ready, _ := http.Get(o.AdminURL + "/health/ready"); ready.StatusCode != http.StatusOK {
		t.Fatalf("ready through the guard: %d", ready.StatusCode)
	}

	// Load: one TPP registering again and again (several registrations allowed).
	if s, b := adminCallAs(t, o, "admin-token-one-0123456789", http.MethodPut, "/admin/policies/uk", `{"settings":{"multiple_registrations":true}}`); s != 200 {
		t.Fatalf("%d %s", s, b)
	}
	tpp, c := newTPP(t, sandbox.UK)
	var done, failed, ok atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Load() == 0 {
				res, err := c.Register(ctx, o.URL, request(t, tpp, nil, nil))
				if err != nil || res.Status != http.StatusCreated {
					failed.Add(1)
					t.Errorf("a registration failed during rotation: %v %d %s", err, res.Status, res.Body)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)

	// Rotate everything while it runs.
	guard.Allow("Bearer hydra-token-one-0123456789", "Bearer hydra-token-two-0123456789")
	writeFile(t, tokenFile, []byte("hydra-token-two-0123456789"))
	_, _, newClientSerial, err := guard.ClientCert(dir, "hydra-client")
	if err != nil {
		t.Fatal(err)
	}
	// a renewal that brought a certificate about to expire: the expiry metric shows it
	second, _ := env.Sandbox.PKI().ServerUntil(time.Now().Add(10*24*time.Hour), "127.0.0.1", "localhost")
	writeFile(t, serverCert, second.CertPEM)
	writeFile(t, serverKey, second.KeyPEM)
	newCA, _ := sandbox.NewPKI("a directory's new issuing CA")
	writeFile(t, clientCAs, append(append([]byte{}, env.Sandbox.PKI().CertPEM...), newCA.CertPEM...))
	writeFile(t, adminTokenFile, []byte("ops:admin-token-two-0123456789"))
	// Hydra's side moves to a new private CA the usual way: the bundle obdcr
	// trusts gains the new CA, the guard's certificate moves, the old CA goes.
	guardCA, _ := sandbox.NewPKI("the guard's new CA")
	writeFile(t, guard.CAFile, append(append([]byte{}, guard.PKI.CertPEM...), guardCA.CertPEM...))
	time.Sleep(2 * time.Second) // files are looked at once a second
	guard.Allow("Bearer hydra-token-two-0123456789")
	if err := guard.MoveToCA(guardCA); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	writeFile(t, guard.CAFile, guardCA.CertPEM)
	time.Sleep(2 * time.Second)
	okWithNewCAOnly := ok.Load()
	time.Sleep(time.Second)
	done.Store(1)
	wg.Wait()
	t.Logf("%d registrations during the rotation, %d failed", ok.Load(), failed.Load())
	if ok.Load() < 4 {
		t.Fatalf("only %d registrations ran", ok.Load())
	}
	// The guard keeps no connection alive: each of these was a handshake
	// verified against the new CA alone.
	if after := ok.Load() - okWithNewCAOnly; after < 2 {
		t.Fatalf("%d registrations once HYDRA_ADMIN_CA_FILE held only the new CA", after)
	}

	if got := servedSerial(t, o.URL); got.Cmp(second.TLS.Leaf.SerialNumber) != 0 {
		t.Errorf("a new handshake got serial %v, want the new certificate's %v", got, second.TLS.Leaf.SerialNumber)
	}
	for name, want := range map[string]time.Time{"server": second.TLS.Leaf.NotAfter, "hydra_client": leafOf(t, certFile).NotAfter} {
		got, err := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_certificate_expiry_timestamp_seconds", map[string]string{"certificate": name})
		if err != nil || int64(got) != want.Unix() {
			t.Errorf("the %s certificate's expiry after rotation: %v (%v), want %d", name, got, err, want.Unix())
		}
	}
	if got := guard.LastSerial(); got.Cmp(newClientSerial) != 0 {
		t.Errorf("Hydra's guard last saw client certificate %v, want the new one %v", got, newClientSerial)
	}
	if s := admin("admin-token-one-0123456789"); s != http.StatusUnauthorized {
		t.Errorf("the old admin token after rotation: %d", s)
	}
	if s := admin("admin-token-two-0123456789"); s != http.StatusOK {
		t.Errorf("the new admin token after rotation: %d", s)
	}
	// A transport certificate from the new CA is accepted now.
	leaf, _ := newCA.Client(pkix.Name{CommonName: "new tpp"}, nil)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(o.URL, "https://"), &tls.Config{RootCAs: env.Sandbox.PKI().Pool(), Certificates: []tls.Certificate{leaf.TLS}})
	if err != nil {
		t.Errorf("a certificate from the CA added to the bundle: %v", err)
	} else {
		_ = conn.Handshake()
		if len(conn.ConnectionState().VerifiedChains) == 0 {
			t.Errorf("the new CA's certificate was not verified")
		}
		conn.Close()
	}

	// Credentials Hydra's guard refuses: 503 to the TPP, never 400; unready; one log line naming the variable.
	guard.Allow("Bearer something-else")
	for range 3 {
		res, _ := c.Register(ctx, o.URL, request(t, tpp, nil, nil))
		if res.Status != http.StatusServiceUnavailable || res.JSON()["error"] != "temporarily_unavailable" {
			t.Fatalf("Hydra refusing obdcr's credentials: %d %s", res.Status, res.Body)
		}
	}
	if ready, _ := http.Get(o.AdminURL + "/health/ready"); ready.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("ready while Hydra refuses obdcr's credentials: %d", ready.StatusCode)
	}
	if n := strings.Count(logs.String(), "refused obdcr's credentials; registrations fail with 503"); n != 1 || !strings.Contains(logs.String(), "HYDRA_ADMIN_TOKEN_FILE") {
		t.Errorf("%d log lines about refused credentials (want 1, naming HYDRA_ADMIN_TOKEN_FILE)", n)
	}
	// and a series of its own, which the ObdcrHydraRefusesCredentials alert reads
	if n, err := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_hydra_request_duration_seconds", map[string]string{"operation": "create", "result": "unauthorized"}); err != nil || n != 3 {
		t.Errorf("Hydra creates refused for obdcr's credentials: %v (%v), want 3", n, err)
	}
}

// guarded starts a guard in front of the test Hydra's admin API that accepts
// header, and returns auth completed with the client certificate and CA obdcr
// needs to reach it.
func guarded(t *testing.T, header string, auth plugin.HydraAdminAuth) (*testenv.Guard, plugin.HydraAdminAuth) {
	t.Helper()
	dir := t.TempDir()
	guard, err := testenv.StartGuard(dir, env.Hydra.AdminURL, header)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(guard.Stop)
	certFile, keyFile, _, err := guard.ClientCert(dir, "obdcr")
	if err != nil {
		t.Fatal(err)
	}
	auth.ClientCertFile, auth.ClientKeyFile, auth.CAFile = certFile, keyFile, guard.CAFile
	return guard, auth
}

// Each way of authenticating to Hydra's admin API, through a guard that accepts
// only the header that way should send: a registration passes, and the guard
// turned nothing away.
func TestHydraAdminCredentialsEachWay(t *testing.T) {
	dir := t.TempDir()
	secret := func(name, value string) string {
		path := filepath.Join(dir, name)
		writeFile(t, path, []byte(value+"\n"))
		return path
	}
	cases := []struct {
		name   string
		auth   plugin.HydraAdminAuth
		header string // what the guard accepts
	}{
		{"HYDRA_ADMIN_TOKEN", plugin.HydraAdminAuth{Token: "api-key-0123456789"}, "Bearer api-key-0123456789"},
		{"HYDRA_ADMIN_TOKEN_FILE", plugin.HydraAdminAuth{TokenFile: secret("token", "file-key-0123456789")}, "Bearer file-key-0123456789"},
		{"HYDRA_ADMIN_BASIC_AUTH", plugin.HydraAdminAuth{BasicAuth: "obdcr:pa:ss"}, "Basic b2JkY3I6cGE6c3M="},
		{"HYDRA_ADMIN_BASIC_AUTH_FILE", plugin.HydraAdminAuth{BasicAuthFile: secret("basic", "obdcr:from-file")}, "Basic b2JkY3I6ZnJvbS1maWxl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			guard, auth := guarded(t, tc.header, tc.auth)
			o := startObdcr(t, func(c *serverConfig) { c.HydraAdminURL, c.HydraAdminAuth = guard.URL, auth })
			r := registerTPP(t, o, sandbox.UK)
			if res, _ := r.client.Delete(context.Background(), o.URL, r.clientID, r.token); res.Status != http.StatusNoContent {
				t.Fatalf("DELETE through the guard: %d %s", res.Status, res.Body)
			}
			if n := guard.Refused(); n != 0 {
				t.Errorf("the guard turned away %d of obdcr's calls", n)
			}
		})
	}
}

// An admin deletion is audited before it happens; if Hydra then fails to
// delete, a second entry says so, the client stays, and the admin may retry.
func TestAdminDeleteThatHydraFails(t *testing.T) {
	guard, auth := guarded(t, "Bearer hydra-token-0123456789", plugin.HydraAdminAuth{Token: "hydra-token-0123456789"})
	o := startObdcr(t, func(c *serverConfig) { c.HydraAdminURL, c.HydraAdminAuth = guard.URL, auth })
	r := registerTPP(t, o, sandbox.UK)
	guard.Fail(http.MethodDelete)
	status, body := adminCall(t, o, http.MethodDelete, "/admin/registrations/"+r.clientID, "")
	if status < 500 || status == http.StatusInternalServerError || !strings.Contains(string(body), "temporarily_unavailable") {
		t.Fatalf("a deletion Hydra fails: %d %s", status, body)
	}
	if _, err := hydraAdmin(t).Get(context.Background(), r.clientID); err != nil {
		t.Fatalf("the client after a failed deletion: %v", err)
	}
	_, audit := adminCall(t, o, http.MethodGet, "/admin/audit?kind=management&limit=2&software_id="+r.tpp.SoftwareID, "")
	var entries []struct{ Outcome, Description, ClientID string }
	if err := json.Unmarshal(audit, &entries); err != nil || len(entries) != 2 ||
		entries[0].Outcome != "failed" || !strings.Contains(entries[0].Description, "deletion failed") || entries[1].Outcome != "deleted" {
		t.Fatalf("the audit of a failed deletion, newest first: %s", audit)
	}
	guard.Fail()
	if status, body := adminCall(t, o, http.MethodDelete, "/admin/registrations/"+r.clientID, ""); status != http.StatusNoContent {
		t.Fatalf("the retry: %d %s", status, body)
	}
	if _, err := hydraAdmin(t).Get(context.Background(), r.clientID); err != hydra.ErrNotFound {
		t.Fatalf("the client after the retry: %v", err)
	}
}

// leafOf reads the first certificate of a PEM file.
func leafOf(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
