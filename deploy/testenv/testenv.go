// Package testenv starts the real parts integration tests run against: Ory Hydra
// built from the Go module proxy (cached), the sandbox directory over HTTPS, and
// obdcr itself on real listeners with mutual TLS.
package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/hydra"
)

// Root is the module's root folder.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

var buildOnce struct {
	sync.Once
	path string
	err  error
}

// HydraBinary returns the cached Hydra build, building it on first use
// (OBDCR_HYDRA_BIN overrides).
func HydraBinary() (string, error) {
	if p := os.Getenv("OBDCR_HYDRA_BIN"); p != "" {
		return p, nil
	}
	buildOnce.Do(func() {
		root, err := Root()
		if err != nil {
			buildOnce.err = err
			return
		}
		var stderr bytes.Buffer
		cmd := exec.Command(filepath.Join(root, "deploy/scripts/hydra.sh"))
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			buildOnce.err = fmt.Errorf("building Hydra: %v\n%s", err, stderr.String())
			return
		}
		buildOnce.path = strings.TrimSpace(string(out))
	})
	return buildOnce.path, buildOnce.err
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Hydra is a running Ory Hydra.
type Hydra struct {
	AdminURL  string
	PublicURL string
	cmd       *exec.Cmd
	log       *bytes.Buffer
	done      chan struct{}
	bin       string
	env       []string
	fapi      bool // give it a PS256 ID-token key at each start
}

// TokenURL is Hydra's token endpoint.
func (h *Hydra) TokenURL() string { return h.PublicURL + "/oauth2/token" }

// Log is what Hydra printed, for failing tests.
func (h *Hydra) Log() string { return h.log.String() }

// StartHydra runs `hydra serve all --dev` with an in-memory database, set up as
// a bank sets it up for obdcr: its own registration endpoint off and ID tokens
// signed PS256. caFile, if set, becomes Hydra's SSL_CERT_FILE so it can fetch
// TPP JWKS from the sandbox; extraEnv adds or overrides Hydra's variables.
func StartHydra(caFile string, extraEnv ...string) (*Hydra, error) {
	return startHydra(caFile, true, extraEnv...)
}

// StartDefaultHydra runs Hydra as it comes: ID tokens signed RS256.
func StartDefaultHydra(caFile string, extraEnv ...string) (*Hydra, error) {
	return startHydra(caFile, false, extraEnv...)
}

func startHydra(caFile string, fapi bool, extraEnv ...string) (*Hydra, error) {
	bin, err := HydraBinary()
	if err != nil {
		return nil, err
	}
	// A free port can be taken by another test binary between FreePort and
	// Hydra's listen: then Hydra exits with "address already in use", and a
	// new pair of ports is tried.
	for attempt := 1; ; attempt++ {
		h, err := tryHydra(bin, caFile, fapi, extraEnv)
		if err == nil || attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			return h, err
		}
	}
}

func tryHydra(bin, caFile string, fapi bool, extraEnv []string) (*Hydra, error) {
	pub, err := FreePort()
	if err != nil {
		return nil, err
	}
	adm, err := FreePort()
	if err != nil {
		return nil, err
	}
	h := &Hydra{
		fapi:      fapi,
		AdminURL:  fmt.Sprintf("http://127.0.0.1:%d", adm),
		PublicURL: fmt.Sprintf("http://127.0.0.1:%d", pub),
		log:       &bytes.Buffer{},
	}
	h.bin = bin
	h.env = append(os.Environ(),
		"DSN=memory",
		"SECRETS_SYSTEM=obdcr-integration-tests-secret-0123456789",
		"URLS_SELF_ISSUER="+h.PublicURL,
		"URLS_SELF_PUBLIC="+h.PublicURL,
		fmt.Sprintf("SERVE_PUBLIC_PORT=%d", pub), "SERVE_PUBLIC_HOST=127.0.0.1",
		fmt.Sprintf("SERVE_ADMIN_PORT=%d", adm), "SERVE_ADMIN_HOST=127.0.0.1",
		"OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED=false",
		"LOG_LEVEL=warn",
	)
	if caFile != "" {
		h.env = append(h.env, "SSL_CERT_FILE="+caFile)
	}
	h.env = append(h.env, extraEnv...)
	if err := h.start(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Hydra) start() error {
	cmd := exec.Command(h.bin, "serve", "all", "--dev", "--sqa-opt-out")
	cmd.Env = h.env
	cmd.Stdout, cmd.Stderr = h.log, h.log
	if err := cmd.Start(); err != nil {
		return err
	}
	h.cmd, h.done = cmd, make(chan struct{})
	done := h.done
	go func() { _ = cmd.Wait(); close(done) }()
	if err := WaitReady(h.AdminURL+"/health/ready", 60*time.Second, h.done); err != nil {
		h.Stop()
		return fmt.Errorf("hydra did not become ready: %v\n%s", err, h.Log())
	}
	if !h.fapi {
		return nil
	}
	// As a bank sets Hydra up for FAPI (obdcr doctor --fix): ID tokens signed PS256.
	admin, err := hydra.NewAdmin(h.AdminURL, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.AddSigningKey(ctx, hydra.IDTokenKeySet, "PS256"); err != nil {
		h.Stop()
		return fmt.Errorf("hydra: adding a PS256 ID-token key: %v", err)
	}
	return nil
}

// Restart starts a stopped Hydra again on the same ports (its memory database starts empty).
func (h *Hydra) Restart() error {
	h.Stop()
	return h.start()
}

// Stop ends Hydra.
func (h *Hydra) Stop() {
	if h.cmd != nil && h.cmd.Process != nil {
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}

// WaitReady polls url until it answers 200, the deadline passes, or died closes.
func WaitReady(url string, within time.Duration, died <-chan struct{}) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // readiness probe only
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-died:
			return errors.New("the process exited")
		default:
		}
		res, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("HTTP %d", res.StatusCode)
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// Sandbox is the sandbox served over HTTPS on loopback, with its files on disk.
type Sandbox struct {
	*sandbox.Sandbox
	Dir    string
	CAFile string
	server *http.Server
}

// StartSandbox makes a sandbox in dir and serves it on a free loopback port.
func StartSandbox(dir string) (*Sandbox, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "https://" + ln.Addr().String()
	sb, err := sandbox.New(base)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if err := sb.SaveTo(dir); err != nil {
		ln.Close()
		return nil, err
	}
	files, err := sandbox.WriteFiles(sb, dir)
	if err != nil {
		ln.Close()
		return nil, err
	}
	srv := &http.Server{Handler: sb.Handler(), TLSConfig: files.SandboxTLS, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(tls.NewListener(ln, files.SandboxTLS)) }()
	return &Sandbox{Sandbox: sb, Dir: dir, CAFile: files.CA, server: srv}, nil
}

// Stop ends the sandbox server.
func (s *Sandbox) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.server.Shutdown(ctx)
}
