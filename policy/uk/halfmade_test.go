package uk_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// A create whose answer was lost: the TPP hears that the outcome is unknown and
// the compensation window, never that nothing was registered. A client that
// reaches Hydra afterwards (the create arriving late, after the TPP's retry was
// deleted) is removed by the reconciler; a later request's client is not.
func TestHalfMadeRegistrationIsRemoved(t *testing.T) {
	ctx := context.Background()
	clock := time.Now()
	now := func() time.Time { return clock }
	cases := []struct {
		name     string
		fail     error
		unknown  bool // the answer must say the outcome is unknown
		late     bool // the create reaches Hydra after the answer
		retry    bool // the TPP's retry is registered meanwhile
		wantLeft int
	}{
		{name: "timeout, the create arrives late", fail: &hydra.UnavailableError{Timeout: true, Err: errors.New("timeout")}, unknown: true, late: true},
		{name: "reset after send, the retry registers meanwhile", fail: &hydra.UnavailableError{Err: errors.New("connection reset by peer")}, unknown: true, late: true, retry: true, wantLeft: 1},
		{name: "Hydra refuses: nothing made", fail: &hydra.RejectedError{Message: "bad uri"}},
		// HYDRA_ADMIN_MAX_CONNS: the create waited for a place until its time ran
		// out, as classify sees it through the http.Client: it never left obdcr.
		{name: "never sent, no place to Hydra in time", fail: &hydra.UnavailableError{Timeout: true,
			Err: &url.Error{Op: "Post", URL: "http://hydra/admin/clients", Err: fmt.Errorf("%w: all 32 places taken: %w", hydra.ErrNotSent, context.DeadlineExceeded)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			creates := store.NewMemoryWithClock(now)
			f.Registrar.Creates, f.Registrar.Now = creates, now
			f.Hydra.FailCreate, f.Hydra.FailBefore = c.fail, true
			req := f.Request(t, nil, nil)
			_, _, err := f.Registrar.Register(ctx, policy.Submission{JWT: req, Certificate: f.Cert})
			var down *policy.Unavailable
			isUnknown := errors.As(err, &down) && strings.Contains(down.Detail, "not known") && strings.Contains(down.Detail, "60 s")
			if isUnknown != c.unknown {
				t.Fatalf("outcome unknown said: %v, want %v (%v)", isUnknown, c.unknown, err)
			}
			f.Hydra.FailCreate = nil
			id := policy.ClientIDFor("uk", f.TPP.SoftwareID)
			if c.late {
				// The lost create reaches Hydra now, carrying its request's jti.
				f.Hydra.Clients[id] = hydra.Client{ID: id, Metadata: []byte(`{"obdcr":1,"request_jti":"` + jtiOf(t, string(req)) + `"}`)}
			}
			if c.retry {
				delete(f.Hydra.Clients, id) // the retry found it removed ...
				reg, err := f.Register(f.Request(t, nil, nil))
				if err != nil {
					t.Fatal(err)
				}
				// ... and was completed: audited, then marked complete.
				if err := f.Registrar.Complete(ctx, reg); err != nil {
					t.Fatal(err)
				}
			}
			pending, _ := creates.PendingCreates(ctx, 10)
			if c.unknown != (len(pending) > 0) {
				t.Fatalf("%d attempts open after the answer", len(pending))
			}
			clock = clock.Add(20 * time.Second)
			if _, err := f.Registrar.ReconcileCreates(ctx); err != nil {
				t.Fatal(err)
			}
			if f.Hydra.Len() != c.wantLeft {
				t.Fatalf("%d clients at Hydra after the reconciler, want %d", f.Hydra.Len(), c.wantLeft)
			}
			clock = clock.Add(policy.CompensationWindow)
			if _, err := f.Registrar.ReconcileCreates(ctx); err != nil {
				t.Fatal(err)
			}
			if pending, _ := creates.PendingCreates(ctx, 10); len(pending) != 0 {
				t.Fatalf("%d attempts left after the compensation window", len(pending))
			}
		})
	}
}

func jtiOf(t *testing.T, req string) string {
	t.Helper()
	j, err := policy.ParseJWS([]byte(req))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := policy.ParseClaims(j.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return claims.String("jti")
}
