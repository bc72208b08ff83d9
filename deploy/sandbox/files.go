package sandbox

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
)

// Files are the PEM files a sandbox writes for obdcr and Hydra to use.
type Files struct {
	CA         string // the sandbox CA: obdcr's OBDCR_TLS_CLIENT_CA_FILE, everyone's SSL_CERT_FILE
	ObdcrCert  string // obdcr's server certificate (127.0.0.1, localhost)
	ObdcrKey   string
	EdgeKey    string      // obdcr's FAPI edge signing key (P-256, ES256): OBDCR_EDGE_SIGNING_KEY_FILE
	SandboxTLS *tls.Config // the sandbox's own server certificate
}

// WriteFiles writes the CA and a server certificate for obdcr into dir, and makes
// the sandbox's server certificate for its base URL's host.
func WriteFiles(s *Sandbox, dir string) (*Files, error) {
	f := &Files{CA: filepath.Join(dir, "ca.pem"), ObdcrCert: filepath.Join(dir, "obdcr-cert.pem"), ObdcrKey: filepath.Join(dir, "obdcr-key.pem"),
		EdgeKey: filepath.Join(dir, "edge-signing-key.pem")}
	if err := os.WriteFile(f.CA, []byte(s.CACert), 0o644); err != nil {
		return nil, err
	}
	obdcr, err := s.pki.Server("127.0.0.1", "localhost", "::1", "obdcr")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.ObdcrCert, obdcr.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.ObdcrKey, obdcr.KeyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeEdgeKey(f.EdgeKey); err != nil {
		return nil, err
	}
	host := "127.0.0.1"
	if u, err := url.Parse(s.BaseURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	own, err := s.pki.Server(host, "localhost", "127.0.0.1", "sandbox")
	if err != nil {
		return nil, err
	}
	f.SandboxTLS = &tls.Config{Certificates: []tls.Certificate{own.TLS}, MinVersion: tls.VersionTLS12}
	return f, nil
}

// writeEdgeKey writes a fresh P-256 key, PKCS #8 PEM, for obdcr's edge to sign
// with (every replica of a test or demo shares the file): ES256, as the README
// recommends for the edge, a twentieth of a PS256 signature's cost. PS256 edge
// keys are tested with keys of their own (TestEdgeKeyRotation).
func writeEdgeKey(path string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
