package au_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/obdcr/obdcr/policy/au"
)

// lookups records what a book reports of its lookups.
type lookups struct {
	mu     sync.Mutex
	counts map[string]int
}

func (l *lookups) record(result string, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	l.counts[result]++
}

func (l *lookups) count(result string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[result]
}

func TestStatusLookup(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		// before is the Register when the book first polls; after, when the lookup is made.
		before, after func(r *register)
		product       string
		entity        string
		want          au.Standing
		unavailable   bool
		polls         int // product list requests made by the lookup itself
	}{
		{name: "known ACTIVE answers at once",
			before:  func(r *register) { r.products["p"], r.entities["e"] = "ACTIVE", "ACTIVE" },
			after:   func(r *register) { r.products["p"] = "INACTIVE" },
			product: "p", entity: "e", want: au.Standing{Product: "ACTIVE", Entity: "ACTIVE"}, polls: 0},
		{name: "known INACTIVE answers at once, without waiting",
			before:  func(r *register) { r.products["p"], r.entities["e"] = "INACTIVE", "ACTIVE" },
			product: "p", entity: "e", want: au.Standing{Product: "INACTIVE", Entity: "ACTIVE"}, polls: 0},
		{name: "accredited since the last poll: found by a fresh poll",
			after:   func(r *register) { r.products["p"], r.entities["e"] = "ACTIVE", "ACTIVE" },
			product: "p", entity: "e", want: au.Standing{Product: "ACTIVE", Entity: "ACTIVE"}, polls: 1},
		{name: "not listed: not known after one fresh poll",
			before:  func(r *register) { r.entities["e"] = "ACTIVE" },
			product: "p", entity: "e", want: au.Standing{Entity: "ACTIVE"}, polls: 1},
		{name: "data recipient new since the last poll: a fresh poll too",
			before:  func(r *register) { r.products["p"] = "ACTIVE" },
			after:   func(r *register) { r.entities["e"] = "ACTIVE" },
			product: "p", entity: "e", want: au.Standing{Product: "ACTIVE", Entity: "ACTIVE"}, polls: 1},
		{name: "data recipient not listed: its status stays empty",
			before:  func(r *register) { r.products["p"] = "ACTIVE" },
			product: "p", entity: "e", want: au.Standing{Product: "ACTIVE"}, polls: 1},
		{name: "Register down, product unknown: unavailable",
			after:   func(r *register) { r.down = true },
			product: "p", entity: "e", unavailable: true, polls: 1},
		{name: "Register down, product known: its last status stands",
			before:  func(r *register) { r.products["p"], r.entities["e"] = "ACTIVE", "ACTIVE" },
			after:   func(r *register) { r.down = true },
			product: "p", entity: "e", want: au.Standing{Product: "ACTIVE", Entity: "ACTIVE"}, polls: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := newRegister(t)
			var removed []string
			var seen lookups
			b := reg.bookWith(t, &removed, au.StatusBookConfig{MinGap: time.Millisecond, Wait: 5 * time.Second, OnLookup: seen.record})
			if c.before != nil {
				reg.set(c.before)
			}
			if err := b.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			if c.after != nil {
				reg.set(c.after)
			}
			polls := reg.pollCount()
			got, err := b.Lookup(ctx, c.product, c.entity)
			if c.unavailable {
				if !errors.Is(err, au.ErrRegisterUnavailable) || seen.count(au.LookupUnavailable) != 1 {
					t.Fatalf("want unavailable, got %+v %v", got, err)
				}
			} else if err != nil || got != c.want {
				t.Fatalf("got %+v %v, want %+v", got, err, c.want)
			}
			if n := reg.pollCount() - polls; n != c.polls {
				t.Errorf("the lookup made %d polls, want %d", n, c.polls)
			}
			if len(removed) != 0 {
				t.Errorf("a lookup removed %v", removed)
			}
		})
	}
}

