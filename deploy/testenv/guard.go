package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/obdcr/obdcr/deploy/sandbox"
)

// Guard is what a bank puts in front of Hydra's admin API (Oathkeeper, an
// ingress, Ory Network): TLS from a private CA, a bearer token, and a client
// certificate from that CA. It forwards what passes to Hydra's admin API, and
// remembers which client certificates it saw.
type Guard struct {
	URL    string
	CAFile string // the private CA, for HYDRA_ADMIN_CA_FILE
	PKI    *sandbox.PKI

	mu      sync.Mutex
	tokens  []string
	serials []*big.Int
	refused int
	served  *tls.Certificate // the guard's own certificate, from PKI until MoveToCA
	failing []string         // methods answered 503, as a Hydra failing mid-operation
	srv     *http.Server
}

// StartGuard serves a guard for hydraAdminURL, accepting tokens, writing its CA to dir.
func StartGuard(dir, hydraAdminURL string, tokens ...string) (*Guard, error) {
	pki, err := sandbox.NewPKI("guard CA")
	if err != nil {
		return nil, err
	}
	leaf, err := pki.Server("127.0.0.1")
	if err != nil {
		return nil, err
	}
	g := &Guard{PKI: pki, tokens: tokens, CAFile: filepath.Join(dir, "guard-ca.pem"), served: &leaf.TLS}
	if err := os.WriteFile(g.CAFile, pki.CertPEM, 0o600); err != nil {
		return nil, err
	}
	target, err := url.Parse(hydraAdminURL)
	if err != nil {
		return nil, err
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	pool := x509.NewCertPool()
	pool.AddCert(pki.Cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		ok := slices.Contains(g.tokens, r.Header.Get("Authorization"))
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			g.serials = append(g.serials, r.TLS.PeerCertificates[0].SerialNumber)
		} else {
			ok = false
		}
		if !ok {
			g.refused++
		}
		fail := slices.Contains(g.failing, r.Method)
		g.mu.Unlock()
		if !ok {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		if fail {
			http.Error(w, `{"error":"server_error"}`, http.StatusServiceUnavailable)
			return
		}
		r.Header.Del("Authorization")
		proxy.ServeHTTP(w, r)
	}), TLSConfig: &tls.Config{GetCertificate: g.certificate, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}}
	// A handshake per request, so that a rotated client certificate shows at once.
	g.srv.SetKeepAlivesEnabled(false)
	go func() { _ = g.srv.ServeTLS(ln, "", "") }()
	g.URL = "https://" + ln.Addr().String()
	return g, nil
}

// Allow replaces the accepted Authorization header values.
func (g *Guard) Allow(headers ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tokens = headers
}

// ClientCert issues a client certificate the guard accepts, written to dir.
func (g *Guard) ClientCert(dir, name string) (certFile, keyFile string, serial *big.Int, err error) {
	leaf, err := g.PKI.Client(pkix.Name{CommonName: "obdcr " + name}, nil)
	if err != nil {
		return "", "", nil, err
	}
	certFile, keyFile = filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-key.pem")
	if err := WriteFileAtomic(certFile, leaf.CertPEM); err != nil {
		return "", "", nil, err
	}
	return certFile, keyFile, leaf.TLS.Leaf.SerialNumber, WriteFileAtomic(keyFile, leaf.KeyPEM)
}

func (g *Guard) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.served, nil
}

// Fail answers requests with these methods 503 (none: stop failing).
func (g *Guard) Fail(methods ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failing = methods
}

// MoveToCA makes the guard serve a certificate from ca from its next handshake
// on, as when the bank's private CA is replaced.
func (g *Guard) MoveToCA(ca *sandbox.PKI) error {
	leaf, err := ca.Server("127.0.0.1")
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.served = &leaf.TLS
	return nil
}

// LastSerial is the serial of the client certificate of the last request.
func (g *Guard) LastSerial() *big.Int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.serials) == 0 {
		return nil
	}
	return g.serials[len(g.serials)-1]
}

// Refused counts requests turned away.
func (g *Guard) Refused() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused
}

// Stop ends the guard.
func (g *Guard) Stop() { _ = g.srv.Close() }

// WriteFileAtomic replaces a file in one step, as Kubernetes swaps a mounted
// secret: a reader sees the old contents or the new, never half.
func WriteFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
