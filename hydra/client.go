// Package hydra translates obdcr's clients to and from Ory Hydra's admin API.
// It is the bottom layer: it knows Hydra, and nothing of profiles or HTTP routes.
package hydra

import (
	"encoding/json"
	"time"

	hc "github.com/ory/hydra-client-go/v2"
)

// Client is a Hydra OAuth 2.0 client as obdcr uses it. Metadata is obdcr's own
// record (profile, software_id, certificate thumbprint, SSA), kept in Hydra's
// admin-only metadata field so that Hydra stays the single source of truth.
type Client struct {
	ID                          string
	Secret                      string // only on create, only for secret-based auth
	Name                        string
	Owner                       string
	RedirectURIs                []string
	GrantTypes                  []string
	ResponseTypes               []string
	Scope                       string
	Audience                    []string
	TokenEndpointAuthMethod     string
	TokenEndpointAuthSigningAlg string
	RequestObjectSigningAlg     string
	UserinfoSignedResponseAlg   string
	JWKSURI                     string
	// JWKS is an inline key set (the FAPI edge's clients trust only obdcr's key).
	JWKS      json.RawMessage
	ClientURI string
	LogoURI   string
	PolicyURI string
	TosURI    string
	Contacts  []string
	Metadata  json.RawMessage
	CreatedAt time.Time
}

func str(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func val(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// toHydra builds the whole client, as Hydra's PUT is a full replace.
func toHydra(c Client) hc.OAuth2Client {
	o := hc.OAuth2Client{
		ClientId:                    str(c.ID),
		ClientName:                  str(c.Name),
		Owner:                       str(c.Owner),
		RedirectUris:                c.RedirectURIs,
		GrantTypes:                  c.GrantTypes,
		ResponseTypes:               c.ResponseTypes,
		Scope:                       str(c.Scope),
		Audience:                    c.Audience,
		TokenEndpointAuthMethod:     str(c.TokenEndpointAuthMethod),
		TokenEndpointAuthSigningAlg: str(c.TokenEndpointAuthSigningAlg),
		RequestObjectSigningAlg:     str(c.RequestObjectSigningAlg),
		UserinfoSignedResponseAlg:   str(c.UserinfoSignedResponseAlg),
		JwksUri:                     str(c.JWKSURI),
		ClientUri:                   str(c.ClientURI),
		LogoUri:                     str(c.LogoURI),
		PolicyUri:                   str(c.PolicyURI),
		TosUri:                      str(c.TosURI),
		Contacts:                    c.Contacts,
	}
	if len(c.Metadata) > 0 {
		o.Metadata = c.Metadata
	}
	if len(c.JWKS) > 0 {
		o.Jwks = c.JWKS
	}
	return o
}

func fromHydra(o *hc.OAuth2Client) Client {
	c := Client{
		ID:                          val(o.ClientId),
		Secret:                      val(o.ClientSecret),
		Name:                        val(o.ClientName),
		Owner:                       val(o.Owner),
		RedirectURIs:                o.RedirectUris,
		GrantTypes:                  o.GrantTypes,
		ResponseTypes:               o.ResponseTypes,
		Scope:                       val(o.Scope),
		Audience:                    o.Audience,
		TokenEndpointAuthMethod:     val(o.TokenEndpointAuthMethod),
		TokenEndpointAuthSigningAlg: val(o.TokenEndpointAuthSigningAlg),
		RequestObjectSigningAlg:     val(o.RequestObjectSigningAlg),
		UserinfoSignedResponseAlg:   val(o.UserinfoSignedResponseAlg),
		JWKSURI:                     val(o.JwksUri),
		ClientURI:                   val(o.ClientUri),
		LogoURI:                     val(o.LogoUri),
		PolicyURI:                   val(o.PolicyUri),
		TosURI:                      val(o.TosUri),
		Contacts:                    o.Contacts,
	}
	if o.CreatedAt != nil {
		c.CreatedAt = *o.CreatedAt
	}
	if o.Metadata != nil {
		c.Metadata, _ = json.Marshal(o.Metadata)
	}
	// Hydra answers an empty set for a client without one; sent back with a
	// jwks_uri it is refused, so only a set with keys is kept.
	if o.Jwks != nil {
		b, _ := json.Marshal(o.Jwks)
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if json.Unmarshal(b, &set) == nil && len(set.Keys) > 0 {
			c.JWKS = b
		}
	}
	return c
}
