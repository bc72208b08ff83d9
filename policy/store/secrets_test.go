package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/obdcr/obdcr/policy/store"
)

// TestSecrets: a secret is generated once and then read, by every replica of
// one database, including replicas racing to make the first one.
func TestSecrets(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			a, c := replicas(t, b)
			var wg sync.WaitGroup
			got := make([]string, 10)
			for i := range got {
				wg.Add(1)
				s := a
				if i%2 == 1 {
					s = c
				}
				go func() {
					defer wg.Done()
					v, err := s.Secret(ctx, "k", func() ([]byte, error) { return []byte(fmt.Sprintf("made by %d", i)), nil })
					if err != nil {
						t.Error(err)
					}
					got[i] = string(v)
				}()
			}
			wg.Wait()
			for i, v := range got {
				if v == "" || v != got[0] {
					t.Fatalf("replica call %d got %q, call 0 got %q: one secret, two values", i, v, got[0])
				}
			}
			v, err := c.Secret(ctx, "k", func() ([]byte, error) { t.Fatal("generated again"); return nil, nil })
			if err != nil || string(v) != got[0] {
				t.Fatalf("read again: %q %v", v, err)
			}
			if v, _ := a.Secret(ctx, "other", func() ([]byte, error) { return []byte("x"), nil }); string(v) != "x" {
				t.Fatalf("a second name: %q", v)
			}
		})
	}
}

// replicas are two stores on one database (the memory store is one process's:
// the same store twice).
func replicas(t *testing.T, b backend) (store.Store, store.Store) {
	t.Helper()
	dsn := b.dsn(t)
	a := open(t, dsn)
	if b.name == "memory" {
		return a, a
	}
	return a, open(t, dsn)
}
