package policy_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
}

func newJWKSServer(t *testing.T, keys ...*sandbox.Key) *jwksServer {
	s := &jwksServer{set: jwk.NewSet()}
	for _, k := range keys {
		_ = s.set.AddKey(k.Public())
	}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
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
