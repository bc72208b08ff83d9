package hydra

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
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
	// RootCAs verify Hydra's TLS certificate; nil means the system roots.
	RootCAs *x509.CertPool
}

// NewAdminTransport is NewTransport with a's credentials on every request.
func NewAdminTransport(a AdminAccess) http.RoundTripper {
	t := NewTransport()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: a.RootCAs}
	if a.ClientCertificate != nil {
		t.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return a.ClientCertificate()
		}
	}
	if a.Authorization == nil {
		return t
	}
	return authorizing{rt: t, header: a.Authorization}
}

// NewPublicTransport reaches Hydra's public API: the same CAs, no credentials,
// since an admin secret must never travel to the public side.
func NewPublicTransport(roots *x509.CertPool) http.RoundTripper {
	t := NewTransport()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	return t
}

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
