package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/obdcr/obdcr/plugin"
)

// StartEdge is Start with Hydra behind obdcr's FAPI edge: Hydra's issuer and
// public URL are https://127.0.0.1:PORT, where the edge listener of the obdcr
// started with EdgeEnviron serves. hydraEnv adds Hydra variables (a token hook,
// the JWT access-token strategy).
func StartEdge(dir string, hydraEnv ...string) (*Env, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	edge := fmt.Sprintf("https://127.0.0.1:%d", port)
	// Hydra --dev sets its cookies without Secure, and by default SameSite=None,
	// which a real browser drops: its login CSRF cookie would never come back.
	e, err := start(dir, append([]string{"URLS_SELF_ISSUER=" + edge, "URLS_SELF_PUBLIC=" + edge, "SERVE_COOKIES_SAME_SITE_MODE=Lax", "TTL_AUTH_CODE=60s"}, hydraEnv...)...)
	if err != nil {
		return nil, err
	}
	e.EdgeURL = edge
	return e, nil
}

// EdgeEnviron is Environ with the edge on at EdgeURL, signing with the P-256 key
// the sandbox wrote to its folder (one key for every replica).
func (e *Env) EdgeEnviron() (map[string]string, error) {
	keyFile := filepath.Join(e.Sandbox.Dir, "edge-signing-key.pem")
	if _, err := os.Stat(keyFile); err != nil {
		return nil, err
	}
	env := e.Environ()
	env["OBDCR_EDGE_LISTEN"] = e.EdgeURL[len("https://"):]
	env["OBDCR_EDGE_PUBLIC_URL"] = e.EdgeURL
	env["OBDCR_EDGE_SIGNING_KEY_FILE"] = keyFile
	return env, nil
}

// StartEdgeObdcr starts an obdcr with the edge on (EdgeEnviron); change, if
// set, edits its environment first.
func (e *Env) StartEdgeObdcr(change func(map[string]string)) (*Obdcr, error) {
	environ, err := e.EdgeEnviron()
	if err != nil {
		return nil, err
	}
	if change != nil {
		change(environ)
	}
	cfg, err := plugin.LoadConfig(environ)
	if err != nil {
		return nil, err
	}
	return e.StartObdcr(cfg)
}

// Chromium finds Debian's Chromium, which deploy/scripts/test.sh installs, for
// tests that drive a real browser.
func Chromium() (string, error) {
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	return "", errors.New("no Chromium: deploy/scripts/test.sh installs Debian's chromium")
}
