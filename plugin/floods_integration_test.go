package plugin_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/plugin"
)

// anonymous is a TLS client with no certificate: anyone on the network.
func anonymous() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16,
		TLSClientConfig: &tls.Config{RootCAs: env.Sandbox.PKI().Pool()}}}
}

// seriesCount counts the series of a metric family on obdcr's /metrics.
func seriesCount(t *testing.T, adminURL, family string) int {
	t.Helper()
	n, err := sandbox.MetricSeries(adminURL+"/metrics", family)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func auditCount(t *testing.T, adminURL string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, adminURL+"/admin/audit?limit=1000", nil)
	req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var entries []json.RawMessage
	if err := json.NewDecoder(res.Body).Decode(&entries); err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func noRateLimit(c *serverConfig) { c.TPPRateLimit = plugin.Rate{} }

// Any method token a caller sends maps to a closed label set: 10,000 random
// methods add no series.
func TestFloodOfMethodsMintsNoSeries(t *testing.T) {
	o := startObdcr(t, noRateLimit)
	client := anonymous()
	send := func(method string) {
		req, _ := http.NewRequest(method, o.URL+"/register", nil)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	send("WARMUP")                                                    // the one series every odd method shares
	seriesCount(t, o.AdminURL, "obdcr_http_request_duration_seconds") // and the scrape's own
	before := seriesCount(t, o.AdminURL, "obdcr_http_request_duration_seconds")
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 10_000 / 8 {
				m := make([]byte, 8+r.IntN(56))
				for i := range m {
					m[i] = byte('A' + r.IntN(26))
				}
				send(string(m))
			}
		}()
	}
	wg.Wait()
	if after := seriesCount(t, o.AdminURL, "obdcr_http_request_duration_seconds"); after != before {
		t.Fatalf("10,000 random methods took the request series from %d to %d", before, after)
	}
	// and a method past the header limit is refused before any handler
	req, _ := http.NewRequest(strings.Repeat("X", 64<<10), o.URL+"/register", nil)
	if res, err := client.Do(req); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a 64 KiB method: %d", res.StatusCode)
		}
	}
}

// Management calls without a certificate are counted, never audited, and their
// log lines stay short however long the path.
func TestManagementFloodWithoutCertificate(t *testing.T) {
	var logs syncBuffer
	cfg := env.Config()
	noRateLimit(&cfg)
	o, err := env.StartObdcrLogging(cfg, &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()
	client := anonymous()
	audited := auditCount(t, o.AdminURL)
	logged := strings.Count(logs.String(), "\n")
	start := time.Now()
	long := strings.Repeat("A", 15<<10) // twice this is under the 32 KiB header limit: the handler sees it
	for i := range 1000 {
		req, _ := http.NewRequest([]string{http.MethodGet, http.MethodPut, http.MethodDelete}[i%3], o.URL+"/register/"+long+fmt.Sprint(i), nil)
		req.Header.Set("Authorization", "Bearer "+long)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
	}
	// 1 MiB paths do not reach a handler at all.
	req, _ := http.NewRequest(http.MethodGet, o.URL+"/register/"+strings.Repeat("B", 1<<20), nil)
	if res, err := client.Do(req); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a 1 MiB path: %d", res.StatusCode)
		}
	}
	if n := auditCount(t, o.AdminURL); n != audited {
		t.Errorf("the audit went from %d to %d entries", audited, n)
	}
	// A burst of 20 lines, then 5 a second; one of them counts the rest.
	lines := strings.Count(logs.String(), "\n") - logged
	if limit := 20 + 5*int(time.Since(start).Seconds()+1) + 2; lines > limit {
		t.Errorf("1,000 unproven requests wrote %d log lines; want at most %d", lines, limit)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if len(line) > 2048 {
			t.Errorf("a log line of %d bytes", len(line))
			break
		}
	}
	if !strings.Contains(logs.String(), "unproven_failures_not_logged") {
		t.Errorf("no line says how many were held back")
	}
	refused, _ := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_management_total", map[string]string{"outcome": "refused"})
	if refused != 1000 {
		t.Errorf("obdcr_management_total{outcome=refused} = %v; want 1000", refused)
	}
}

// A TPP past its rate gets 429 with Retry-After; other TPPs are not held back.
func TestTPPRateLimit(t *testing.T) {
	o := startObdcr(t, func(c *serverConfig) { c.TPPRateLimit = plugin.Rate{Limit: 5, Burst: 10} })
	ctx := context.Background()
	_, greedy := newTPP(t, sandbox.UK)
	_, other := newTPP(t, sandbox.UK)
	limited := 0
	start := time.Now()
	for range 30 {
		res, err := greedy.Get(ctx, o.URL, "00000000-0000-0000-0000-000000000000", "token")
		if err != nil {
			t.Fatal(err)
		}
		if res.Status == http.StatusTooManyRequests {
			limited++
			if res.Header.Get("Retry-After") == "" || res.JSON()["error"] != "rate_limited" {
				t.Fatalf("429 without Retry-After: %v %s", res.Header, res.Body)
			}
		}
	}
	// A burst of 10, then 5 a second: whatever the machine's speed, the rest are limited.
	if allowed := 10 + int(5*time.Since(start).Seconds()) + 1; limited < 30-allowed {
		t.Errorf("%d of 30 requests limited at 5/s (burst 10) in %s; want at least %d", limited, time.Since(start), 30-allowed)
	}
	if res, _ := other.Get(ctx, o.URL, "00000000-0000-0000-0000-000000000000", "token"); res.Status == http.StatusTooManyRequests {
		t.Errorf("another TPP was limited by the first one's requests")
	}
	// without a certificate, by source address
	client := anonymous()
	limited = 0
	start = time.Now()
	for range 30 {
		res, err := client.Get(o.URL + "/register/x")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if allowed := 10 + int(5*time.Since(start).Seconds()) + 1; limited < 30-allowed {
		t.Errorf("%d of 30 anonymous requests limited; want at least %d", limited, 30-allowed)
	}
	// The discovery document is never limited; probes from this address are, like
	// any request without a certificate (the kubelet probes the admin listener),
	// and the admin listener's probe is not.
	for range 30 {
		res, err := client.Get(o.URL + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("discovery: %d", res.StatusCode)
		}
	}
	for _, p := range []string{"/health/alive", "/health/ready"} {
		limited := 0
		for range 10 {
			res, err := client.Get(o.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode == http.StatusTooManyRequests {
				limited++
			}
		}
		if limited < 5 {
			t.Errorf("%s from an address over its limit: %d of 10 limited, want most", p, limited)
		}
		if res, err := http.Get(o.AdminURL + p); err != nil || res.StatusCode != http.StatusOK {
			t.Errorf("the admin listener's %s: %v %v", p, err, res)
		}
	}
}
