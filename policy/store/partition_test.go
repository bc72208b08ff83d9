package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
	"github.com/obdcr/obdcr/policy/uk"
)

// partitioned is a store cut from its database by the network, which loopback
// cannot do: a call made during the cut waits, and once the cut heals its
// connection answers only at TCP's next retransmission, which backs off (lag);
// a call made after the heal, on a fresh connection, answers at once.
type partitioned struct {
	store.Store
	lag    time.Duration
	mu     sync.Mutex
	healed chan struct{} // nil: not cut
}

func (p *partitioned) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healed = make(chan struct{})
}

func (p *partitioned) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.healed)
	p.healed = nil
}

func (p *partitioned) wait(ctx context.Context) error {
	p.mu.Lock()
	healed := p.healed
	p.mu.Unlock()
	if healed == nil {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-healed:
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(p.lag):
		return nil
	}
}

func (p *partitioned) Version(ctx context.Context) (int64, error) {
	if err := p.wait(ctx); err != nil {
		return 0, err
	}
	return p.Store.Version(ctx)
}

func (p *partitioned) States(ctx context.Context) (map[string]store.StoredState, int64, error) {
	if err := p.wait(ctx); err != nil {
		return nil, 0, err
	}
	return p.Store.States(ctx)
}

// A replica cut from the store while another changes the policy sees the change
// within 5 s of the heal (issue 31: it took up to 16 s, a poll hanging on the
// connection the cut had stalled).
func TestPolicyAfterPartitionHeals(t *testing.T) {
	ctx := context.Background()
	shared := open(t, "memory")
	profiles := []*policy.Profile{uk.New(uk.Config{})}
	cutOff := &partitioned{Store: shared, lag: 16 * time.Second}
	a, err := store.NewSharedState(ctx, cutOff, profiles, []string{"uk"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.NewSharedState(ctx, shared, profiles, []string{"uk"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go a.Run(rctx)
	cutOff.cut()
	time.Sleep(3 * store.PolicyPoll) // polls are under way on the cut connection
	off := false
	if _, err := b.Apply(ctx, "uk", store.Change{Enabled: &off, Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if st, _ := a.State(ctx, "uk"); !st.Enabled {
		t.Fatal("the cut replica saw the change during the cut")
	}
	cutOff.heal()
	healed := time.Now()
	for {
		if st, _ := a.State(ctx, "uk"); !st.Enabled {
			break
		}
		if time.Since(healed) > 5*time.Second {
			t.Fatal("the replica still served the previous policy 5 s after the heal")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("seen %s after the heal", time.Since(healed).Round(time.Millisecond))
}
