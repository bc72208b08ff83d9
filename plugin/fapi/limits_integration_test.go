package fapi_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
)

// fromAddr is an HTTP client whose connections come from the loopback address
// local (127.0.0.0/8 is all loopback on Linux), so that one test is several
// source addresses.
func fromAddr(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: tlsRoots(), DisableKeepAlives: true}}
}

// TestEdgeLimits: the edge listener has the TPP listener's protections. One
// address holding its connection cap has its next connection closed before
// TLS, and one address past its rate gets 429 with Retry-After on every path,
// the proxied Hydra pages too; meanwhile a browser from another address
// completes an authorization request through the edge.
func TestEdgeLimits(t *testing.T) {
	const perAddr = 4
	o := startEdge(t, func(e map[string]string) {
		e["OBDCR_EDGE_MAX_CONNS_PER_ADDR"] = "4"
		e["OBDCR_EDGE_RATE_LIMIT"] = "5/s"
	})
	doc := readDoc(t)
	host := strings.TrimPrefix(doc.Issuer, "https://")

	// 127.0.0.2 holds its cap with connections that never start TLS.
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	for i := 0; i < perAddr; i++ {
		c, err := d.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	time.Sleep(200 * time.Millisecond) // the edge accepts them
	over, err := tls.DialWithDialer(d, "tcp", host, tlsRoots())
	if err == nil {
		over.Close()
		t.Fatalf("connection %d from one address completed TLS; the cap is %d", perAddr+1, perAddr)
	}

	// 127.0.0.3 runs past its rate, on a proxied Hydra path and on the JWKS.
	flood := fromAddr("127.0.0.3")
	for _, path := range []string{"/oauth2/fallbacks/error", "/.well-known/jwks.json"} {
		limited := false
		for i := 0; i < 40 && !limited; i++ {
			res, err := flood.Get(doc.Issuer + path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusTooManyRequests {
				limited = true
				if res.Header.Get("Retry-After") == "" {
					t.Errorf("429 without Retry-After on %s", path)
				}
			}
		}
		if !limited {
			t.Errorf("40 requests at once from one address to %s: none refused at 5/s (burst 10)", path)
		}
	}

	// Another browser (127.0.0.1) completes a flow while both are held.
	tpp, c, clientID := register(t, o, sandbox.UK)
	handshakes := func() float64 {
		n, err := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_edge_tls_handshakes_total", nil)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := handshakes()
	a, err := c.Authorize(context.Background(), sandbox.AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: clientID,
		RedirectURI: tpp.RedirectURIs[0], ResponseType: "code id_token", Scope: "openid accounts"}, env.Sandbox.PKI().Pool())
	if err != nil || a.Error != "" || a.Code == "" {
		t.Fatalf("another browser's authorization through the edge: %v %+v", err, a)
	}
	// Its four visits to the edge (authorize, back from login, back from
	// consent, the callback) share one connection, as a browser's do.
	if n := handshakes() - before; n != 1 {
		t.Errorf("a browser's whole flow cost the edge %v TLS handshakes; want 1", n)
	}
	res, err := http.Get(o.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "obdcr_edge_connections_refused_total 1") {
		t.Errorf("obdcr_edge_connections_refused_total is not 1 after one refused connection")
	}
}
