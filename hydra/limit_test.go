package hydra_test

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obdcr/obdcr/hydra"
)

// HYDRA_ADMIN_MAX_CONNS: with Hydra holding calls open, no more than the bound
// reach it at once, over HTTP/1.1 and over HTTP/2 (where many calls share one
// connection); the rest wait and then go, none failing. With no bound, all go.
func TestLimitCallsBoundsCallsInFlight(t *testing.T) {
	cases := []struct {
		name     string
		http2    bool
		maxCalls int
		calls    int
		want     int64
	}{
		{"bounded, HTTP/1.1", false, 3, 8, 3},
		{"bounded, HTTP/2", true, 3, 8, 3},
		{"no bound", false, 0, 8, 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			release := make(chan struct{})
			var inHydra, most atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				n := inHydra.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-release
				inHydra.Add(-1)
				_, _ = w.Write([]byte(`{}`))
			}))
			var access hydra.AdminAccess
			if c.http2 {
				srv.EnableHTTP2 = true
				srv.StartTLS()
				pool := x509.NewCertPool()
				pool.AddCert(srv.Certificate())
				access.RootCAs = func() *x509.CertPool { return pool }
			} else {
				srv.Start()
			}
			defer srv.Close()
			client := &http.Client{Transport: hydra.LimitCalls(hydra.NewAdminTransport(access), c.maxCalls, 5*time.Second)}
			errs := make(chan error, c.calls)
			for range c.calls {
				go func() {
					res, err := client.Get(srv.URL)
					if err == nil {
						if c.http2 && res.ProtoMajor != 2 {
							err = errors.New("answered over " + res.Proto + ", want HTTP/2")
						}
						res.Body.Close()
					}
					errs <- err
				}()
			}
			for deadline := time.Now().Add(5 * time.Second); inHydra.Load() < c.want && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // time for a call past the bound to show
			close(release)
			for range c.calls {
				if err := <-errs; err != nil {
					t.Errorf("a call failed rather than waiting: %v", err)
				}
			}
			if got := most.Load(); got != c.want {
				t.Errorf("%d calls reached Hydra at once, want %d", got, c.want)
			}
		})
	}
}

// A call that waits for a place past its context's end was never sent, and
// says so: a create refused so made nothing.
func TestLimitCallsNeverSentSaysSo(t *testing.T) {
	release := make(chan struct{})
	var reached atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		if reached.Add(1) == 1 {
			<-release
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: hydra.LimitCalls(hydra.NewAdminTransport(hydra.AdminAccess{}), 1, 5*time.Second)}
	first := make(chan error, 1)
	go func() { first <- get(context.Background(), client, srv.URL) }()
	for reached.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := get(ctx, client, srv.URL); !errors.Is(err, hydra.ErrNotSent) {
		t.Errorf("a call whose context ended while it waited: %v, want ErrNotSent", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the call that had the place: %v", err)
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("Hydra saw %d calls, want only the first", n)
	}
}

// A call's own time starts when it has its place: one that waited longer than
// that time for a place still completes (with the http.Client's timeout, as
// before, the wait ate it).
func TestLimitCallsWaitIsNotTheCallsTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }))
	defer srv.Close()
	client := &http.Client{Transport: hydra.LimitCalls(hydra.NewAdminTransport(hydra.AdminAccess{}), 1, 300*time.Millisecond)}
	res, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	start := time.Now()
	go func() { waited <- get(context.Background(), client, srv.URL) }()
	time.Sleep(500 * time.Millisecond) // the first call holds its place (its body open) past 300 ms
	res.Body.Close()
	if err := <-waited; err != nil {
		t.Errorf("a call that waited %v for its place: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("the second call ended after %v, before the first gave its place back", d)
	}
}

// get calls u and reads the answer whole.
func get(ctx context.Context, client *http.Client, u string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, err = io.ReadAll(res.Body)
	return err
}
