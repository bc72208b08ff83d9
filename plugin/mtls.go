package plugin

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
)

// fapiCipherSuites are the TLS 1.2 suites FAPI 1.0 Advanced §8.5 permits that Go
// implements (it has no DHE). TLS 1.3 suites are not configurable and all allowed.
var fapiCipherSuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// serverTLS is the TPP listener's TLS: it asks for a client certificate and
// verifies any it gets; a request without one is refused by the handler with a
// JSON 401, so that health probes still work without a certificate.
func serverTLS(certFile, keyFile, caFile string) (*tls.Config, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("OBDCR_TLS_CERT_FILE/OBDCR_TLS_KEY_FILE: %v", err)
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("OBDCR_TLS_CLIENT_CA_FILE: %v", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: fapiCipherSuites,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		NextProtos:   []string{"h2", "http/1.1"},
	}, pool, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in " + file)
	}
	return pool, nil
}

// certSource finds the verified client certificate of a request: from the TLS
// connection, or, behind a TLS-terminating proxy, from a header that only trusted
// proxies may set. The header's certificate is verified again here, because a
// proxy passing on what it did not check must not widen who may register.
type certSource struct {
	header  string
	proxies []netip.Prefix
	roots   *x509.CertPool
}

func newCertSource(header string, proxies []string, roots *x509.CertPool) certSource {
	cs := certSource{header: header, roots: roots}
	for _, p := range proxies {
		if pre, err := netip.ParsePrefix(strings.TrimSpace(p)); err == nil {
			cs.proxies = append(cs.proxies, pre)
		}
	}
	return cs
}

func (cs certSource) certificate(r *http.Request) (*x509.Certificate, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		return r.TLS.PeerCertificates[0], nil
	}
	if cs.header == "" || r.Header.Get(cs.header) == "" {
		return nil, errors.New("no verified TLS client certificate was presented")
	}
	if !cs.fromTrustedProxy(r) {
		return nil, fmt.Errorf("header %s is only accepted from a trusted proxy", cs.header)
	}
	raw, err := url.QueryUnescape(r.Header.Get(cs.header))
	if err != nil {
		return nil, fmt.Errorf("header %s is not URL-encoded PEM", cs.header)
	}
	block, _ := pem.Decode([]byte(raw))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("header %s holds no PEM certificate", cs.header)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("header %s: %v", cs.header, err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: cs.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("the certificate in %s is not issued by a trusted CA", cs.header)
	}
	return cert, nil
}

func (cs certSource) fromTrustedProxy(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range cs.proxies {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}
