package plugin_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
)

// holdConnections opens n TCP connections to addr from the local address from,
// sends nothing, and reports how many the server kept open a moment later (the
// others it closed at once). It closes them all when the test ends.
func holdConnections(t *testing.T, from, addr string, n int) (held int) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d from %s: %v", len(conns)+1, from, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	var open atomic.Int32
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				open.Add(1) // still open: the server waits for our handshake
			}
		}()
	}
	wg.Wait()
	return int(open.Load())
}

// One address that opens every connection it can holds no more than its cap,
// and a TPP from another address still registers at once. The review's attack:
// 1,024 idle connections from one client locked every TPP out, since the only
// cap was the listener's total.
func TestOneAddressCannotHoldEveryConnection(t *testing.T) {
	cases := []struct {
		name           string
		total, perAddr int
		attackers      int
	}{
		{"the defaults, the review's 1,024 connections", 1024, 64, 1024},
		{"a small listener, three times its total", 8, 4, 24},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := startObdcr(t, func(cfg *serverConfig) { cfg.TPPMaxConns, cfg.TPPConnsPerAddr = c.total, c.perAddr })
			addr := strings.TrimPrefix(o.URL, "https://")
			start := time.Now()
			held := holdConnections(t, "127.0.0.2", addr, c.attackers)
			if held > c.perAddr {
				t.Fatalf("one address holds %d connections, over its cap of %d", held, c.perAddr)
			}
			tpp, client := newTPP(t, sandbox.UK)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			regStart := time.Now()
			res, err := client.Register(ctx, o.URL, request(t, tpp, nil, nil))
			if err != nil {
				t.Fatalf("a TPP from another address could not register while one address held %d connections: %v", held, err)
			}
			if res.Status != http.StatusCreated {
				t.Fatalf("status %d: %s", res.Status, res.Body)
			}
			refused, err := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_tpp_connections_refused_total", nil)
			if err != nil || int(refused) != c.attackers-held {
				t.Errorf("obdcr_tpp_connections_refused_total %v (%v), want %d", refused, err, c.attackers-held)
			}
			t.Logf("one address opened %d connections in %s and holds %d; another TPP registered in %s",
				c.attackers, regStart.Sub(start).Round(time.Millisecond), held, time.Since(regStart).Round(time.Millisecond))
		})
	}
}

// The TPP listener's readiness is anyone's to probe: 2,000 probes reach Hydra
// with at most one check (two admin calls) an interval, where each probe made
// two before.
func TestTPPReadinessProbesDoNotReachHydra(t *testing.T) {
	o := startObdcr(t, noRateLimit)
	hydraCalls := func() float64 {
		n, err := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_hydra_request_duration_seconds", nil)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	client := anonymous()
	probe := func() int {
		res, err := client.Get(o.URL + "/health/ready")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if s := probe(); s != http.StatusOK { // the first probe waits for the first check
		t.Fatalf("first probe: %d", s)
	}
	before, start := hydraCalls(), time.Now()
	const probes = 2000
	for i := range probes {
		if s := probe(); s != http.StatusOK {
			t.Fatalf("probe %d: %d", i, s)
		}
	}
	elapsed := time.Since(start)
	calls := hydraCalls() - before
	// Two calls a check, one check an interval (5 s), and one in flight; a
	// registration-free obdcr makes no other calls in this time.
	if limit := 2 * (float64(elapsed/(5*time.Second)) + 2); calls > limit {
		t.Fatalf("%d probes in %s made %.0f Hydra calls, want at most %.0f", probes, elapsed.Round(time.Millisecond), calls, limit)
	}
	t.Logf("%d TPP-listener readiness probes in %s: %.0f Hydra calls, %.1f per 1,000", probes, elapsed.Round(time.Millisecond), calls, calls*1000/probes)
}
