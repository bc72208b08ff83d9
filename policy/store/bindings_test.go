package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/obdcr/obdcr/policy/store"
)

// TestBindingsAndHandlesApart: token bindings and pushed requests have bounds
// of their own. A full binding table refuses only bindings, with
// ErrBindingsFull, while PAR handles still go in; a full handle table refuses
// only handles while bindings still go in. Expired bindings make room again,
// and a binding is read on either replica, replaced in place and deleted.
func TestBindingsAndHandlesApart(t *testing.T) {
	ctx := context.Background()
	const bound = 5
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			var mu sync.Mutex
			now := time.Now()
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			dsn := b.dsn(t)
			a := open(t, dsn)
			store.SetBounds(a, bound, bound, clock)
			c := a
			if b.name != "memory" {
				c = open(t, dsn) // a second replica on the same database
				store.SetBounds(c, bound, bound, clock)
			}
			until := clock().Add(time.Hour)
			for i := range bound {
				if err := a.PutBinding(ctx, fmt.Sprintf("cnf:%d", i), "x5t-a", until); err != nil {
					t.Fatalf("binding %d: %v", i, err)
				}
			}
			if err := a.PutBinding(ctx, "cnf:over", "x5t-a", until); !errors.Is(err, store.ErrBindingsFull) {
				t.Fatalf("a binding past the bound: %v, want ErrBindingsFull", err)
			}
			for i := range bound {
				if err := a.PutHandle(ctx, fmt.Sprintf("par:%d", i), []byte("v"), until); err != nil {
					t.Fatalf("a PAR handle with the binding table full: %v", err)
				}
			}
			if err := a.PutHandle(ctx, "par:over", []byte("v"), until); !errors.Is(err, store.ErrHandlesFull) {
				t.Fatalf("a handle past the bound: %v, want ErrHandlesFull", err)
			}
			if x5t, ok, err := c.Binding(ctx, "cnf:3"); err != nil || !ok || x5t != "x5t-a" {
				t.Fatalf("a binding on the other replica: %q %v %v", x5t, ok, err)
			}
			// The handles are full; bindings free up as theirs expire.
			if _, ok, err := a.TakeHandle(ctx, "par:0"); !ok || err != nil {
				t.Fatalf("take: %v %v", ok, err)
			}
			if err := a.DeleteBinding(ctx, "cnf:0"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := c.Binding(ctx, "cnf:0"); ok {
				t.Fatal("a deleted binding is still read")
			}
			if err := a.PutBinding(ctx, "cnf:1", "x5t-b", until); err != nil {
				t.Fatalf("replacing a binding: %v", err)
			}
			if x5t, _, _ := c.Binding(ctx, "cnf:1"); x5t != "x5t-b" {
				t.Fatalf("a replaced binding reads %q", x5t)
			}
			advance(2 * time.Hour)
			if _, ok, _ := c.Binding(ctx, "cnf:2"); ok {
				t.Fatal("an expired binding is read")
			}
			fresh := clock().Add(time.Hour)
			for i := range bound {
				if err := c.PutBinding(ctx, fmt.Sprintf("cnf:new-%d", i), "x5t-c", fresh); err != nil {
					t.Fatalf("after expiry, binding %d: %v (expired rows do not make room)", i, err)
				}
			}
			if err := a.PutHandle(ctx, "par:later", []byte("v"), fresh); err != nil {
				t.Fatalf("a PAR handle with the binding table full again: %v", err)
			}
		})
	}
}
