package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/obdcr/obdcr/plugin"
	"github.com/obdcr/obdcr/policy"
)

// Env is the sandbox and Hydra that obdcr instances of a test run share.
type Env struct {
	Sandbox *Sandbox
	Hydra   *Hydra
	// EdgeURL is the issuer when Hydra sits behind obdcr's FAPI edge (StartEdge).
	EdgeURL string
}

// AdminToken is the admin API token of obdcr instances started here.
const AdminToken = "integration-admin-token-0123456789"

// Issuer is what obdcr instances here accept as aud.
func (e *Env) Issuer() string {
	if e.EdgeURL != "" {
		return e.EdgeURL
	}
	return e.Hydra.PublicURL
}

// Start makes a sandbox in dir, then Hydra trusting the sandbox's CA.
func Start(dir string) (*Env, error) { return start(dir) }

func start(dir string, hydraEnv ...string) (*Env, error) {
	sb, err := StartSandbox(dir)
	if err != nil {
		return nil, err
	}
	// Hydra sends the customer to the sandbox's login and consent app, which
	// accepts through Hydra's admin API: flows can run to the end.
	h, err := StartHydra(sb.CAFile, append([]string{"URLS_LOGIN=" + sb.BaseURL + "/hydra/login", "URLS_CONSENT=" + sb.BaseURL + "/hydra/consent",
		"URLS_ERROR=" + sb.BaseURL + "/hydra/error"}, hydraEnv...)...)
	if err != nil {
		sb.Stop()
		return nil, err
	}
	if err := sb.SetHydraAdmin(h.AdminURL); err != nil {
		h.Stop()
		sb.Stop()
		return nil, err
	}
	return &Env{Sandbox: sb, Hydra: h}, nil
}

// Stop ends Hydra and the sandbox.
func (e *Env) Stop() {
	e.Hydra.Stop()
	e.Sandbox.Stop()
}

// Config is an obdcr configuration wired to this environment.
func (e *Env) Config() plugin.Config {
	cfg, err := plugin.LoadConfig(e.Environ())
	if err != nil {
		panic(err) // the values of Environ are valid
	}
	return cfg
}

// Environ is the environment Config reads, for tests that read it otherwise
// (more variables, or other jurisdictions).
func (e *Env) Environ() map[string]string {
	return map[string]string{
		"OBDCR_TLS_CERT_FILE":      filepath.Join(e.Sandbox.Dir, "obdcr-cert.pem"),
		"OBDCR_TLS_KEY_FILE":       filepath.Join(e.Sandbox.Dir, "obdcr-key.pem"),
		"OBDCR_TLS_CLIENT_CA_FILE": e.Sandbox.CAFile,
		"OBDCR_ISSUER":             e.Issuer(),
		"OBDCR_AUDIENCES":          "0015800001041RHAAY",
		"HYDRA_ADMIN_URL":          e.Hydra.AdminURL,
		"HYDRA_PUBLIC_URL":         e.Hydra.PublicURL,
		"OBDCR_PROFILES":           "uk,au",
		"OBDCR_UK_SSA_JWKS_URL":    e.Sandbox.BaseURL + "/uk/directory/jwks",
		"OBDCR_AU_SSA_JWKS_URL":    e.Sandbox.BaseURL + "/cdr-register/v1/jwks",
		"OBDCR_ALLOW_PRIVATE_JWKS": "true",
		"OBDCR_ADMIN_TOKEN":        AdminToken,
		"OBDCR_LISTEN":             "127.0.0.1:0",
		"OBDCR_ADMIN_LISTEN":       "127.0.0.1:0",
		// Tests fire dozens of requests from one TPP at once, which no real TPP
		// does; the rate limit's own tests set it low.
		"OBDCR_TPP_RATE_LIMIT": "1000/s",
	}
}

// Obdcr is an obdcr server running in this process on real listeners.
type Obdcr struct {
	Server   *plugin.Server
	URL      string // TPP listener, https
	AdminURL string // admin listener, http
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
	stopErr  error
}

// StartObdcr runs obdcr with cfg; logs go to stderr when OBDCR_TEST_LOG is set.
func (e *Env) StartObdcr(cfg plugin.Config) (*Obdcr, error) {
	var logOut io.Writer = io.Discard
	if os.Getenv("OBDCR_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	return e.StartObdcrLogging(cfg, logOut)
}

// StartObdcrLogging runs obdcr with its JSON log going to logOut.
func (e *Env) StartObdcrLogging(cfg plugin.Config, logOut io.Writer) (*Obdcr, error) {
	ctx, cancel := context.WithCancel(context.Background())
	tppLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		cancel()
		return nil, err
	}
	adminLn, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		tppLn.Close()
		cancel()
		return nil, err
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "https://" + tppLn.Addr().String()
	}
	fetch := policy.DefaultFetchPolicy()
	fetch.AllowPrivate = true
	fetch.TLS = &tls.Config{RootCAs: e.Sandbox.PKI().Pool(), MinVersion: tls.VersionTLS12}
	srv, err := plugin.New(ctx, cfg, plugin.Deps{Logger: slog.New(slog.NewJSONHandler(logOut, nil)), Fetch: &fetch})
	if err != nil {
		tppLn.Close()
		adminLn.Close()
		cancel()
		return nil, err
	}
	o := &Obdcr{Server: srv, cancel: cancel, done: make(chan error, 1),
		URL: "https://" + tppLn.Addr().String(), AdminURL: "http://" + adminLn.Addr().String()}
	go func() { o.done <- srv.Serve(ctx, tppLn, adminLn) }()
	if err := WaitReady(o.AdminURL+"/health/alive", 10*time.Second, nil); err != nil {
		o.Stop()
		return nil, fmt.Errorf("obdcr did not start: %v", err)
	}
	return o, nil
}

// Stop shuts obdcr down and waits for it; calling it again is harmless.
func (o *Obdcr) Stop() error {
	o.stopOnce.Do(func() {
		o.cancel()
		o.stopErr = <-o.done
	})
	return o.stopErr
}
