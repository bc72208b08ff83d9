package testenv

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
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
	e, err := start(dir, append([]string{"URLS_SELF_ISSUER=" + edge, "URLS_SELF_PUBLIC=" + edge}, hydraEnv...)...)
	if err != nil {
		return nil, err
	}
	e.EdgeURL = edge
	return e, nil
}

// EdgeEnviron is Environ with the edge on at EdgeURL, signing with a fresh RSA
// key written to the sandbox's folder (one key for every replica).
func (e *Env) EdgeEnviron() (map[string]string, error) {
	keyFile := filepath.Join(e.Sandbox.Dir, "edge-signing-key.pem")
	if _, err := os.Stat(keyFile); err != nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
	}
	env := e.Environ()
	env["OBDCR_EDGE_LISTEN"] = e.EdgeURL[len("https://"):]
	env["OBDCR_EDGE_PUBLIC_URL"] = e.EdgeURL
	env["OBDCR_EDGE_SIGNING_KEY_FILE"] = keyFile
	return env, nil
}
