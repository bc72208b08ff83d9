package fapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// TLSSubject is how a tls_client_auth client named its certificate (RFC 8705
// §2.1.2): exactly one of these is set.
type TLSSubject struct{ DN, DNS, URI, IP, Email string }

// matches compares as RFC 8705 §2.1.2 says: the DN by RFC 4514 after
// normalising (policy.ParseDN), a SAN by any entry of its kind.
func (s TLSSubject) matches(cert *x509.Certificate) bool {
	switch {
	case s.DN != "":
		want, err := policy.ParseDN(s.DN)
		if err != nil {
			return false
		}
		got, err := policy.SubjectDN(cert)
		return err == nil && want.EqualFold(got)
	case s.DNS != "":
		return slices.ContainsFunc(cert.DNSNames, func(n string) bool { return strings.EqualFold(n, s.DNS) })
	case s.URI != "":
		return slices.ContainsFunc(cert.URIs, func(u *url.URL) bool { return u.String() == s.URI })
	case s.IP != "":
		want, err := netip.ParseAddr(s.IP)
		return err == nil && slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool {
			got, ok := netip.AddrFromSlice(ip)
			return ok && got.Unmap() == want.Unmap()
		})
	case s.Email != "":
		return slices.ContainsFunc(cert.EmailAddresses, func(e string) bool { return strings.EqualFold(e, s.Email) })
	}
	return false
}

// Methods authenticates by the client's registered method: private_key_jwt by
// its assertion, tls_client_auth by the certificate of the TLS connection alone
// (RFC 8705 §2.1), self_signed_tls_client_auth by that certificate being in
// the client's JWKS as x5c (§2.2). A client may not use another method than
// the one it registered.
type Methods struct {
	JWT     *PrivateKeyJWT
	Clients Clients
	Keys    policy.TrustStore
}

// Authenticate returns the client, or an invalid_client error.
func (m *Methods) Authenticate(ctx context.Context, form url.Values, cert *x509.Certificate) (*Client, error) {
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		c, err := m.JWT.Authenticate(ctx, form, cert)
		if err != nil {
			return nil, err
		}
		if c.AuthMethod != "" && c.AuthMethod != "private_key_jwt" {
			return nil, unauthorized("client %s is registered for %s, not private_key_jwt", c.ID, c.AuthMethod)
		}
		return c, nil
	}
	id := form.Get("client_id")
	if id == "" {
		return nil, unauthorized("no client authentication: send client_assertion (private_key_jwt) or client_id over a TLS client certificate (tls_client_auth)")
	}
	c, err := m.Clients.Client(ctx, id)
	if errors.Is(err, ErrUnknownClient) {
		return nil, unauthorized("client %q is not registered", clip(id))
	}
	if err != nil {
		return nil, err
	}
	switch c.AuthMethod {
	case "tls_client_auth":
		if cert == nil {
			return nil, unauthorized("tls_client_auth needs a TLS client certificate")
		}
		if !c.TLSSubject.matches(cert) {
			return nil, unauthorized("the TLS client certificate (%s) is not the one client %s registered for tls_client_auth", clip(cert.Subject.String()), c.ID)
		}
		return c, nil
	case "self_signed_tls_client_auth":
		if cert == nil {
			return nil, unauthorized("self_signed_tls_client_auth needs a TLS client certificate")
		}
		if !m.inJWKS(ctx, c, cert) {
			return nil, unauthorized("the TLS client certificate is not in client %s's JWKS (x5c)", c.ID)
		}
		return c, nil
	}
	return nil, unauthorized("client %s is registered for %s: send client_assertion", c.ID, orNone(c.AuthMethod))
}

// inJWKS: cert is the certificate of a key in the client's JWKS (its x5t#S256,
// or the first of its x5c).
func (m *Methods) inJWKS(ctx context.Context, c *Client, cert *x509.Certificate) bool {
	if c.JWKSURI == "" || m.Keys == nil {
		return false
	}
	set, err := m.Keys.Set(ctx, c.JWKSURI)
	if err != nil {
		return false
	}
	return set.CertKey(cert, "") != nil
}

func orNone(s string) string {
	if s == "" {
		return "private_key_jwt"
	}
	return s
}

// BindingStore is the shared store of token bindings (policy/store.Bindings).
type BindingStore interface {
	PutBinding(ctx context.Context, key, x5t string, until time.Time) error
	Binding(ctx context.Context, key string) (string, bool, error)
	DeleteBinding(ctx context.Context, key string) error
}

// maxBindingLifetime bounds how long a binding is kept whatever expires_in
// says, so that a token lifetime misread never keeps a row for ever.
const maxBindingLifetime = 24 * time.Hour

// Bindings keeps which certificate each access token is bound to (RFC 8705 §3):
// its x5t#S256 under a hash of the token (the token itself is never stored),
// until the token expires, on every replica.
type Bindings struct {
	Store BindingStore
	Now   func() time.Time
}

func bindingKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "cnf:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// Thumbprint is a certificate's x5t#S256 (RFC 8705 §3.1).
func Thumbprint(cert *x509.Certificate) string { return policy.Thumbprint(cert) }

// Bind binds token to cert for lifetime. A nil cert records token as issued
// unbound (its profile's bound_tokens is false): Bound says ok with no x5t.
func (b *Bindings) Bind(ctx context.Context, token string, cert *x509.Certificate, lifetime time.Duration) error {
	lifetime = min(max(lifetime, time.Minute), maxBindingLifetime)
	x5t := ""
	if cert != nil {
		x5t = Thumbprint(cert)
	}
	return b.Store.PutBinding(ctx, bindingKey(token), x5t, b.Now().Add(lifetime))
}

// Bound is the x5t#S256 token is bound to; ok is false for a token the edge
// did not issue (or one expired), and x5t is "" for one it issued unbound.
func (b *Bindings) Bound(ctx context.Context, token string) (string, bool, error) {
	if token == "" || len(token) > 8<<10 {
		return "", false, nil
	}
	return b.Store.Binding(ctx, bindingKey(token))
}

// Unbind forgets token's binding (it was revoked).
func (b *Bindings) Unbind(ctx context.Context, token string) error {
	return b.Store.DeleteBinding(ctx, bindingKey(token))
}

// BoundTo says whether token is bound to cert.
func (b *Bindings) BoundTo(ctx context.Context, token string, cert *x509.Certificate) (bool, error) {
	x5t, ok, err := b.Bound(ctx, token)
	if err != nil || !ok || cert == nil || x5t == "" {
		return false, err
	}
	return subtle.ConstantTimeCompare([]byte(x5t), []byte(Thumbprint(cert))) == 1, nil
}

// Presentable says whether token may be used over cert: the edge issued it,
// bound to cert or unbound. A token the edge has no record of is refused.
func (b *Bindings) Presentable(ctx context.Context, token string, cert *x509.Certificate) (bool, error) {
	x5t, ok, err := b.Bound(ctx, token)
	if err != nil || !ok {
		return false, err
	}
	if x5t == "" {
		return true, nil
	}
	return b.BoundTo(ctx, token, cert)
}
