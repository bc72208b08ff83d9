package policy_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obdcr/obdcr/policy"
)

type everyKey struct{}

func TestEvery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		interval  time.Duration
		endFirst  bool          // the context has ended before Every starts
		endAt     int32         // the call that ends the context (0: none)
		endAfter  time.Duration // the context ends this long after the start (0: never)
		wantCalls int32
	}{
		{name: "an ended context: no call at all", interval: time.Millisecond, endFirst: true, wantCalls: 0},
		{name: "repeats until the context ends, then no more", interval: time.Millisecond, endAt: 3, wantCalls: 3},
		{name: "the first call waits one interval", interval: time.Hour, endAfter: 50 * time.Millisecond, wantCalls: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.WithValue(context.Background(), everyKey{}, "caller"))
			defer cancel()
			if tc.endFirst {
				cancel()
			}
			if tc.endAfter > 0 {
				time.AfterFunc(tc.endAfter, cancel)
			}
			var calls atomic.Int32
			done := make(chan struct{})
			go func() {
				defer close(done)
				policy.Every(ctx, tc.interval, func(got context.Context) {
					if got.Value(everyKey{}) != "caller" {
						t.Error("f was not given the caller's context")
					}
					if calls.Add(1) == tc.endAt {
						cancel()
						// Let the next tick arrive too: it must not call f again.
						time.Sleep(5 * tc.interval)
					}
				})
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Every did not return after its context ended")
			}
			if got := calls.Load(); got != tc.wantCalls {
				t.Errorf("f called %d times, want %d", got, tc.wantCalls)
			}
		})
	}
}
