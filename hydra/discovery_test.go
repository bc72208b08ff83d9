package hydra_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obdcr/obdcr/hydra"
)

// Before obdcr has a copy of Hydra's discovery document, every caller (the TPPs'
// discovery requests need no certificate) waits for the same read: a slow or
// failing Hydra is asked once, not once per caller in turn, and a caller that
// gives up is not held by the others' wait.
func TestDiscoveryCallersShareOneRead(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		wantDoc bool
	}{
		{"Hydra answers slowly", http.StatusOK, true},
		{"Hydra fails slowly", http.StatusInternalServerError, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var reads atomic.Int32
			release := make(chan struct{})
			var once sync.Once
			open := func() { once.Do(func() { close(release) }) }
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				reads.Add(1)
				<-release
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(`{"issuer":"https://bank.example","id_token_signing_alg_values_supported":["PS256"]}`))
			}))
			defer srv.Close()
			defer open() // runs before srv.Close, which waits for the handler
			d := hydra.NewDiscovery(srv.URL, &http.Client{Timeout: 10 * time.Second})

			const callers = 20
			var wg sync.WaitGroup
			var got, failed atomic.Int32
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					doc, err := d.Document(context.Background())
					switch {
					case err == nil && doc.String("issuer") == "https://bank.example":
						got.Add(1)
					case errors.Is(err, hydra.ErrNoDiscovery):
						failed.Add(1)
					}
				}()
			}
			for reads.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			// A caller whose request ends stops waiting while the read goes on.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			gaveUp := make(chan error, 1)
			go func() { _, err := d.Document(ctx); gaveUp <- err }()
			select {
			case err := <-gaveUp:
				if !errors.Is(err, hydra.ErrNoDiscovery) || !errors.Is(err, context.Canceled) {
					t.Errorf("a cancelled caller: %v", err)
				}
			case <-time.After(10 * time.Second): // a liveness bound, not a speed one
				t.Errorf("a cancelled caller still waits for the others' read")
			}
			time.Sleep(50 * time.Millisecond) // the callers reach their wait
			open()
			wg.Wait()
			if n := reads.Load(); n != 1 {
				t.Errorf("%d callers made %d reads, want 1", callers, n)
			}
			if c.wantDoc && got.Load() != callers || !c.wantDoc && failed.Load() != callers {
				t.Errorf("%d callers got the document, %d were told there is none", got.Load(), failed.Load())
			}
		})
	}
}

// What Hydra's discovery answer can be, and what obdcr makes of it: a document
// and its ID-token algorithm and clock, or an error that says what was wrong.
// Before a first good read every error is ErrNoDiscovery, whatever the cause:
// the discovery endpoint then answers 503, as the interface says.
func TestDiscoveryAnswers(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		body    string
		date    string
		wantAlg string
		wantErr string // in Document's error; "" when it succeeds
		algErr  string // in IDTokenAlg's error, when the document is fine
		offset  time.Duration
	}{
		{name: "a document", status: 200, body: `{"issuer":"https://bank.example","id_token_signing_alg_values_supported":["PS256","RS256"]}`,
			date: time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat), wantAlg: "PS256", offset: 90 * time.Second},
		{name: "no ID-token algorithm", status: 200, body: `{"issuer":"https://bank.example"}`, algErr: "states no id_token_signing_alg_values_supported"},
		{name: "Hydra failing", status: 503, body: `{"error":"down"}`, wantErr: "HTTP 503"},
		{name: "not JSON", status: 200, body: `<html>proxy error</html>`, wantErr: "not a JSON object"},
		{name: "JSON null", status: 200, body: `null`, wantErr: "not a JSON object"},
		{name: "a JSON array", status: 200, body: `[1,2]`, wantErr: "not a JSON object"},
		{name: "too large", status: 200, body: `{"x":"` + strings.Repeat("a", 300<<10) + `"}`, wantErr: "over 262144 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if c.date != "" {
					w.Header().Set("Date", c.date)
				}
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.body))
			}))
			defer srv.Close()
			d := hydra.NewDiscovery(srv.URL, nil)
			if _, ok := d.ClockOffset(); ok {
				t.Fatal("a clock offset before any read")
			}
			_, err := d.Document(context.Background())
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.wantErr != "" && (!errors.Is(err, hydra.ErrNoDiscovery) || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want ErrNoDiscovery saying %q", err, c.wantErr)
			case c.wantErr != "":
				return
			}
			alg, err := d.IDTokenAlg(context.Background())
			if alg != c.wantAlg || (c.algErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.algErr)) {
				t.Fatalf("IDTokenAlg %q %v, want %q %q", alg, err, c.wantAlg, c.algErr)
			}
			if off, ok := d.ClockOffset(); c.offset != 0 && (!ok || (off-c.offset).Abs() > 2*time.Second) {
				t.Fatalf("clock offset %v %v, want about %v", off, ok, c.offset)
			}
		})
	}
}

// A snapshot's generation changes with each document read, and only then: a
// failed read keeps both the document and its generation.
func TestDiscoverySnapshotGeneration(t *testing.T) {
	var fail atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(`{"issuer":"https://bank.example"}`))
	}))
	defer srv.Close()
	d := hydra.NewDiscovery(srv.URL, nil)
	ctx := context.Background()
	_, first, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, again, _ := d.Snapshot(ctx); again != first {
		t.Fatalf("no read, yet the generation moved from %d to %d", first, again)
	}
	if _, err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	_, second, _ := d.Snapshot(ctx)
	if second == first {
		t.Fatal("a new read kept the generation")
	}
	fail.Store(true)
	if _, err := d.Refresh(ctx); err == nil {
		t.Fatal("a failed read was not an error")
	}
	if doc, third, err := d.Snapshot(ctx); err != nil || third != second || doc.String("issuer") != "https://bank.example" {
		t.Fatalf("after a failed read: %v %d %v, want the last document at %d", doc, third, err, second)
	}
}
