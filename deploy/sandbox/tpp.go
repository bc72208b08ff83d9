package sandbox

import (
	"cmp"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/cert"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Profiles the sandbox speaks.
const (
	UK = "uk"
	AU = "au"
)

// Issuers as the real directories set them.
const (
	UKIssuer = "OpenBanking Ltd"
	AUIssuer = "cdr-register"
)

// TPP is a third party (UK) or accredited data recipient (AU) with its software.
type TPP struct {
	Profile       string   `json:"profile"`
	Name          string   `json:"name"`
	OrgID         string   `json:"org_id"`
	OrgStatus     string   `json:"org_status"`      // UK: Active, Revoked, Withdrawn
	LegalEntityID string   `json:"legal_entity_id"` // AU
	SoftwareID    string   `json:"software_id"`
	RedirectURIs  []string `json:"redirect_uris"`
	Roles         []string `json:"roles"`
	Scope         string   `json:"scope"` // AU: what the Register grants
	JWKSURL       string   `json:"jwks_url"`
	Signing       *Key     `json:"signing_key"`
	CertPEM       string   `json:"transport_cert"`
	KeyPEM        string   `json:"transport_key"`
	// JARMAlg is the authorization_signed_response_alg an AU TPP registers:
	// one the bank publishes in authorization_signing_alg_values_supported
	// (empty: ES256, the alg of the edge key the sandbox writes).
	JARMAlg string `json:"jarm_alg,omitempty"`

	mu        sync.Mutex // the sandbox serves one TPP's JWKS to many fetchers at once
	transport *Leaf
}

// NewTPP makes a TPP with a PS256 signing key and a transport certificate from
// pki that carries the OBIE subject (OU = org_id, CN = software_id). baseURL is
// where the sandbox serves its JWKS.
func NewTPP(profile, name, baseURL string, pki *PKI) (*TPP, error) {
	return newTPP(profile, name, baseURL, pki, nil)
}

// newTPP makes a TPP; with signing set, it signs with that key (the growth
// benchmark's thousands of TPPs share one, since an RSA key takes 50 ms to make).
func newTPP(profile, name, baseURL string, pki *PKI, signing *Key) (*TPP, error) {
	t := &TPP{Profile: profile, Name: name, Signing: signing}
	switch profile {
	case UK:
		t.OrgID, t.SoftwareID = base62(18), base62(22)
		t.OrgStatus = "Active"
		t.Roles = []string{"AISP", "PISP"}
		t.JWKSURL = fmt.Sprintf("%s/uk/tpp/%s/%s.jwks", baseURL, t.OrgID, t.SoftwareID)
	case AU:
		t.OrgID, t.SoftwareID, t.LegalEntityID = uuid.NewString(), uuid.NewString(), uuid.NewString()
		t.Roles = []string{"data-recipient-software-product"}
		t.Scope = "openid profile bank:accounts.basic:read bank:transactions:read common:customer.basic:read cdr:registration"
		t.JWKSURL = fmt.Sprintf("%s/au/tpp/%s/jwks", baseURL, t.SoftwareID)
	default:
		return nil, fmt.Errorf("sandbox: unknown profile %q", profile)
	}
	t.RedirectURIs = []string{
		fmt.Sprintf("https://%s.example.com/callback", strings.ToLower(name)),
		fmt.Sprintf("https://%s.example.com/cb2", strings.ToLower(name)),
	}
	var err error
	if t.Signing == nil {
		if t.Signing, err = NewKey("PS256", "sig-"+base62(8)); err != nil {
			return nil, err
		}
	}
	leaf, err := pki.Client(pkix.Name{Organization: []string{"OpenBanking"}, OrganizationalUnit: []string{t.OrgID}, CommonName: t.SoftwareID}, nil)
	if err != nil {
		return nil, err
	}
	t.transport, t.CertPEM, t.KeyPEM = leaf, string(leaf.CertPEM), string(leaf.KeyPEM)
	return t, nil
}

// Transport is the TPP's mTLS certificate.
func (t *TPP) Transport() (*Leaf, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.transport == nil {
		l, err := LoadLeaf([]byte(t.CertPEM), []byte(t.KeyPEM))
		if err != nil {
			return nil, err
		}
		t.transport = l
	}
	return t.transport, nil
}

// JWKS is what the TPP publishes: its signing key, and its transport certificate
// as a tls key with x5c and x5t#S256 (the OB Directory publishes both).
func (t *TPP) JWKS() (jwk.Set, error) {
	set := jwk.NewSet()
	if err := set.AddKey(t.Signing.Public()); err != nil {
		return nil, err
	}
	leaf, err := t.Transport()
	if err != nil {
		return nil, err
	}
	tlsKey, err := jwk.FromRaw(leaf.TLS.Leaf.PublicKey)
	if err != nil {
		return nil, err
	}
	var chain cert.Chain
	_ = chain.AddString(base64.StdEncoding.EncodeToString(leaf.TLS.Leaf.Raw))
	sum := sha256.Sum256(leaf.TLS.Leaf.Raw)
	_ = tlsKey.Set(jwk.KeyIDKey, "tls-"+t.SoftwareID[:8])
	_ = tlsKey.Set(jwk.KeyUsageKey, "tls")
	_ = tlsKey.Set(jwk.X509CertChainKey, &chain)
	_ = tlsKey.Set(jwk.X509CertThumbprintS256Key, base64.RawURLEncoding.EncodeToString(sum[:]))
	if err := set.AddKey(tlsKey); err != nil {
		return nil, err
	}
	return set, nil
}

// Authority is a directory (UK) or CDR Register (AU): it signs SSAs.
type Authority struct {
	Profile string `json:"profile"`
	Issuer  string `json:"issuer"`
	Key     *Key   `json:"key"`
}

// NewAuthority makes a directory or Register with a PS256 key.
func NewAuthority(profile string) (*Authority, error) {
	iss := UKIssuer
	if profile == AU {
		iss = AUIssuer
	}
	k, err := NewKey("PS256", profile+"-ssa-"+base62(8))
	if err != nil {
		return nil, err
	}
	return &Authority{Profile: profile, Issuer: iss, Key: k}, nil
}

// JWKS is the authority's public key set.
func (a *Authority) JWKS() jwk.Set {
	set := jwk.NewSet()
	_ = set.AddKey(a.Key.Public())
	return set
}

// SSAClaims are the claims a real directory would put in t's SSA.
func (a *Authority) SSAClaims(t *TPP, now time.Time) map[string]any {
	c := map[string]any{"iss": a.Issuer, "iat": now.Unix(), "jti": uuid.NewString(), "software_id": t.SoftwareID, "org_id": t.OrgID}
	switch t.Profile {
	case UK:
		c["software_client_id"] = t.SoftwareID
		c["software_client_name"] = t.Name + " app"
		c["software_client_description"] = "Sandbox software of " + t.Name
		c["software_version"] = 1.5
		c["software_environment"] = "sandbox"
		c["software_mode"] = "Test"
		c["software_jwks_endpoint"] = t.JWKSURL
		c["software_jwks_revoked_endpoint"] = strings.Replace(t.JWKSURL, t.SoftwareID, "revoked/"+t.SoftwareID, 1)
		c["software_redirect_uris"] = t.RedirectURIs
		c["software_roles"] = t.Roles
		c["software_logo_uri"] = "https://" + strings.ToLower(t.Name) + ".example.com/logo.png"
		c["software_policy_uri"] = "https://" + strings.ToLower(t.Name) + ".example.com/policy"
		c["software_tos_uri"] = "https://" + strings.ToLower(t.Name) + ".example.com/tos"
		c["org_name"] = t.Name
		c["org_status"] = t.OrgStatus
		c["org_contacts"] = []map[string]string{{"name": "Ops", "email": "ops@" + strings.ToLower(t.Name) + ".example.com"}}
	case AU:
		c["exp"] = now.Add(10 * time.Minute).Unix()
		c["org_name"] = t.Name
		c["client_name"] = t.Name + " app"
		c["client_description"] = "Sandbox data recipient " + t.Name
		c["client_uri"] = "https://" + strings.ToLower(t.Name) + ".example.com"
		c["redirect_uris"] = t.RedirectURIs
		c["logo_uri"] = "https://" + strings.ToLower(t.Name) + ".example.com/logo.png"
		c["tos_uri"] = "https://" + strings.ToLower(t.Name) + ".example.com/tos"
		c["policy_uri"] = "https://" + strings.ToLower(t.Name) + ".example.com/policy"
		c["jwks_uri"] = t.JWKSURL
		c["revocation_uri"] = "https://" + strings.ToLower(t.Name) + ".example.com/revoke"
		c["recipient_base_uri"] = "https://" + strings.ToLower(t.Name) + ".example.com"
		c["software_roles"] = t.Roles[0]
		c["scope"] = t.Scope
		c["legal_entity_id"] = t.LegalEntityID
		c["legal_entity_name"] = t.Name + " Pty Ltd"
	}
	return c
}

// SSA signs t's statement; mutate (may be nil) edits the claims first.
func (a *Authority) SSA(t *TPP, now time.Time, mutate func(map[string]any)) (string, error) {
	c := a.SSAClaims(t, now)
	if mutate != nil {
		mutate(c)
	}
	return a.Key.Sign(c, nil)
}

// RequestClaims are the claims of a valid registration request of t's profile.
func (t *TPP) RequestClaims(ssa, aud string, now time.Time) map[string]any {
	c := map[string]any{
		"iss": t.SoftwareID, "aud": aud, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"jti": uuid.NewString(), "software_statement": ssa,
		"token_endpoint_auth_method":      "private_key_jwt",
		"token_endpoint_auth_signing_alg": "PS256",
		"id_token_signed_response_alg":    "PS256",
		"request_object_signing_alg":      "PS256",
		"redirect_uris":                   t.RedirectURIs[:1],
		"application_type":                "web",
	}
	switch t.Profile {
	case UK:
		c["grant_types"] = []string{"authorization_code", "client_credentials", "refresh_token"}
		c["response_types"] = []string{"code id_token"}
		c["scope"] = "openid accounts payments"
	case AU:
		c["grant_types"] = []string{"authorization_code", "client_credentials", "refresh_token"}
		c["response_types"] = []string{"code"}
		c["authorization_signed_response_alg"] = cmp.Or(t.JARMAlg, "ES256")
		c["id_token_encrypted_response_alg"] = ""
		c["id_token_encrypted_response_enc"] = ""
	}
	return c
}

// Request signs a registration request; mutate (may be nil) edits the claims.
func (t *TPP) Request(ssa, aud string, now time.Time, mutate func(map[string]any)) (string, error) {
	c := t.RequestClaims(ssa, aud, now)
	if mutate != nil {
		mutate(c)
	}
	return t.Signing.Sign(c, nil)
}

const base62Chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func base62(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = base62Chars[rand.IntN(len(base62Chars))]
	}
	return string(b)
}