// Many new products at once share a few polls; none is refused for it.
func TestStatusLookupsShareFreshPolls(t *testing.T) {
	reg := newRegister(t)
	var removed []string
	var seen lookups
	b := reg.bookWith(t, &removed, au.StatusBookConfig{MinGap: 50 * time.Millisecond, Wait: 10 * time.Second, OnLookup: seen.record})
	if err := b.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	const goroutines, products = 100, 100
	reg.set(func(r *register) {
		for i := range products {
			r.products[fmt.Sprintf("p%d", i)], r.entities[fmt.Sprintf("e%d", i)] = "ACTIVE", "ACTIVE"
		}
	})
	before := reg.pollCount()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*products/10)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range products / 10 {
				n := (g*7 + i) % products
				s, err := b.Lookup(context.Background(), fmt.Sprintf("p%d", n), fmt.Sprintf("e%d", n))
				if err != nil || s.Product != "ACTIVE" || s.Entity != "ACTIVE" {
					errs <- fmt.Errorf("p%d: %+v %v", n, s, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every lookup that found nothing known waited for a poll that started after
	// it: at most two rounds (one already asking when it came, and the next).
	if n := reg.pollCount() - before; n < 1 || n > 2 {
		t.Errorf("%d lookups made %d polls; want 1 or 2", goroutines*products/10, n)
	}
	if seen.count(au.LookupFound) != goroutines*products/10 {
		t.Errorf("found %d of %d", seen.count(au.LookupFound), goroutines*products/10)
	}
}

// A lookup made while a poll is asking does not take that poll's answer, which
// may predate its product: it waits for the next.
func TestStatusLookupWaitsForTheNextPoll(t *testing.T) {
	reg := newRegister(t)
	var removed []string
	b := reg.bookWith(t, &removed, au.StatusBookConfig{MinGap: time.Millisecond, Wait: 10 * time.Second})
	if err := b.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	reg.set(func(r *register) { r.hold = hold })
	// The first lookup starts a poll, which the Register holds.
	first := make(chan au.Standing, 1)
	go func() {
		s, _ := b.Lookup(context.Background(), "old", "")
		first <- s
	}()
	waitFor(t, func() bool { return reg.pollCount() == 2 })
	// Products listed once that poll is asking arrive now, with the lookups of them.
	reg.set(func(r *register) {
		for i := range 10 {
			r.products[fmt.Sprintf("late%d", i)] = "ACTIVE"
		}
	})
	var wg sync.WaitGroup
	late := make(chan au.Standing, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := b.Lookup(context.Background(), fmt.Sprintf("late%d", i), "")
			if err != nil {
				t.Error(err)
			}
			late <- s
		}()
	}
	// The held poll answers with the list as it is now; it is the late lookups'
	// second poll (after the held one) that they must be answered from.
	time.Sleep(50 * time.Millisecond) // let the lookups queue behind the held poll
	reg.set(func(r *register) { r.hold = nil })
	close(hold)
	wg.Wait()
	close(late)
	for s := range late {
		if s.Product != "ACTIVE" {
			t.Errorf("a late lookup was answered %+v", s)
		}
	}
	if s := <-first; s.Product != "" {
		t.Errorf("first lookup %+v", s)
	}
	// The first, the held one, and at least one after it (a loaded machine may
	// start a lookup late enough to need a fourth).
	if n := reg.pollCount(); n < 3 || n > 4 {
		t.Errorf("%d polls; want 3 (the first, the held one, the one after it)", n)
	}
}

// A lookup that cannot get a fresh poll in time is unavailable, not refused.
func TestStatusLookupWaitIsBounded(t *testing.T) {
	reg := newRegister(t)
	var removed []string
	b := reg.bookWith(t, &removed, au.StatusBookConfig{MinGap: time.Millisecond, Wait: 200 * time.Millisecond})
	if err := b.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	reg.set(func(r *register) { r.hold = hold })
	defer close(hold)
	_, err := b.Lookup(context.Background(), "new", "")
	if !errors.Is(err, au.ErrRegisterUnavailable) {
		t.Fatalf("want ErrRegisterUnavailable, got %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A Register listing 20,000 products (1.4 MB) is read whole: the bound that
// suits a JWKS (64 KiB) would refuse every poll past about 900 products.
func TestStatusBookLargeRegister(t *testing.T) {
	reg := newRegister(t)
	reg.set(func(r *register) {
		for i := range 20_000 {
			r.products[fmt.Sprintf("product-%05d", i)] = "ACTIVE"
		}
	})
	var removed []string
	b := reg.book(t, &removed)
	if err := b.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s, ok := b.Known("product-19999", ""); !ok || s.Product != "ACTIVE" {
		t.Fatalf("the last of 20,000 products: %+v %v", s, ok)
	}
}

// A poll is nobody's request, but it is the server's: once Run's context ends
// (obdcr is stopping), a poll in flight ends too and removes nothing, even if
// the Register then answers that a product is REMOVED.
func TestStatusPollEndsWithTheServer(t *testing.T) {
	reg := newRegister(t)
	reg.products["p1"] = "ACTIVE"
	var removed []string
	b := reg.bookWith(t, &removed, au.StatusBookConfig{MinGap: time.Millisecond, Wait: 10 * time.Second})
	ctx, stop := context.WithCancel(context.Background())
	go b.Run(ctx)
	waitFor(t, func() bool { return !b.LastPoll().IsZero() })

	hold := make(chan struct{})
	reg.set(func(r *register) { r.hold, r.products["p1"] = hold, "REMOVED" })
	asked := make(chan error, 1)
	go func() {
		_, err := b.Lookup(context.Background(), "new", "") // starts a poll the Register holds
		asked <- err
	}()
	waitFor(t, func() bool { return reg.pollCount() == 2 })
	stop()
	reg.set(func(r *register) { r.hold = nil })
	close(hold)
	if err := <-asked; !errors.Is(err, au.ErrRegisterUnavailable) {
		t.Fatalf("the lookup waiting on the stopped poll: %v", err)
	}
	// The lookup returned once the poll had ended: removed is read after it.
	if len(removed) != 0 || b.Product("p1") != "ACTIVE" {
		t.Fatalf("a stopped server's poll went on: removed %v, p1 %s", removed, b.Product("p1"))
	}
}
