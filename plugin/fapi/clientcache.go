package fapi

import (
	"context"
	"sync"
	"time"

	pf "github.com/obdcr/obdcr/policy/fapi"
)

// MaxCachedClients bounds the client cache: a bank's busy clients fit, and a
// flood of distinct client_ids (only registered ones are kept) cannot grow it.
const MaxCachedClients = 4096

// clientCache keeps each registration the edge reads (a Hydra admin read and
// the profile's state) for a short while: one flow reads its client at PAR,
// authorize and token, and a TPP runs many flows at once. This replica forgets
// a client when it is replaced or deleted here; another replica's change is
// seen once the entry expires, so ttl is how long a client updated or deleted
// elsewhere may still be honoured (Hydra itself refuses a deleted client's
// authorization and token requests at once).
type clientCache struct {
	next pf.Clients
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]cachedClient
	// gen changes at every forget, so that a read begun before a change does
	// not store what it read after it.
	gen uint64
}

type cachedClient struct {
	client  *pf.Client
	expires time.Time
}

func newClientCache(next pf.Clients, ttl time.Duration, now func() time.Time) *clientCache {
	return &clientCache{next: next, ttl: ttl, now: now, entries: map[string]cachedClient{}}
}

// Client returns the cached registration while it is fresh, else reads it.
// Unknown clients and errors are never kept. The *pf.Client returned is
// shared: callers read it and never change it.
func (c *clientCache) Client(ctx context.Context, id string) (*pf.Client, error) {
	if c.ttl <= 0 {
		return c.next.Client(ctx, id)
	}
	c.mu.Lock()
	e, ok := c.entries[id]
	gen := c.gen
	c.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		return e.client, nil
	}
	client, err := c.next.Client(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.makeRoom()
		c.entries[id] = cachedClient{client: client, expires: c.now().Add(c.ttl)}
	}
	return client, nil
}

// makeRoom drops expired entries when the cache is full, then any one.
func (c *clientCache) makeRoom() {
	if len(c.entries) < MaxCachedClients {
		return
	}
	now := c.now()
	for id, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, id)
		}
	}
	for id := range c.entries {
		if len(c.entries) < MaxCachedClients {
			return
		}
		delete(c.entries, id)
	}
}

// forget drops a client this replica has just replaced or deleted.
func (c *clientCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
	c.gen++
}
