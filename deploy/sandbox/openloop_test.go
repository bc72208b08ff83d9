package sandbox

import (
	"slices"
	"sync"
	"testing"
)

// alternate gives each side every index once, in rounds that take turns, and
// pools each side's latencies.
func TestAlternateTakesTurns(t *testing.T) {
	cases := []struct{ n, rounds, turns int }{
		{8, 4, 8}, {9, 4, 10}, {3, 4, 6}, {1, 1, 2},
	}
	for _, c := range cases {
		var mu sync.Mutex
		var order []string
		seen := map[string][]int{}
		side := func(name string) func(int) error {
			return func(i int) error {
				mu.Lock()
				defer mu.Unlock()
				if len(order) == 0 || order[len(order)-1] != name {
					order = append(order, name)
				}
				seen[name] = append(seen[name], i)
				return nil
			}
		}
		a, b := alternate(1e6, c.n, c.rounds, side("a"), side("b"))
		if a.Sent != c.n || b.Sent != c.n || a.Errors+b.Errors != 0 {
			t.Fatalf("%+v: sent %d and %d", c, a.Sent, b.Sent)
		}
		for name, idx := range seen {
			slices.Sort(idx)
			for i, v := range idx {
				if v != i {
					t.Fatalf("%+v: side %s got indexes %v", c, name, idx)
				}
			}
		}
		if len(order) != c.turns {
			t.Fatalf("%+v: %d turns (%v), want %d", c, len(order), order, c.turns)
		}
	}
}
