package fapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

// countingClients is a registry that counts its reads; "unknown" is not registered.
type countingClients struct {
	mu    sync.Mutex
	reads map[string]int
	// during, when set, runs inside a read (to change the client meanwhile).
	during func()
}

func (c *countingClients) Client(_ context.Context, id string) (*pf.Client, error) {
	c.mu.Lock()
	c.reads[id]++
	during := c.during
	c.mu.Unlock()
	if during != nil {
		during()
	}
	if id == "unknown" {
		return nil, pf.ErrUnknownClient
	}
	return &pf.Client{ID: id}, nil
}

// TestClientCache: a flow's repeated reads of its client within the TTL reach
// the registry once; an expired entry, a client changed or deleted through this
// replica, an unknown client and a read that raced a change are read again.
func TestClientCache(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		ttl  time.Duration
		// between runs after the first read, with the clock and the cache.
		between   func(now *time.Time, c *clientCache)
		id        string
		wantReads int
	}{
		{name: "fresh: one read for three lookups", ttl: 5 * time.Second, id: "a", wantReads: 1},
		{name: "expired: read again", ttl: 5 * time.Second, id: "a", wantReads: 3,
			between: func(now *time.Time, _ *clientCache) { *now = now.Add(5 * time.Second) }},
		{name: "forgotten (PUT or DELETE here): read again", ttl: 5 * time.Second, id: "a", wantReads: 3,
			between: func(_ *time.Time, c *clientCache) { c.forget("a") }},
		{name: "another client forgotten: still cached", ttl: 5 * time.Second, id: "a", wantReads: 1,
			between: func(_ *time.Time, c *clientCache) { c.forget("b") }},
		{name: "unknown client: never kept", ttl: 5 * time.Second, id: "unknown", wantReads: 3},
		{name: "TTL 0: no cache", ttl: 0, id: "a", wantReads: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			next := &countingClients{reads: map[string]int{}}
			c := newClientCache(next, tc.ttl, func() time.Time { return now })
			for i := range 3 {
				got, err := c.Client(ctx, tc.id)
				if tc.id == "unknown" {
					if !errors.Is(err, pf.ErrUnknownClient) {
						t.Fatalf("unknown client: %v", err)
					}
				} else if err != nil || got.ID != tc.id {
					t.Fatalf("lookup %d: %v %v", i, got, err)
				}
				if tc.between != nil {
					tc.between(&now, c)
				}
			}
			if got := next.reads[tc.id]; got != tc.wantReads {
				t.Errorf("%d reads of the registry, want %d", got, tc.wantReads)
			}
		})
	}
}

// TestClientCacheRaceWithChange: a read that began before the client was
// changed does not store what it read, so the next lookup reads again.
func TestClientCacheRaceWithChange(t *testing.T) {
	next := &countingClients{reads: map[string]int{}}
	c := newClientCache(next, time.Minute, time.Now)
	next.during = func() { c.forget("a") } // a PUT lands while the read is in flight
	if _, err := c.Client(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	next.during = nil
	if _, err := c.Client(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if next.reads["a"] != 2 {
		t.Errorf("%d reads; the read that raced the change must not be kept", next.reads["a"])
	}
}

// TestClientCacheBound: however many distinct registered clients are looked
// up, the cache holds at most MaxCachedClients.
func TestClientCacheBound(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newClientCache(&countingClients{reads: map[string]int{}}, time.Minute, func() time.Time { return now })
	for i := range MaxCachedClients + 500 {
		if _, err := c.Client(context.Background(), fmt.Sprint("client-", i)); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			now = now.Add(time.Second)
		}
	}
	if n := len(c.entries); n > MaxCachedClients || n == 0 {
		t.Errorf("%d entries, want 1..%d", n, MaxCachedClients)
	}
}

// fakeStore is a Hydra client store that records what was deleted or replaced.
type fakeStore struct {
	policy.ClientStore
	changed []string
}

func (f *fakeStore) Replace(_ context.Context, c hydra.Client) (hydra.Client, error) {
	f.changed = append(f.changed, "replace "+c.ID)
	return c, nil
}

func (f *fakeStore) Delete(_ context.Context, id string) error {
	f.changed = append(f.changed, "delete "+id)
	return nil
}

// TestShapedClientsForget: a registration replaced (PUT) or deleted (DELETE)
// through this replica is dropped from the edge's cache at once.
func TestShapedClientsForget(t *testing.T) {
	key := newKey(t)
	for _, op := range []string{"replace", "delete"} {
		t.Run(op, func(t *testing.T) {
			next := &countingClients{reads: map[string]int{}}
			cache := newClientCache(next, time.Minute, time.Now)
			store := &fakeStore{}
			s := shapedClients{ClientStore: store, callback: "https://bank.example/cb", key: func() *pf.SigningKey { return key }, forget: cache.forget}
			ctx := context.Background()
			if _, err := cache.Client(ctx, "c1"); err != nil {
				t.Fatal(err)
			}
			var err error
			if op == "replace" {
				_, err = s.Replace(ctx, hydra.Client{ID: "c1"})
			} else {
				err = s.Delete(ctx, "c1")
			}
			if err != nil || len(store.changed) != 1 {
				t.Fatalf("%s: %v %v", op, err, store.changed)
			}
			if _, err := cache.Client(ctx, "c1"); err != nil {
				t.Fatal(err)
			}
			if next.reads["c1"] != 2 {
				t.Errorf("after %s the cached registration was still used (%d reads)", op, next.reads["c1"])
			}
		})
	}
}
