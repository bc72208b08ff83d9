package hydra_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
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
