package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// Creates in flight: struck off by their own request, listed until then, and
// each handed to one replica at a time when several claim at once.
func TestCreateLog(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dsn := b.dsn(t)
			a := open(t, dsn)
			replicas := []policy.CreateLog{a, a}
			if b.name != "memory" {
				replicas[1] = open(t, dsn)
			}
			for i := 0; i < 20; i++ {
				if err := a.BeginCreate(ctx, policy.CreateAttempt{ClientID: "c", Nonce: string(rune('a' + i)), SoftwareID: "s"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.EndCreate(ctx, "c", "a"); err != nil {
				t.Fatal(err)
			}
			pending, err := a.PendingCreates(ctx, 100)
			if err != nil || len(pending) != 19 {
				t.Fatalf("pending after one was completed: %d %v", len(pending), err)
			}
			if other, _ := a.OtherCreates(ctx, "c", "b"); !other {
				t.Error("the other attempts of client c were not seen")
			}
			// An attempt its request still holds is a create on its way, not a
			// half-made one, until the request lets go of it.
			held := policy.CreateAttempt{ClientID: "e", Nonce: "held", SoftwareID: "s", HeldUntil: time.Now().Add(time.Hour)}
			if err := a.BeginCreate(ctx, held); err != nil {
				t.Fatal(err)
			}
			if other, _ := a.OtherCreates(ctx, "e", "retry"); other {
				t.Error("an attempt its request still holds was counted as half-made")
			}
			if err := a.ReleaseCreate(ctx, "e", "held"); err != nil {
				t.Fatal(err)
			}
			if other, _ := a.OtherCreates(ctx, "e", "retry"); !other {
				t.Error("an attempt its request let go of was not counted")
			}
			if err := a.EndCreate(ctx, "e", "held"); err != nil {
				t.Fatal(err)
			}
			if other, _ := a.OtherCreates(ctx, "d", "x"); other {
				t.Error("client d has no attempts, yet others were seen")
			}
			if got, _ := a.ClaimCreates(ctx, time.Now().Add(-time.Hour), time.Minute, 100); len(got) != 0 {
				t.Fatalf("%d attempts younger than the cut-off were claimed", len(got))
			}
			// Six claimers on two replicas at once: every attempt goes to exactly one.
			var mu sync.Mutex
			owners := map[int64]int{}
			var wg sync.WaitGroup
			for i := 0; i < 6; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := replicas[i%2].ClaimCreates(ctx, time.Now().Add(time.Second), time.Minute, 7)
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					defer mu.Unlock()
					for _, c := range got {
						owners[c.ID]++
					}
				}()
			}
			wg.Wait()
			if len(owners) != 19 {
				t.Fatalf("%d of 19 attempts claimed", len(owners))
			}
			for id, n := range owners {
				if n != 1 {
					t.Fatalf("attempt %d claimed %d times", id, n)
				}
			}
			if again, _ := a.ClaimCreates(ctx, time.Now().Add(time.Second), time.Minute, 100); len(again) != 0 {
				t.Fatalf("%d attempts claimed again within their lease", len(again))
			}
			for id := range owners {
				if err := a.DropCreate(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			if pending, _ := a.PendingCreates(ctx, 100); len(pending) != 0 {
				t.Fatalf("%d attempts left after every one was dropped", len(pending))
			}
		})
	}
}
