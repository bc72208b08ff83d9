package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHandles: a value is read by peeking as often as wanted, on either
// replica, until it is taken; taken once, by one of two replicas racing; never
// read after it expired; and a missing key is no error.
func TestHandles(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			a, c := replicas(t, b) // a second replica on the same database
			until := time.Now().Add(time.Minute)
			if err := a.PutHandle(ctx, "h1", []byte(`{"x":1}`), until); err != nil {
				t.Fatal(err)
			}
			for _, s := range []interface {
				PeekHandle(context.Context, string) ([]byte, bool, error)
			}{a, c, a} {
				if v, ok, err := s.PeekHandle(ctx, "h1"); err != nil || !ok || string(v) != `{"x":1}` {
					t.Fatalf("peek (a binding is read on every use, on every replica): %q %v %v", v, ok, err)
				}
			}
			if v, ok, err := c.TakeHandle(ctx, "h1"); err != nil || !ok || string(v) != `{"x":1}` {
				t.Fatalf("take on the other replica: %q %v %v", v, ok, err)
			}
			if _, ok, err := a.TakeHandle(ctx, "h1"); ok || err != nil {
				t.Fatalf("a handle was taken twice (%v, %v)", ok, err)
			}
			if _, ok, err := a.TakeHandle(ctx, "never"); ok || err != nil {
				t.Fatalf("a missing handle: %v %v", ok, err)
			}
			if err := a.PutHandle(ctx, "old", []byte("v"), time.Now().Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := c.PeekHandle(ctx, "old"); ok {
				t.Fatal("an expired handle was read")
			}
			if _, ok, _ := c.TakeHandle(ctx, "old"); ok {
				t.Fatal("an expired handle was taken")
			}
			if err := a.PutHandle(ctx, "race", []byte("v"), until); err != nil {
				t.Fatal(err)
			}
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := 0; i < 20; i++ {
				wg.Add(1)
				s := a
				if i%2 == 1 {
					s = c
				}
				go func() {
					defer wg.Done()
					if _, ok, err := s.TakeHandle(ctx, "race"); ok && err == nil {
						wins.Add(1)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("%d of 20 racing takes won, want 1", wins.Load())
			}
		})
	}
}
