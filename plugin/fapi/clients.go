package fapi

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

// registry finds an edge client from its registration: the TPP's own redirect
// URIs, keys and algorithms are in the registration obdcr keeps in the Hydra
// client's metadata, and the profile's settings in the shared state.
type registry struct {
	clients policy.ClientStore
	state   policy.PolicyState
}

func (r registry) Client(ctx context.Context, id string) (*pf.Client, error) {
	if id == "" || len(id) > 256 {
		return nil, pf.ErrUnknownClient
	}
	hc, err := r.clients.Get(ctx, id)
	if errors.Is(err, hydra.ErrNotFound) {
		return nil, pf.ErrUnknownClient
	}
	if err != nil {
		return nil, err
	}
	reg, err := policy.FromHydra(hc, nil)
	if errors.Is(err, policy.ErrNotManaged) {
		return nil, pf.ErrUnknownClient
	}
	if err != nil {
		return nil, err
	}
	m := reg.Metadata
	c := &pf.Client{ID: reg.ClientID, Profile: reg.Profile, JWKSURI: m.JWKSURI, RedirectURIs: m.RedirectURIs,
		ResponseTypes: m.ResponseTypes, GrantTypes: m.GrantTypes, RequestObjectAlg: m.RequestObjectSigningAlg,
		AssertionAlg: m.TokenEndpointAuthSigningAlg, JARMAlg: m.AuthorizationSignedResponseAlg, AuthMethod: m.TokenEndpointAuthMethod,
		TLSSubject: pf.TLSSubject{DN: m.TLSClientAuthSubjectDN, DNS: m.TLSClientAuthSANDNS, URI: m.TLSClientAuthSANURI,
			IP: m.TLSClientAuthSANIP, Email: m.TLSClientAuthSANEmail}}
	st, err := r.state.State(ctx, reg.Profile)
	if err != nil {
		return nil, err
	}
	c.Rules = pf.Rules{RequirePAR: st.Settings.RequirePAR || m.RequirePushedAuthorizationRequests,
		PKCERequired: st.Settings.PKCERequired, ResponseModes: st.Settings.ResponseModes}
	return c, nil
}

// shapedClients makes every Hydra client an edge registration creates or
// replaces reachable only through the edge: its one redirect URI is the edge's
// callback, and its only key is obdcr's, so a TPP calling Hydra's public API
// with its own key is refused. The TPP's own redirect URIs and JWKS stay in the
// registration (the metadata record), which is what the edge checks against.
type shapedClients struct {
	policy.ClientStore
	callback string
	key      func() *pf.SigningKey
}

func (s shapedClients) shape(c hydra.Client) (hydra.Client, error) {
	k := s.key()
	set := jwk.NewSet()
	if err := set.AddKey(k.Public); err != nil {
		return c, err
	}
	b, err := json.Marshal(set)
	if err != nil {
		return c, err
	}
	c.RedirectURIs = []string{s.callback}
	c.JWKSURI, c.JWKS = "", b
	c.TokenEndpointAuthMethod, c.TokenEndpointAuthSigningAlg = "private_key_jwt", k.Alg
	// obdcr never sends Hydra a request object; the alg stops Hydra taking an unsigned one.
	c.RequestObjectSigningAlg = k.Alg
	return c, nil
}

func (s shapedClients) Create(ctx context.Context, c hydra.Client) (hydra.Client, error) {
	c, err := s.shape(c)
	if err != nil {
		return hydra.Client{}, err
	}
	return s.ClientStore.Create(ctx, c)
}

func (s shapedClients) Replace(ctx context.Context, c hydra.Client) (hydra.Client, error) {
	c, err := s.shape(c)
	if err != nil {
		return hydra.Client{}, err
	}
	return s.ClientStore.Replace(ctx, c)
}
