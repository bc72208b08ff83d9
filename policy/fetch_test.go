package policy_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/policy"
)

func TestFetchPolicyRefusesWhatItMust(t *testing.T) {
	p := policy.DefaultFetchPolicy()
	cases := []struct{ url, want string }{
		{"http://directory.example/jwks", "https"},
		{"https://127.0.0.1/jwks", "loopback"},
		{"https://[::1]/jwks", "loopback"},
		{"https://10.1.2.3/jwks", "private"},
		{"https://192.168.0.1/jwks", "private"},
		{"https://172.16.0.1/jwks", "private"},
		{"https://169.254.169.254/latest/meta-data", "link-local"},
		{"https://100.64.0.1/jwks", "reserved"},
		{"https://[::a00:1]/jwks", "reserved"},          // ::/96, IPv4-compatible 10.0.0.1
		{"https://[64:ff9b::a00:1]/jwks", "reserved"},   // NAT64 of 10.0.0.1
		{"https://[64:ff9b:1::a00:1]/jwks", "reserved"}, // local-use NAT64
		{"https://[2002:a00:1::1]/jwks", "reserved"},    // 6to4 of 10.0.0.1
		{"https://[2001:0:a00:1::1]/jwks", "reserved"},  // Teredo
		{"https://[fec0::1]/jwks", "reserved"},          // site-local
		{"https://[::ffff:10.0.0.1]/jwks", "private"},   // IPv4-mapped
		{"https://[fd00::1]/jwks", "private"},           // unique local
		{"https://user:pw@directory.example/jwks", "credentials"},
		{"https:///jwks", "host"},
		{"ftp://directory.example/jwks", "https"},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			_, err := p.CheckURL(c.url)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want a refusal mentioning %q, got %v", c.want, err)
			}
		})
	}
	if _, err := p.CheckURL("https://keystore.openbanking.org.uk/keystore/openbanking.jwks"); err != nil {
		t.Fatalf("a public https URL: %v", err)
	}
}

func TestFetchRedirectsAndTimeouts(t *testing.T) {
	t.Run("a redirect to a private address is not followed", func(t *testing.T) {
		c := policy.DefaultFetchPolicy().Client()
		req, _ := http.NewRequest(http.MethodGet, "https://10.0.0.5/jwks", nil)
		err := c.CheckRedirect(req, []*http.Request{{}})
		if !errors.Is(err, policy.ErrForbiddenAddress) {
			t.Fatalf("redirect to 10.0.0.5: %v", err)
		}
		req, _ = http.NewRequest(http.MethodGet, "http://directory.example/jwks", nil)
		if err := c.CheckRedirect(req, []*http.Request{{}}); err == nil {
			t.Fatal("a redirect to http was followed")
		}
	})
	t.Run("the dial refuses an address a name resolves to", func(t *testing.T) {
		// localhost is a name, so CheckURL lets it through; the dialer sees 127.0.0.1.
		_, _, err := policy.DefaultFetchPolicy().Get(context.Background(), policy.DefaultFetchPolicy().Client(), "https://localhost:1/jwks", nil)
		if !errors.Is(err, policy.ErrForbiddenAddress) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a server that hangs times out", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}))
		defer srv.Close()
		p := policy.FetchPolicy{AllowPrivate: true, Timeout: 200 * time.Millisecond, MaxBytes: 1 << 10,
			TLS: srv.Client().Transport.(*http.Transport).TLSClientConfig}
		start := time.Now()
		_, _, err := p.Get(context.Background(), p.Client(), srv.URL, nil)
		if err == nil || time.Since(start) > 2*time.Second {
			t.Fatalf("after %s: %v", time.Since(start), err)
		}
	})
	t.Run("redirect loops stop", func(t *testing.T) {
		var srv *httptest.Server
		srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, srv.URL+"/again", http.StatusFound)
		}))
		defer srv.Close()
		p := policy.FetchPolicy{AllowPrivate: true, Timeout: time.Second, MaxBytes: 1 << 10, TLS: srv.Client().Transport.(*http.Transport).TLSClientConfig}
		if _, _, err := p.Get(context.Background(), p.Client(), srv.URL, nil); err == nil || !strings.Contains(err.Error(), "redirects") {
			t.Fatalf("got %v", err)
		}
	})
}
