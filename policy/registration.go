package policy

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/obdcr/obdcr/hydra"
)

// Registration is an approved client: what obdcr keeps in Hydra and tells the TPP.
type Registration struct {
	ClientID          string
	IssuedAt          time.Time
	Profile           string
	SoftwareID        string
	OrgID             string
	CertThumbprint    string // x5t#S256 of the TLS client certificate it registered with
	SoftwareStatement string // the SSA, unchanged
	Statement         *SoftwareStatement
	Metadata          ClientMetadata
	ClientSecret      string // only in the answer to a create, only for secret-based auth
	// RequestJTI marks a client with the request that created it, so that
	// compensation after an unknown outcome removes only that request's client.
	RequestJTI string
}

// Thumbprint is the RFC 8705 x5t#S256 of a certificate.
func Thumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// record is what obdcr keeps in the Hydra client's admin-only metadata: what
// Hydra has no field for, and what a later GET must answer with. The SSA is kept
// whole and its claims are read back from it, not stored twice: Hydra writes and
// returns this on every call.
type record struct {
	Schema            int            `json:"obdcr"`
	Profile           string         `json:"profile"`
	SoftwareID        string         `json:"software_id"`
	OrgID             string         `json:"org_id"`
	CertThumbprint    string         `json:"cert_thumbprint"`
	IssuedAt          int64          `json:"client_id_issued_at"`
	SoftwareStatement string         `json:"software_statement"`
	Registered        ClientMetadata `json:"registered"`
	RequestJTI        string         `json:"request_jti,omitempty"`
}

const recordSchema = 1

// ToHydra translates a registration into the Hydra client that serves it.
// request_object_signing_alg is always set: without it Hydra accepts unsigned
// request objects, which FAPI forbids.
func (r *Registration) ToHydra() (hydra.Client, error) {
	m := r.Metadata
	rec := record{
		Schema: recordSchema, Profile: r.Profile, SoftwareID: r.SoftwareID, OrgID: r.OrgID,
		CertThumbprint: r.CertThumbprint, IssuedAt: r.IssuedAt.Unix(),
		SoftwareStatement: r.SoftwareStatement, Registered: m, RequestJTI: r.RequestJTI,
	}
	meta, err := json.Marshal(rec)
	if err != nil {
		return hydra.Client{}, err
	}
	roAlg := m.RequestObjectSigningAlg
	if roAlg == "" {
		roAlg = m.IDTokenSignedResponseAlg
	}
	// Hydra issues a refresh token only when offline_access (or offline) is
	// granted, so a client registered for refresh_token must be allowed to ask
	// for it; the registration keeps the scope the TPP was granted.
	scope := m.Scope
	if slices.Contains(m.GrantTypes, "refresh_token") && !slices.Contains(strings.Fields(scope), OfflineAccess) {
		scope = strings.TrimSpace(scope + " " + OfflineAccess)
	}
	return hydra.Client{
		ID: r.ClientID, Name: m.ClientName, Owner: r.OrgID,
		RedirectURIs: m.RedirectURIs, GrantTypes: m.GrantTypes, ResponseTypes: m.ResponseTypes,
		Scope: scope, TokenEndpointAuthMethod: m.TokenEndpointAuthMethod,
		TokenEndpointAuthSigningAlg: m.TokenEndpointAuthSigningAlg, RequestObjectSigningAlg: roAlg,
		JWKSURI: m.JWKSURI, ClientURI: m.ClientURI, LogoURI: m.LogoURI, PolicyURI: m.PolicyURI,
		TosURI: m.TosURI, Contacts: m.Contacts, Metadata: meta,
	}, nil
}

// OfflineAccess is the scope Hydra issues refresh tokens for.
const OfflineAccess = "offline_access"

// ErrNotManaged: the Hydra client was not made by obdcr (no record in its metadata).
var ErrNotManaged = fmt.Errorf("client was not registered through obdcr")

// FromHydra reads a registration back from its Hydra client.
func FromHydra(c hydra.Client, decode func(*Registration) (*SoftwareStatement, error)) (*Registration, error) {
	var rec record
	if len(c.Metadata) == 0 || json.Unmarshal(c.Metadata, &rec) != nil || rec.Schema == 0 {
		return nil, ErrNotManaged
	}
	r := &Registration{
		ClientID: c.ID, IssuedAt: time.Unix(rec.IssuedAt, 0).UTC(), Profile: rec.Profile,
		SoftwareID: rec.SoftwareID, OrgID: rec.OrgID, CertThumbprint: rec.CertThumbprint,
		SoftwareStatement: rec.SoftwareStatement, Metadata: rec.Registered, RequestJTI: rec.RequestJTI,
	}
	if decode != nil {
		st, err := decode(r)
		if err != nil {
			return nil, err
		}
		r.Statement = st
	}
	return r, nil
}

// ResponseBase is the RFC 7591 §3.2.1 answer every profile starts from: the
// registered metadata, client_id, client_id_issued_at and the SSA unchanged.
func ResponseBase(r *Registration) map[string]any {
	out := make(map[string]any, 32)
	metadataClaims.each(&r.Metadata, func(name string, v any) { out[name] = v })
	out["client_id"] = r.ClientID
	out["client_id_issued_at"] = r.IssuedAt.Unix()
	out["software_statement"] = r.SoftwareStatement
	if r.ClientSecret != "" {
		out["client_secret"] = r.ClientSecret
		out["client_secret_expires_at"] = 0
	}
	return out
}

var metadataClaims = NewClaimSet[ClientMetadata]()

// FlattenClaims copies SSA claims to the top level of the answer without
// overwriting registered metadata, which is what the TPP was granted.
func FlattenClaims(out map[string]any, claims map[string]json.RawMessage, names ...string) {
	for _, name := range names {
		if v, ok := claims[name]; ok {
			if _, taken := out[name]; !taken {
				out[name] = v
			}
		}
	}
}

// Scopes splits a space-separated scope claim.
func Scopes(s string) []string { return strings.Fields(s) }
