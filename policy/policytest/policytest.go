// Package policytest has fakes for unit tests of profiles and the registrar:
// a TrustStore over fixed key sets and an in-memory Hydra.
package policytest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
)

// Keys is a TrustStore over fixed JWKS, keyed by URL.
type Keys map[string]*policy.KeySet

// NewKeys holds sets as JWKSCache does.
func NewKeys(sets map[string]jwk.Set) Keys {
	k := Keys{}
	for u, s := range sets {
		k[u] = policy.NewKeySet(s)
	}
	return k
}

func (k Keys) Set(_ context.Context, u string) (*policy.KeySet, error) {
	s, ok := k[u]
	if !ok {
		return nil, &policy.FetchError{URL: u, Err: errors.New("no such JWKS")}
	}
	return s, nil
}

func (k Keys) Key(ctx context.Context, u, kid string) (*policy.PublicKey, error) {
	s, err := k.Set(ctx, u)
	if err != nil {
		return nil, err
	}
	if key, ok := s.Lookup(kid); ok {
		return key, nil
	}
	return nil, policy.ErrUnknownKey
}

// Hydra is an in-memory ClientStore with Hydra's conflict and not-found answers.
// FailCreate, when set, is returned by the next Create after storing the client
// (a failure after Hydra committed), or before it with FailBefore.
type Hydra struct {
	mu         sync.Mutex
	Clients    map[string]hydra.Client
	FailCreate error
	FailBefore bool
	// OnCreate, when set, is called as a Create begins, before the client is stored.
	OnCreate func()
	// FailReplace, when set, is returned by every Replace, which then changes nothing.
	FailReplace error
	Revoked     []string
	// PageSize is how many clients a ListPage answers.
	PageSize int
	// Gets and OwnerLists count Get and ListByOwner calls.
	Gets, OwnerLists int
}

func NewHydra() *Hydra { return &Hydra{Clients: map[string]hydra.Client{}} }

func (h *Hydra) Create(_ context.Context, c hydra.Client) (hydra.Client, error) {
	if h.OnCreate != nil {
		h.OnCreate()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.FailCreate != nil && h.FailBefore {
		return hydra.Client{}, h.FailCreate
	}
	if _, ok := h.Clients[c.ID]; ok {
		return hydra.Client{}, hydra.ErrConflict
	}
	h.Clients[c.ID] = c
	if h.FailCreate != nil {
		return hydra.Client{}, h.FailCreate
	}
	c.Secret = "hydra-made-secret"
	return c, nil
}

func (h *Hydra) Get(_ context.Context, id string) (hydra.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Gets++
	c, ok := h.Clients[id]
	if !ok {
		return hydra.Client{}, hydra.ErrNotFound
	}
	return c, nil
}

func (h *Hydra) Replace(_ context.Context, c hydra.Client) (hydra.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.FailReplace != nil {
		return hydra.Client{}, h.FailReplace
	}
	if _, ok := h.Clients[c.ID]; !ok {
		return hydra.Client{}, hydra.ErrNotFound
	}
	h.Clients[c.ID] = c
	return c, nil
}

func (h *Hydra) Delete(_ context.Context, id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.Clients[id]; !ok {
		return hydra.ErrNotFound
	}
	delete(h.Clients, id)
	return nil
}

// RevokeTokens records the revocation; Revoked lists the client ids.
func (h *Hydra) RevokeTokens(_ context.Context, id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Revoked = append(h.Revoked, id)
	return nil
}

// ListByOwner lists the clients whose owner is owner.
func (h *Hydra) ListByOwner(_ context.Context, owner string) ([]hydra.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.OwnerLists++
	var out []hydra.Client
	for _, c := range h.Clients {
		if c.Owner == owner {
			out = append(out, c)
		}
	}
	return out, nil
}

// ListPage pages through every client in id order, PageSize at a time (2 if unset);
// the token is the last id of the page before.
func (h *Hydra) ListPage(_ context.Context, token string) ([]hydra.Client, string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	size := h.PageSize
	if size <= 0 {
		size = 2
	}
	ids := slices.Sorted(maps.Keys(h.Clients))
	from, _ := slices.BinarySearch(ids, token)
	if token != "" && from < len(ids) && ids[from] == token {
		from++
	}
	var out []hydra.Client
	for _, id := range ids[from:min(len(ids), from+size)] {
		out = append(out, h.Clients[id])
	}
	if from+size >= len(ids) {
		return out, "", nil
	}
	return out, out[len(out)-1].ID, nil
}

// Len is how many clients exist.
func (h *Hydra) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.Clients)
}
