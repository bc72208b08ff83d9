package plugin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
)

// Hydra going away gives 503 and no client; Hydra back, registrations work
// again without restarting obdcr.
func TestHydraGoesAwayAndComesBack(t *testing.T) {
	h, err := testenv.StartHydra(env.Sandbox.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	o := startObdcr(t, func(c *serverConfig) { c.HydraAdminURL = h.AdminURL })
	ctx := context.Background()
	reg := func() *sandbox.Response {
		tpp, c := newTPP(t, sandbox.UK)
		res, err := c.Register(ctx, o.URL, request(t, tpp, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := reg(); res.Status != http.StatusCreated {
		t.Fatalf("before: %d %s", res.Status, res.Body)
	}
	// A TPP managing its registration while Hydra cannot introspect: told to retry, never that its token is bad.
	mtpp, mc := newTPP(t, sandbox.UK)
	if res, _ := mc.Register(ctx, o.URL, request(t, mtpp, nil, nil)); res.Status != http.StatusCreated {
		t.Fatalf("%d %s", res.Status, res.Body)
	}
	token, tres, err := mc.Token(ctx, h.TokenURL(), clientIDOf(mtpp), "")
	if err != nil {
		t.Fatalf("%v %v", err, tres)
	}
	h.Stop()
	if res, _ := mc.Get(ctx, o.URL, clientIDOf(mtpp), token); res.Status != http.StatusServiceUnavailable || res.JSON()["error"] != "temporarily_unavailable" {
		t.Errorf("GET /register/{id} while Hydra is down: %d %s", res.Status, res.Body)
	}
	res := reg()
	if res.Status != http.StatusServiceUnavailable || res.JSON()["error"] != "temporarily_unavailable" || res.Header.Get("Retry-After") == "" {
		t.Fatalf("Hydra down: %d %s", res.Status, res.Body)
	}
	if ready, _ := http.Get(o.AdminURL + "/health/ready"); ready.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("ready while Hydra is down: %d", ready.StatusCode)
	}
	// The admin listener says what is failing; the public one, only that something is.
	for _, probe := range []struct {
		client *http.Client
		url    string
		detail bool
	}{{http.DefaultClient, o.AdminURL, true}, {anonymous(), o.URL, false}} {
		res, err := probe.client.Get(probe.url + "/health/ready")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		leaks := strings.Contains(string(body), "errors") || strings.Contains(string(body), "127.0.0.1")
		if res.StatusCode != http.StatusServiceUnavailable || leaks != probe.detail {
			t.Errorf("%s/health/ready: %d %s (details wanted: %v)", probe.url, res.StatusCode, body, probe.detail)
		}
	}
	if err := h.Restart(); err != nil {
		t.Fatal(err)
	}
	if res := reg(); res.Status != http.StatusCreated {
		t.Fatalf("Hydra back: %d %s", res.Status, res.Body)
	}
}

// The store down: refuse with 503; an audit entry that was acknowledged is not lost.
func TestStoreGoesAwayAndComesBack(t *testing.T) {
	dsn, pg := testenv.PostgresDatabase(t)
	o := startObdcr(t, func(c *serverConfig) { c.DSN = dsn })
	ctx := context.Background()
	first, c1 := newTPP(t, sandbox.UK)
	if res, _ := c1.Register(ctx, o.URL, request(t, first, nil, nil)); res.Status != http.StatusCreated {
		t.Fatalf("%d %s", res.Status, res.Body)
	}
	managed := registerTPP(t, o, sandbox.UK)
	// A console session, signed in while the store answers.
	signIn, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).
		PostForm(o.AdminURL+"/console/login", url.Values{"token": {testenv.AdminToken}})
	if err != nil || signIn.StatusCode != http.StatusSeeOther {
		t.Fatalf("console sign-in: %v %v", err, signIn)
	}
	consolePage := func() int {
		req, _ := http.NewRequest(http.MethodGet, o.AdminURL+"/console/profiles", nil)
		req.AddCookie(signIn.Cookies()[0])
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if err := pg.Pause(); err != nil {
		t.Fatal(err)
	}
	// The console cannot tell whether the session was signed out: 503, not a page.
	if s := consolePage(); s != http.StatusServiceUnavailable {
		t.Errorf("a console page while the store is down: %d", s)
	}
	second, c2 := newTPP(t, sandbox.UK)
	res, _ := c2.Register(ctx, o.URL, request(t, second, nil, nil))
	if res.Status != http.StatusServiceUnavailable {
		t.Fatalf("store down: %d %s", res.Status, res.Body)
	}
	if _, err := hydraAdmin(t).Get(ctx, clientIDOf(second)); err == nil {
		t.Fatal("a client was created while the store was down")
	}
	// A read is counted, not audited: it needs only Hydra. A DELETE cannot be
	// audited: 503, and it deletes nothing.
	if res, _ := managed.client.Get(ctx, o.URL, managed.clientID, managed.token); res.Status != http.StatusOK {
		t.Errorf("GET while the store is down: %d %s", res.Status, res.Body)
	}
	if res, _ := managed.client.Delete(ctx, o.URL, managed.clientID, managed.token); res.Status != http.StatusServiceUnavailable {
		t.Errorf("DELETE while the store is down: %d %s", res.Status, res.Body)
	}
	if _, err := hydraAdmin(t).Get(ctx, managed.clientID); err != nil {
		t.Errorf("the client of a DELETE that could not be audited: %v", err)
	}
	if ready, _ := http.Get(o.AdminURL + "/health/ready"); ready.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("ready while the store is down: %d", ready.StatusCode)
	}
	if err := pg.Resume(); err != nil {
		t.Fatal(err)
	}
	if res, _ := c2.Register(ctx, o.URL, request(t, second, nil, nil)); res.Status != http.StatusCreated {
		t.Fatalf("store back: %d %s", res.Status, res.Body)
	}
	if s := consolePage(); s != http.StatusOK {
		t.Errorf("the console session once the store is back: %d", s)
	}
	if res, _ := managed.client.Get(ctx, o.URL, managed.clientID, managed.token); res.Status != http.StatusOK {
		t.Errorf("GET once the store is back: %d %s", res.Status, res.Body)
	}
	_, body := adminCall(t, o, http.MethodGet, "/admin/audit?kind=registration&software_id="+first.SoftwareID, "")
	var entries []map[string]any
	_ = json.Unmarshal(body, &entries)
	if len(entries) != 1 || entries[0]["outcome"] != "approved" {
		t.Fatalf("the acknowledged audit entry of the first registration: %s", body)
	}
}

func TestConcurrentRegistrations(t *testing.T) {
	o := startObdcr(t, nil)
	ctx := context.Background()
	t.Run("50 of one software_id give one client", func(t *testing.T) {
		tpp, c := newTPP(t, sandbox.UK)
		jwts := make([]string, 50)
		for i := range jwts {
			jwts[i] = request(t, tpp, nil, nil)
		}
		statuses := parallel(t, len(jwts), func(i int) int {
			res, err := c.Register(ctx, o.URL, jwts[i])
			if err != nil {
				t.Error(err)
				return 0
			}
			return res.Status
		})
		if statuses[201] != 1 || statuses[400] != 49 {
			t.Fatalf("statuses %v, want one 201 and 49 400", statuses)
		}
	})
	t.Run("50 distinct all succeed", func(t *testing.T) {
		type tc struct {
			c   *sandbox.Client
			jwt string
		}
		all := make([]tc, 50)
		for i := range all {
			tpp, c := newTPP(t, sandbox.UK)
			all[i] = tc{c, request(t, tpp, nil, nil)}
		}
		statuses := parallel(t, len(all), func(i int) int {
			res, err := all[i].c.Register(ctx, o.URL, all[i].jwt)
			if err != nil {
				t.Error(err)
				return 0
			}
			return res.Status
		})
		if statuses[201] != 50 {
			t.Fatalf("statuses %v, want 50 201", statuses)
		}
	})
}

// parallel runs f(0..n-1) at once and counts the statuses.
func parallel(t *testing.T, n int, f func(i int) int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := f(i)
			mu.Lock()
			counts[s]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return counts
}

func clientIDOf(tpp *sandbox.TPP) string { return clientIDFor(tpp.Profile, tpp.SoftwareID) }
