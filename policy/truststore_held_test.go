package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/policy"
)

// manyJWKS serves the JWKS of n TPPs (each a signing key and a tls key with its
// certificate, as the sandbox's TPPs publish) at n URLs: a handful of distinct
// documents, each URL fetched and held on its own as distinct TPPs' would be.
type manyJWKS struct {
	*jwksServer
	kids []string
}

func newManyJWKS(t testing.TB) *manyJWKS {
	pki, err := sandbox.NewPKI("bench CA")
	if err != nil {
		t.Fatal(err)
	}
	m := &manyJWKS{}
	var docs [][]byte
	for i := 0; i < 4; i++ {
		tpp, err := sandbox.NewTPP(sandbox.UK, fmt.Sprintf("TPP %d", i), "https://keystore.example", pki)
		if err != nil {
			t.Fatal(err)
		}
		set, err := tpp.JWKS()
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := json.Marshal(set)
		docs, m.kids = append(docs, doc), append(m.kids, tpp.Signing.KID)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		_, _ = fmt.Sscanf(r.URL.Path, "/jwks/%d", &n)
		_, _ = w.Write(docs[n%len(docs)])
	}))
	t.Cleanup(srv.Close)
	m.jwksServer = &jwksServer{Server: srv}
	return m
}

func (m *manyJWKS) url(i int) string { return fmt.Sprintf("%s/jwks/%d", m.URL, i) }
func (m *manyJWKS) kid(i int) string { return m.kids[i%len(m.kids)] }

// load looks up a key of each of n TPPs in a new cache, and returns the cache
// with the heap bytes and objects it holds per TPP.
func (m *manyJWKS) load(t testing.TB, n int) (c *policy.JWKSCache, bytesPer, objectsPer float64) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c = policy.NewJWKSCache(ctx, policy.JWKSCacheOptions{Fetch: m.policy(), RefetchEvery: time.Hour, RefetchBudget: 100})
	for i := 0; i < n; i++ {
		if _, err := c.Key(ctx, m.url(i), m.kid(i)); err != nil {
			t.Fatal(err)
		}
	}
	m.CloseClientConnections()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return c, float64(after.HeapInuse-before.HeapInuse) / float64(n), float64(after.HeapObjects-before.HeapObjects) / float64(n)
}

// A held JWKS is a few objects, not jwx's parsed set (43 objects and 3.4 KiB a
// TPP): the garbage collector visits every one of them at every cycle.
func TestJWKSCacheHoldsFewObjectsPerTPP(t *testing.T) {
	m := newManyJWKS(t)
	c, bytesPer, objectsPer := m.load(t, 1000)
	if c.Len() != 1000 {
		t.Fatalf("%d JWKS held, want 1000", c.Len())
	}
	if objectsPer > 15 || bytesPer > 2048 {
		t.Fatalf("%.1f objects and %.0f bytes held per TPP, want at most 15 and 2 KiB", objectsPer, bytesPer)
	}
}

// Lookups that arrive together for a JWKS not yet held wait for one fetch.
func TestJWKSCacheFetchesOnceForConcurrentLookups(t *testing.T) {
	k1, _ := sandbox.NewKey("ES256", "k1")
	srv := newJWKSServer(t, k1)
	// The first fetch is held at the server until every lookup has begun, so
	// that they overlap it (a second fetch would say so on arrived, buffered).
	srv.gate, srv.arrived = make(chan struct{}), make(chan struct{}, 16)
	c := newCache(t, srv.policy(), time.Hour)
	var wg sync.WaitGroup
	lookup := func() {
		defer wg.Done()
		if _, err := c.Key(context.Background(), srv.URL, "k1"); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go lookup()
	<-srv.arrived
	var started sync.WaitGroup
	for i := 0; i < 15; i++ {
		wg.Add(1)
		started.Add(1)
		go func() { started.Done(); lookup() }()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // for the 15 to reach the cache while the fetch is held
	close(srv.gate)
	wg.Wait()
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 16 overlapping lookups, want 1", n)
	}
}

// BenchmarkJWKSCacheHeld holds the JWKS of 10,000 TPPs and reports what that
// costs: heap bytes and objects per TPP, and the time of a full garbage
// collection, whose mark phase visits every object held. Each iteration is one
// key lookup, as a registration makes.
func BenchmarkJWKSCacheHeld(b *testing.B) {
	const tpps = 10_000
	m := newManyJWKS(b)
	c, bytesPer, objectsPer := m.load(b, tpps)
	const rounds = 5
	start := time.Now()
	for i := 0; i < rounds; i++ {
		runtime.GC()
	}
	gc := time.Since(start) / rounds
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Key(ctx, m.url(i%tpps), m.kid(i%tpps)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(bytesPer, "heap-B/tpp")
	b.ReportMetric(objectsPer, "objects/tpp")
	b.ReportMetric(float64(gc.Microseconds()), "full-gc-µs")
	b.ReportMetric(float64(c.Len()), "held")
}
