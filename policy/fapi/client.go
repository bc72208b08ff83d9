package fapi

import (
	"context"
	"errors"
	"slices"
)

// Client is what the edge needs of a registration: the TPP's own redirect URIs,
// keys and algorithms, kept in the registration, not in the Hydra client (whose
// redirect URI is the edge's callback and whose only key is obdcr's).
type Client struct {
	ID      string
	Profile string
	// JWKSURI is the TPP's JWKS: its request objects and client assertions verify with it.
	JWKSURI          string
	RedirectURIs     []string
	ResponseTypes    []string
	GrantTypes       []string
	RequestObjectAlg string
	AssertionAlg     string
	// JARMAlg is authorization_signed_response_alg as registered.
	JARMAlg    string
	RequirePAR bool
	Rules      Rules
	// AuthMethod is token_endpoint_auth_method as registered, and TLSSubject
	// the certificate a tls_client_auth client named.
	AuthMethod string
	TLSSubject TLSSubject
}

// Rules are the profile's settings the edge enforces.
type Rules struct {
	RequirePAR    bool
	PKCERequired  bool
	ResponseModes []string
	// CodeNeedsJARM is the profile's (policy.Profile.CodeNeedsJARM).
	CodeNeedsJARM bool
}

// Algs are the only signing algorithms FAPI allows.
var Algs = []string{"PS256", "ES256"}

// ErrUnknownClient: no registration has this client_id.
var ErrUnknownClient = errors.New("unknown client")

// Clients finds a registration by client_id; ErrUnknownClient when there is none.
type Clients interface {
	Client(ctx context.Context, id string) (*Client, error)
}

// requestAlgs are the algorithms a request object of c may use.
func (c *Client) requestAlgs() []string {
	if c.RequestObjectAlg != "" && slices.Contains(Algs, c.RequestObjectAlg) {
		return []string{c.RequestObjectAlg}
	}
	return Algs
}

func (c *Client) assertionAlgs() []string {
	if c.AssertionAlg != "" && slices.Contains(Algs, c.AssertionAlg) {
		return []string{c.AssertionAlg}
	}
	return Algs
}
