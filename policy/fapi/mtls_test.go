package fapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/cert"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

func selfSigned(t *testing.T, cn string, dns ...string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: []string{"org-1"}, Country: []string{"GB"}},
		DNSNames: dns, IPAddresses: []net.IP{net.ParseIP("192.0.2.7")}, EmailAddresses: []string{"ops@tpp.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// TestMethods: a tls_client_auth client is authenticated by its certificate
// alone (DN by RFC 4514, or a SAN), a self_signed_tls_client_auth client by a
// certificate in its JWKS's x5c; any other certificate, no certificate, or
// another method than the registered one is invalid_client (401).
func TestMethods(t *testing.T) {
	tpp, v, pkj := fixture(t)
	good, other := selfSigned(t, "sw-1", "tpp.example"), selfSigned(t, "sw-2", "other.example")
	inJWKS := jwk.NewSet()
	k, _ := jwk.FromRaw(good.PublicKey)
	var chain cert.Chain
	_ = chain.AddString(base64.StdEncoding.EncodeToString(good.Raw))
	_ = k.Set(jwk.X509CertChainKey, &chain)
	_ = inJWKS.AddKey(k)
	clients := fakeClients{
		"c1":  pkj,
		"dn":  {ID: "dn", AuthMethod: "tls_client_auth", TLSSubject: TLSSubject{DN: "cn=sw-1, ou=ORG-1, c=gb"}},
		"dns": {ID: "dns", AuthMethod: "tls_client_auth", TLSSubject: TLSSubject{DNS: "TPP.example"}},
		"ip":  {ID: "ip", AuthMethod: "tls_client_auth", TLSSubject: TLSSubject{IP: "192.0.2.7"}},
		"em":  {ID: "em", AuthMethod: "tls_client_auth", TLSSubject: TLSSubject{Email: "ops@tpp.example"}},
		"uri": {ID: "uri", AuthMethod: "tls_client_auth", TLSSubject: TLSSubject{URI: "https://tpp.example/id"}},
		"ss":  {ID: "ss", AuthMethod: "self_signed_tls_client_auth", JWKSURI: "https://tpp/jwks"},
	}
	m := &Methods{JWT: &PrivateKeyJWT{Verifier: v, Clients: clients, Audiences: []string{issuer}}, Clients: clients, Keys: fakeKeys{inJWKS}}
	assertion := func(jti string) url.Values {
		a, _ := tpp.Sign(map[string]any{"iss": "c1", "sub": "c1", "aud": issuer, "jti": jti, "exp": time.Now().Add(time.Minute).Unix()})
		return url.Values{"client_assertion_type": {JWTBearer}, "client_assertion": {a}}
	}
	id := func(s string) url.Values { return url.Values{"client_id": {s}} }
	for _, tc := range []struct {
		name string
		form url.Values
		cert *x509.Certificate
		want string // the client, "" for invalid_client
	}{
		{"private_key_jwt", assertion("1"), nil, "c1"},
		{"private_key_jwt client without assertion", id("c1"), good, ""},
		{"DN", id("dn"), good, "dn"},
		{"wrong DN", id("dn"), other, ""},
		{"no certificate", id("dn"), nil, ""},
		{"SAN DNS", id("dns"), good, "dns"},
		{"SAN DNS mismatch", id("dns"), other, ""},
		{"SAN IP", id("ip"), good, "ip"},
		{"SAN email", id("em"), good, "em"},
		{"SAN URI absent from the certificate", id("uri"), good, ""},
		{"self-signed in the JWKS", id("ss"), good, "ss"},
		{"self-signed not in the JWKS", id("ss"), other, ""},
		{"unknown client", id("nobody"), good, ""},
		{"no client at all", url.Values{}, good, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.Authenticate(context.Background(), tc.form, tc.cert)
			var fe *Error
			switch {
			case tc.want != "" && (err != nil || got.ID != tc.want):
				t.Fatalf("got %v %v, want %s", got, err, tc.want)
			case tc.want == "" && (!errors.As(err, &fe) || fe.Code != InvalidClient || fe.Status != 401):
				t.Fatalf("got %v %v, want invalid_client", got, err)
			}
		})
	}
}

// TestBindings: a token is bound to the certificate of its token request, on
// every replica (the shared store), not to another, and not after it expires
// or is revoked; the token itself is not what is stored.
func TestBindings(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	mem := store.NewMemoryWithClock(func() time.Time { return now })
	b := &Bindings{Store: mem, Now: func() time.Time { return now }}
	a, other := selfSigned(t, "a"), selfSigned(t, "b")
	if err := b.Bind(ctx, "tok-1", a, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.BoundTo(ctx, "tok-1", a); !ok {
		t.Fatal("a token is not bound to its own certificate")
	}
	if ok, _ := b.BoundTo(ctx, "tok-1", other); ok {
		t.Fatal("a token is bound to another certificate")
	}
	if _, ok, _ := mem.Binding(ctx, "tok-1"); ok {
		t.Fatal("the token itself is a key of the store")
	}
	if x5t, ok, _ := b.Bound(ctx, "tok-1"); !ok || x5t != policy.Thumbprint(a) {
		t.Fatalf("cnf x5t#S256 %q, want %q", x5t, policy.Thumbprint(a))
	}
	now = now.Add(6 * time.Minute)
	if ok, _ := b.BoundTo(ctx, "tok-1", a); ok {
		t.Fatal("a binding outlived its token")
	}
	_ = b.Bind(ctx, "tok-2", a, time.Hour)
	_ = b.Unbind(ctx, "tok-2")
	if _, ok, _ := b.Bound(ctx, "tok-2"); ok {
		t.Fatal("a revoked token is still bound")
	}
	// Issued unbound (bound_tokens false): presentable over any certificate,
	// bound to none; a token with no record is presentable over none.
	_ = b.Bind(ctx, "tok-3", nil, time.Hour)
	if x5t, ok, _ := b.Bound(ctx, "tok-3"); !ok || x5t != "" {
		t.Fatalf("an unbound token reads %q %v, want no x5t", x5t, ok)
	}
	for _, cert := range []*x509.Certificate{a, other} {
		if ok, _ := b.Presentable(ctx, "tok-3", cert); !ok {
			t.Fatal("an unbound token is refused")
		}
		if ok, _ := b.BoundTo(ctx, "tok-3", cert); ok {
			t.Fatal("an unbound token is bound to a certificate")
		}
	}
	_ = b.Bind(ctx, "tok-4", a, time.Hour)
	for tok, cert := range map[string]*x509.Certificate{"tok-4": other, "never": a} {
		if ok, _ := b.Presentable(ctx, tok, cert); ok {
			t.Fatalf("%s is presentable over a certificate it is not bound to", tok)
		}
	}
}
