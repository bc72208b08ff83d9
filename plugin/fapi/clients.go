package fapi

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"

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
	profile func(name string) (*policy.Profile, bool) // nil: no profile's own rules
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
	if r.profile != nil {
		if p, ok := r.profile(reg.Profile); ok {
			c.Rules.CodeNeedsJARM = p.CodeNeedsJARM
		}
	}
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
	// forget drops a client from the edge's cache once it changes here.
	forget func(id string)
}

func (s shapedClients) shape(c hydra.Client) (hydra.Client, error) {
	k := s.key()
	return Shape(c, s.callback, k.Public, k.Alg)
}

// Shape makes c an edge registration's Hydra client: the edge's callback its
// one redirect URI, the public key obdcr signs its assertions with its only
// key. Everything else (client_id, metadata, grants, scope) is kept.
func Shape(c hydra.Client, callback string, key jwk.Key, alg string) (hydra.Client, error) {
	set := jwk.NewSet()
	if err := set.AddKey(key); err != nil {
		return c, err
	}
	b, err := json.Marshal(set)
	if err != nil {
		return c, err
	}
	c.RedirectURIs = []string{callback}
	c.JWKSURI, c.JWKS = "", b
	c.TokenEndpointAuthMethod, c.TokenEndpointAuthSigningAlg = "private_key_jwt", alg
	// obdcr never sends Hydra a request object; the alg stops Hydra taking an unsigned one.
	c.RequestObjectSigningAlg = alg
	return c, nil
}

// Unshaped says how c lets its client reach Hydra around the edge (nothing
// when it is shaped as Shape makes it): a redirect URI of its own, a JWKS of
// its own, or a key other than key. Keys are compared by thumbprint.
func Unshaped(c hydra.Client, callback string, key jwk.Key, alg string) []string {
	var out []string
	if len(c.RedirectURIs) != 1 || c.RedirectURIs[0] != callback {
		out = append(out, "redirects to URIs other than the edge's callback")
	}
	if c.JWKSURI != "" {
		out = append(out, "trusts the keys at its own jwks_uri")
	}
	if c.TokenEndpointAuthMethod != "private_key_jwt" || c.TokenEndpointAuthSigningAlg != alg {
		out = append(out, fmt.Sprintf("authenticates with %s %s, not private_key_jwt %s", c.TokenEndpointAuthMethod, c.TokenEndpointAuthSigningAlg, alg))
	}
	if c.JWKSURI == "" && !onlyKey(c.JWKS, key) {
		out = append(out, "trusts a key other than obdcr's assertion key")
	}
	return out
}

// onlyKey: the inline set raw holds key and no other.
func onlyKey(raw json.RawMessage, key jwk.Key) bool {
	set, err := jwk.Parse(raw)
	if err != nil || set.Len() != 1 {
		return false
	}
	k, _ := set.Key(0)
	a, errA := k.Thumbprint(crypto.SHA256)
	b, errB := key.Thumbprint(crypto.SHA256)
	return errA == nil && errB == nil && bytes.Equal(a, b)
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
	defer s.forget(c.ID)
	return s.ClientStore.Replace(ctx, c)
}

func (s shapedClients) Delete(ctx context.Context, id string) error {
	defer s.forget(id)
	return s.ClientStore.Delete(ctx, id)
}
