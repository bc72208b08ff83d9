package au_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/obdcr/obdcr/policy/au"
)

// BenchmarkStatusBookPoll: one poll of a Register listing 20,000 software
// products and 5,000 data recipients (the book's memory is reported too), and
// the clean-up of 100 products that became REMOVED, each as its own figure.
// The fake Register runs in the same process: its JSON encoding is in ns/op.
func BenchmarkStatusBookPoll(b *testing.B) {
	r := newRegister(b)
	for i := range 20_000 {
		r.products[fmt.Sprintf("product-%05d", i)] = "ACTIVE"
	}
	for i := range 5_000 {
		r.entities[fmt.Sprintf("entity-%04d", i)] = "ACTIVE"
	}
	var removed []string
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	book := r.bookWith(b, &removed, au.StatusBookConfig{MinGap: time.Millisecond})
	if err := book.Poll(context.Background()); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	bookMiB := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	b.Run("poll-20000-products", func(b *testing.B) {
		for b.Loop() {
			if err := book.Poll(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(bookMiB, "book-MiB")
	})
	b.Run("clean-up-100-removed", func(b *testing.B) {
		for n := 0; b.Loop(); n++ {
			b.StopTimer()
			r.set(func(r *register) {
				for i := range 100 {
					r.products[fmt.Sprintf("product-%05d", (n*100+i)%20_000)] = "REMOVED"
				}
			})
			removed = removed[:0]
			b.StartTimer()
			if err := book.Poll(context.Background()); err != nil {
				b.Fatal(err)
			}
			if len(removed) != 100 && n*100 < 20_000 {
				b.Fatalf("%d removed, want 100", len(removed))
			}
		}
	})
}
