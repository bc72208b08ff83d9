package plugin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/reload"
)

// fapiCipherSuites are the TLS 1.2 suites FAPI 1.0 Advanced §8.5 permits that Go
// implements (it has no DHE). TLS 1.3 suites are not configurable and all allowed.
var fapiCipherSuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// serverCerts are the TPP listener's certificate and the CAs of TPP transport
// certificates, each re-read when its files change (cert-manager renews the
// one, a directory adds an issuing CA to the other): new handshakes use the new
// files, and no connection is dropped.
type serverCerts struct {
	pair *reload.Value[tls.Certificate]
	cas  *reload.Value[*x509.CertPool]
}

func loadServerCerts(certFile, keyFile, caFile string, report *reloadReport) (serverCerts, error) {
	pair, err := reload.New(report.options("OBDCR_TLS_CERT_FILE", false), keyPair, certFile, keyFile)
	if err != nil {
		return serverCerts{}, fmt.Errorf("OBDCR_TLS_CERT_FILE/OBDCR_TLS_KEY_FILE: %v", err)
	}
	cas, err := reload.New(report.options("OBDCR_TLS_CLIENT_CA_FILE", false), certPool, caFile)
	if err != nil {
		return serverCerts{}, fmt.Errorf("OBDCR_TLS_CLIENT_CA_FILE: %v", err)
	}
	return serverCerts{pair: pair, cas: cas}, nil
}

// config is the TLS configuration of one handshake: it asks for a client
// certificate and verifies any it gets; a request without one is refused by the
// handler with a JSON 401, so that health probes and discovery work without one.
func (c serverCerts) config() *tls.Config {
	pair := c.pair.Get()
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: fapiCipherSuites,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    c.cas.Get(),
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// keyPair parses a certificate file and its key file.
func keyPair(contents [][]byte) (tls.Certificate, error) {
	pair, err := tls.X509KeyPair(contents[0], contents[1])
	if err != nil {
		return pair, err
	}
	pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0])
	return pair, err
}

// certPool parses a PEM bundle of CA certificates.
func certPool(contents [][]byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(contents[0]) {
		return nil, errors.New("no PEM certificate in the file")
	}
	return pool, nil
}

// certSource finds the verified client certificate of a request: from the TLS
// connection, or, behind a TLS-terminating proxy, from a header that only trusted
// proxies may set. The header's certificate is verified again here, because a
// proxy passing on what it did not check must not widen who may register.
type certSource struct {
	header  string
	format  headerFormat
	proxies []netip.Prefix
	roots   func() *x509.CertPool
}

func newCertSource(header string, format headerFormat, proxies []string, roots func() *x509.CertPool) certSource {
	cs := certSource{header: header, format: format, roots: roots}
	for _, p := range proxies {
		if pre, err := netip.ParsePrefix(strings.TrimSpace(p)); err == nil {
			cs.proxies = append(cs.proxies, pre)
		}
	}
	return cs
}

// peerCertKey memoizes a request's certificate: the rate limiter reads it to
// key the caller, the handler to authenticate it, and behind a proxy each read
// is a parse and a chain verification.
const peerCertKey = "obdcr.peer_certificate"

type peerCert struct {
	cert *x509.Certificate
	err  error
}

// request is certificate, read once per request.
func (cs certSource) request(c echo.Context) (*x509.Certificate, error) {
	if p, ok := c.Get(peerCertKey).(peerCert); ok {
		return p.cert, p.err
	}
	cert, err := cs.certificate(c.Request())
	c.Set(peerCertKey, peerCert{cert, err})
	return cert, err
}

func (cs certSource) certificate(r *http.Request) (*x509.Certificate, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		return r.TLS.PeerCertificates[0], nil
	}
	values := r.Header.Values(cs.header)
	if cs.header == "" || len(values) == 0 {
		return nil, errors.New("no verified TLS client certificate was presented")
	}
	if !cs.fromTrustedProxy(r) {
		return nil, fmt.Errorf("header %s is only accepted from a trusted proxy", cs.header)
	}
	cert, err := cs.format.parse(values)
	if err != nil {
		return nil, fmt.Errorf("header %s (%s): %v", cs.header, cs.format.name, err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: cs.roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("the certificate in %s is not issued by a trusted CA", cs.header)
	}
	return cert, nil
}

func (cs certSource) fromTrustedProxy(r *http.Request) bool {
	addr, ok := remoteAddr(r.RemoteAddr)
	return ok && cs.trusted(addr)
}

// trusted says whether addr is one of OBDCR_TRUSTED_PROXIES.
func (cs certSource) trusted(addr netip.Addr) bool {
	for _, p := range cs.proxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
