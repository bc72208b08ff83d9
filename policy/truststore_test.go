package policy_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/cert"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/policy"
)

// jwksServer serves a key set it can change, fail, and count fetches of.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	set     jwk.Set
	body    []byte // when set, served instead of set
	down    bool
	fetches atomic.Int32
	// When gate is set, each fetch says so on arrived, then waits for gate.
	gate, arrived chan struct{}
}

func newJWKSServer(t *testing.T, keys ...*sandbox.Key) *jwksServer {
	s := &jwksServer{set: jwk.NewSet()}
	for _, k := range keys {
		_ = s.set.AddKey(k.Public())
	}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if s.gate != nil {
			s.arrived <- struct{}{}
			<-s.gate
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if s.body != nil {
			_, _ = w.Write(s.body)
			return
		}
		_ = json.NewEncoder(w).Encode(s.set)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) policy() policy.FetchPolicy {
	p := policy.DefaultFetchPolicy()
	p.AllowPrivate = true
	p.TLS = &tls.Config{RootCAs: s.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	return p
}

func newCache(t *testing.T, p policy.FetchPolicy, every time.Duration) *policy.JWKSCache {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return policy.NewJWKSCache(ctx, policy.JWKSCacheOptions{Fetch: p, RefetchEvery: every, RefetchBudget: 100})
}

func TestJWKSCache(t *testing.T) {
	k1, _ := sandbox.NewKey("ES256", "k1")
	k2, _ := sandbox.NewKey("ES256", "k2")
	ctx := context.Background()

	t.Run("fetched once for many lookups", func(t *testing.T) {
		srv := newJWKSServer(t, k1)
		c := newCache(t, srv.policy(), time.Hour)
		for i := 0; i < 50; i++ {
			if _, err := c.Key(ctx, srv.URL, "k1"); err != nil {
				t.Fatal(err)
			}
		}
		if n := srv.fetches.Load(); n != 1 {
			t.Fatalf("%d fetches for 50 lookups, want 1", n)
		}
	})
	t.Run("unknown kid refetches, rate-limited", func(t *testing.T) {
		srv := newJWKSServer(t, k1)
		c := newCache(t, srv.policy(), time.Hour)
		_, _ = c.Key(ctx, srv.URL, "k1")
		for i := 0; i < 20; i++ {
			if _, err := c.Key(ctx, srv.URL, "made-up"); !errors.Is(err, policy.ErrUnknownKey) {
				t.Fatalf("want ErrUnknownKey, got %v", err)
			}
		}
		if n := srv.fetches.Load(); n != 2 {
			t.Fatalf("%d fetches after a flood of unknown kids, want 2 (one refetch)", n)
		}
	})
	t.Run("a rotated key is picked up", func(t *testing.T) {
		srv := newJWKSServer(t, k1)
		c := newCache(t, srv.policy(), 10*time.Millisecond)
		_, _ = c.Key(ctx, srv.URL, "k1")
		srv.mu.Lock()
		_ = srv.set.AddKey(k2.Public())
		srv.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		if _, err := c.Key(ctx, srv.URL, "k2"); err != nil {
			t.Fatalf("rotated key: %v", err)
		}
	})
	t.Run("known keys keep working when the host goes down", func(t *testing.T) {
		srv := newJWKSServer(t, k1)
		c := newCache(t, srv.policy(), 10*time.Millisecond)
		_, _ = c.Key(ctx, srv.URL, "k1")
		srv.mu.Lock()
		srv.down = true
		srv.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		_, _ = c.Key(ctx, srv.URL, "unknown") // forces a failing refetch
		if _, err := c.Key(ctx, srv.URL, "k1"); err != nil {
			t.Fatalf("known kid after the host went down: %v", err)
		}
	})
	t.Run("a host that was down at first works once back", func(t *testing.T) {
		srv := newJWKSServer(t, k1)
		srv.down = true
		c := newCache(t, srv.policy(), 10*time.Millisecond)
		if _, err := c.Key(ctx, srv.URL, "k1"); err == nil {
			t.Fatal("got a key from a host that is down")
		}
		srv.mu.Lock()
		srv.down = false
		srv.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		if _, err := c.Key(ctx, srv.URL, "k1"); err != nil {
			t.Fatalf("host back: %v", err)
		}
	})
}

func TestJWKSLimits(t *testing.T) {
	ctx := context.Background()
	k1, _ := sandbox.NewKey("ES256", "k1")
	cases := []struct {
		name   string
		setup  func(s *jwksServer)
		url    func(s *jwksServer) string
		policy func(s *jwksServer) policy.FetchPolicy
		want   string
	}{
		{name: "over 64 KiB", setup: func(s *jwksServer) { s.body = []byte(`{"keys":[],"pad":"` + strings.Repeat("x", 70<<10) + `"}`) }, want: "limit"},
		{name: "over 100 keys", setup: func(s *jwksServer) {
			for i := 0; i < 101; i++ {
				k, _ := jwk.FromRaw([]byte("0123456789abcdef"))
				_ = k.Set(jwk.KeyIDKey, strings.Repeat("k", i+1))
				_ = s.set.AddKey(k)
			}
		}, want: "more than the 100 allowed"},
		{name: "plain http", url: func(s *jwksServer) string { return strings.Replace(s.URL, "https", "http", 1) }, want: "https"},
		{name: "loopback without AllowPrivate", policy: func(s *jwksServer) policy.FetchPolicy {
			p := s.policy()
			p.AllowPrivate = false
			return p
		}, want: "loopback"},
		{name: "hostname resolving to loopback", url: func(s *jwksServer) string { return strings.Replace(s.URL, "127.0.0.1", "localhost", 1) },
			policy: func(s *jwksServer) policy.FetchPolicy {
				p := s.policy()
				p.AllowPrivate = false
				return p
			}, want: "not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newJWKSServer(t, k1)
			if c.setup != nil {
				c.setup(srv)
			}
			u, p := srv.URL, srv.policy()
			if c.url != nil {
				u = c.url(srv)
			}
			if c.policy != nil {
				p = c.policy(srv)
			}
			_, err := newCache(t, p, time.Hour).Key(ctx, u, "k1")
			var fe *policy.FetchError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want a FetchError mentioning %q, got %v", c.want, err)
			}
		})
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestJWKSCacheDropsIdle(t *testing.T) {
	ctx := context.Background()
	k1, _ := sandbox.NewKey("ES256", "k1")
	tpp, other, directory := newJWKSServer(t, k1), newJWKSServer(t, k1), newJWKSServer(t, k1)
	p := tpp.policy()
	p.TLS.RootCAs.AddCert(other.Certificate())
	p.TLS.RootCAs.AddCert(directory.Certificate())
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	c := policy.NewJWKSCache(cctx, policy.JWKSCacheOptions{Fetch: p, IdleAfter: 24 * time.Hour,
		Keep: []string{directory.URL}, Now: clock.Now})

	lookup := func(s *jwksServer) {
		t.Helper()
		if _, err := c.Key(ctx, s.URL, "k1"); err != nil {
			t.Fatal(err)
		}
	}
	lookup(tpp)
	lookup(directory)
	lookup(other)
	steps := []struct {
		name    string
		advance time.Duration
		use     []*jwksServer
		dropped []string
		held    int
	}{
		{name: "nothing is idle yet", advance: 23 * time.Hour, use: []*jwksServer{other}, held: 3},
		{name: "idle a day: dropped, the directory's kept", advance: 2 * time.Hour, dropped: []string{tpp.URL}, held: 2},
		{name: "the other one goes idle in its turn", advance: 23 * time.Hour, dropped: []string{other.URL}, held: 1},
	}
	for _, s := range steps {
		clock.Add(s.advance)
		for _, u := range s.use {
			lookup(u)
		}
		if got := c.DropIdle(); !slices.Equal(got, s.dropped) {
			t.Fatalf("%s: dropped %v, want %v", s.name, got, s.dropped)
		}
		if c.Len() != s.held {
			t.Fatalf("%s: %d JWKS held, want %d", s.name, c.Len(), s.held)
		}
	}
	if n := tpp.fetches.Load(); n != 1 {
		t.Fatalf("TPP JWKS fetched %d times before it was dropped, want 1", n)
	}
	lookup(tpp)
	if n := tpp.fetches.Load(); n != 2 {
		t.Fatalf("a dropped JWKS used again: %d fetches, want 2 (fetched afresh)", n)
	}
	if n := directory.fetches.Load(); n != 1 {
		t.Fatalf("the kept directory JWKS was fetched %d times, want 1", n)
	}

	t.Run("a URL the fetch policy refuses is not counted as held", func(t *testing.T) {
		before := c.Len()
		if _, err := c.Key(ctx, strings.Replace(tpp.URL, "https", "http", 1), "k1"); err == nil {
			t.Fatal("a plain-http JWKS was used")
		}
		if c.Len() != before {
			t.Fatalf("%d JWKS held after a refused URL, want %d", c.Len(), before)
		}
	})
	t.Run("a JWKS a lookup is using is never dropped", func(t *testing.T) {
		slow := newJWKSServer(t, k1)
		slow.gate, slow.arrived = make(chan struct{}), make(chan struct{})
		p.TLS.RootCAs.AddCert(slow.Certificate())
		errc := make(chan error, 1)
		go func() { _, err := c.Key(ctx, slow.URL, "k1"); errc <- err }()
		<-slow.arrived // the lookup is fetching
		clock.Add(48 * time.Hour)
		if got := c.DropIdle(); slices.Contains(got, slow.URL) {
			t.Fatal("dropped a JWKS while a lookup was fetching it")
		}
		close(slow.gate)
		if err := <-errc; err != nil {
			t.Fatalf("the lookup in flight: %v", err)
		}
	})
}

// A software JWKS is refreshed when a lookup finds it older than the refresh
// interval, not in the background: fetches follow registrations, not the number
// of TPPs held. A refresh that fails keeps the last good copy.
func TestJWKSCacheRefreshesSoftwareOnUse(t *testing.T) {
	ctx := context.Background()
	k1, _ := sandbox.NewKey("ES256", "k1")
	tpp := newJWKSServer(t, k1)
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	c := policy.NewJWKSCache(cctx, policy.JWKSCacheOptions{Fetch: tpp.policy(), RefreshInterval: 15 * time.Minute, Now: clock.Now,
		RefetchEvery: time.Nanosecond, RefetchBudget: 1e6}) // the refetch limiters run on real time
	steps := []struct {
		name    string
		advance time.Duration
		down    bool
		fetches int32
	}{
		{"first use fetches", 0, false, 1},
		{"ten minutes on, the copy serves", 10 * time.Minute, false, 1},
		{"past the interval, a use refreshes it", 6 * time.Minute, false, 2},
		{"and the refreshed copy serves again", 5 * time.Minute, false, 2},
		{"the host down: tried, and the last good copy serves", 20 * time.Minute, true, 3},
	}
	for _, s := range steps {
		clock.Add(s.advance)
		tpp.mu.Lock()
		tpp.down = s.down
		tpp.mu.Unlock()
		if _, err := c.Key(ctx, tpp.URL, "k1"); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if n := tpp.fetches.Load(); n != s.fetches {
			t.Fatalf("%s: %d fetches, want %d", s.name, n, s.fetches)
		}
	}
}

// A JWKS is held with each key's certificate chain reduced to the thumbprint of
// its first certificate: what the transport certificate check compares.
func TestJWKSCacheKeepsThumbprintsNotChains(t *testing.T) {
	pki, _ := sandbox.NewPKI("tpp CA")
	leaf, _ := pki.Client(pkix.Name{CommonName: "tpp"}, nil)
	tlsKey, err := jwk.FromRaw(leaf.TLS.Leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var chain cert.Chain
	_ = chain.AddString(base64.StdEncoding.EncodeToString(leaf.TLS.Leaf.Raw))
	_ = tlsKey.Set(jwk.KeyIDKey, "tls-1")
	_ = tlsKey.Set(jwk.KeyUsageKey, "tls")
	_ = tlsKey.Set(jwk.X509CertChainKey, &chain)
	s := newJWKSServer(t)
	_ = s.set.AddKey(tlsKey)
	c := newCache(t, s.policy(), time.Second)
	set, err := c.Set(context.Background(), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := set.Lookup("tls-1")
	sum := sha256.Sum256(leaf.TLS.Leaf.Raw)
	if k.CertThumbprint() != base64.RawURLEncoding.EncodeToString(sum[:]) {
		t.Fatalf("thumbprint %q", k.CertThumbprint())
	}
	if set.CertKey(leaf.TLS.Leaf, "tls") != k {
		t.Fatal("the transport certificate does not match its key")
	}
}

// A directory's JWKS (Keep) is refreshed in the background, and a refresh that
// fails keeps its last good copy serving.
func TestJWKSCacheRefreshesDirectoriesInBackground(t *testing.T) {
	ctx := context.Background()
	k1, _ := sandbox.NewKey("ES256", "k1")
	dir := newJWKSServer(t, k1)
	cctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	c := policy.NewJWKSCache(cctx, policy.JWKSCacheOptions{Fetch: dir.policy(), RefreshInterval: 20 * time.Millisecond, Keep: []string{dir.URL}})
	if _, err := c.Key(ctx, dir.URL, "k1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for dir.fetches.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := dir.fetches.Load(); n < 3 {
		t.Fatalf("%d fetches of the directory's JWKS, want background refreshes", n)
	}
	dir.mu.Lock()
	dir.down = true
	atDown := dir.fetches.Load()
	dir.mu.Unlock()
	// Two more fetches: at least one began, and failed, after the host went down.
	for dir.fetches.Load() < atDown+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := dir.fetches.Load() - atDown; n < 2 {
		t.Fatalf("%d background refreshes while the directory was down, want 2", n)
	}
	if _, err := c.Key(ctx, dir.URL, "k1"); err != nil {
		t.Fatalf("the directory's key after failed refreshes: %v", err)
	}
}

// A key's certificate is the one its x5c gives; an x5t#S256 beside it that
// names another certificate matches nothing. Without x5c, the thumbprint is it.
func TestKeyCertificateIsItsChainsFirst(t *testing.T) {
	pki, _ := sandbox.NewPKI("tpp CA")
	a, _ := pki.Client(pkix.Name{CommonName: "a"}, nil)
	b, _ := pki.Client(pkix.Name{CommonName: "b"}, nil)
	thumb := func(der []byte) string { s := sha256.Sum256(der); return base64.RawURLEncoding.EncodeToString(s[:]) }
	tests := []struct {
		name       string
		chain      []byte // x5c's first certificate, if any
		thumbprint string // x5t#S256, if any
		matchA     bool
		matchB     bool
	}{
		{"x5c alone", a.TLS.Leaf.Raw, "", true, false},
		{"x5t#S256 alone", nil, thumb(b.TLS.Leaf.Raw), false, true},
		{"x5c with an x5t#S256 of another certificate", a.TLS.Leaf.Raw, thumb(b.TLS.Leaf.Raw), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := jwk.FromRaw(a.TLS.Leaf.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			_ = k.Set(jwk.KeyIDKey, "tls-1")
			_ = k.Set(jwk.KeyUsageKey, "tls")
			if tt.chain != nil {
				var chain cert.Chain
				_ = chain.AddString(base64.StdEncoding.EncodeToString(tt.chain))
				_ = k.Set(jwk.X509CertChainKey, &chain)
			}
			if tt.thumbprint != "" {
				_ = k.Set(jwk.X509CertThumbprintS256Key, tt.thumbprint)
			}
			set := &policy.KeySet{Keys: []policy.PublicKey{policy.NewPublicKey(k)}}
			if got := set.CertKey(a.TLS.Leaf, "tls") != nil; got != tt.matchA {
				t.Errorf("certificate a matches: %v, want %v", got, tt.matchA)
			}
			if got := set.CertKey(b.TLS.Leaf, "tls") != nil; got != tt.matchB {
				t.Errorf("certificate b matches: %v, want %v", got, tt.matchB)
			}
		})
	}
}

// A URL the fetch policy refuses is never fetched and spends nothing: looked
// up again and again, it leaves the refetch budget to a real key rotation.
func TestJWKSCacheRefusedURLSpendsNoBudget(t *testing.T) {
	ctx := context.Background()
	k1, _ := sandbox.NewKey("ES256", "k1")
	k2, _ := sandbox.NewKey("ES256", "k2")
	s := newJWKSServer(t, k1)
	cctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	// One refetch a second across all URLs, and a URL may refetch at once.
	c := policy.NewJWKSCache(cctx, policy.JWKSCacheOptions{Fetch: s.policy(), RefetchEvery: time.Nanosecond, RefetchBudget: 1})
	if _, err := c.Key(ctx, s.URL, "k1"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		var fe *policy.FetchError
		if _, err := c.Key(ctx, "http://jwks.example/refused", "k"); !errors.As(err, &fe) {
			t.Fatalf("a URL the policy refuses: %v", err)
		}
	}
	_ = s.set.AddKey(k2.Public()) // the TPP rotates
	if _, err := c.Key(ctx, s.URL, "k2"); err != nil {
		t.Fatalf("the rotated key after lookups of a refused URL: %v", err)
	}
}
