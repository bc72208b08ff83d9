package hydra

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"sync"
)

// AdminAccess is how obdcr reaches a Hydra admin API that sits behind
// authentication: Ory Network API keys and Oathkeeper take a bearer token, an
// ingress may take basic auth or a client certificate, over TLS from a private
// CA. The functions are asked on every request (or handshake), so a secret or
// certificate that rotates is used as soon as it changes.
type AdminAccess struct {
	// Authorization is the Authorization header's value, "" for none.
	Authorization func() string
	// ClientCertificate is presented when Hydra's side asks for one; nil for none.
	ClientCertificate func() (*tls.Certificate, error)
	// RootCAs verify Hydra's TLS certificate, asked before every request; nil (or
	// a nil pool) means the system roots. A different pool than the last one (its
	// file was rotated) is used from the next connection on.
	RootCAs func() *x509.CertPool
}

// NewAdminTransport is NewTransport with a's credentials on every request.
func NewAdminTransport(a AdminAccess) http.RoundTripper {
	rt := byRoots(a.RootCAs, func(roots *x509.CertPool) *http.Transport {
		t := NewTransport()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
		if a.ClientCertificate != nil {
			t.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return a.ClientCertificate()
			}
		}
		return t
	})
	if a.Authorization == nil {
		return rt
	}
	return authorizing{rt: rt, header: a.Authorization}
}

// NewPublicTransport reaches Hydra's public API: the same CAs, no credentials,
// since an admin secret must never travel to the public side.
func NewPublicTransport(roots func() *x509.CertPool) http.RoundTripper {
	return byRoots(roots, func(roots *x509.CertPool) *http.Transport {
		t := NewTransport()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
		return t
	})
}

// byRoots is build's transport for the system roots when roots is nil, and
// otherwise a transport that follows roots.
func byRoots(roots func() *x509.CertPool, build func(*x509.CertPool) *http.Transport) http.RoundTripper {
	if roots == nil {
		return build(nil)
	}
	return &rootsTransport{roots: roots, build: build}
}

// rootsTransport keeps one transport for the current CA pool. tls.Config has no
// hook that picks a client's roots per handshake short of replacing Go's
// verification, so a new pool gets a transport of its own: its connections are
// verified against the new CAs, and the old transport's idle connections are
// closed (one still busy is closed by the old transport's idle timeout once it
// is done). The caller hands out the same pool until its file changes, so this
// is a pointer comparison per request.
type rootsTransport struct {
	roots func() *x509.CertPool
	build func(*x509.CertPool) *http.Transport

	mu   sync.Mutex
	pool *x509.CertPool
	t    *http.Transport
}

func (r *rootsTransport) current() *http.Transport {
	pool := r.roots()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.t == nil || pool != r.pool {
		if r.t != nil {
			r.t.CloseIdleConnections()
		}
		r.pool, r.t = pool, r.build(pool)
	}
	return r.t
}

func (r *rootsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return r.current().RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the transport.
func (r *rootsTransport) CloseIdleConnections() { r.current().CloseIdleConnections() }

type authorizing struct {
	rt     http.RoundTripper
	header func() string
}

func (a authorizing) RoundTrip(req *http.Request) (*http.Response, error) {
	h := a.header()
	if h == "" || req.Header.Get("Authorization") != "" {
		return a.rt.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", h)
	return a.rt.RoundTrip(r)
}
