package console

import (
	"container/list"
	"sync"
	"time"
)

// Sign-in failures back off exponentially: the first freeFailures in a row of a
// key (a source address, or a token name) cost nothing, so that a typo and its
// correction at once both go through; after the nth failure the key may try
// again only after backoffBase·2^(n-freeFailures-1), at most backoffCap. A key
// quiet for backoffCap past its wait starts again from nothing, so an admin's
// typos of last week cost nothing.
// Admin tokens have 16+ characters, so guessing is hopeless anyway: the backoff
// keeps a guesser from costing CPU, log lines and audit entries at line rate.
const (
	freeFailures = 3
	backoffBase  = time.Second
	backoffCap   = 5 * time.Minute
	// maxThrottleKeys bounds each table; past it the key used least recently is
	// forgotten. A flood of fresh keys can only forget keys, never add a wait.
	maxThrottleKeys = 10_000
	// auditedPerHour is how many refused sign-ins of one source address an hour
	// are written to the audit; the rest are counted in metrics only.
	auditedPerHour = 10
)

// throttle is a bounded table of keys with failures.
type throttle struct {
	mu    sync.Mutex
	max   int
	keys  map[string]*list.Element // of *failures
	order *list.List               // most recently used first
}

type failures struct {
	key     string
	n       int       // failures in a row
	until   time.Time // no attempt before
	hour    time.Time // start of the audit budget's hour
	audited int       // failures audited in that hour
}

func newThrottle(max int) *throttle {
	return &throttle{max: max, keys: map[string]*list.Element{}, order: list.New()}
}

// wait is how long key must still wait before its token is even compared.
func (t *throttle) wait(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.keys[key]
	if !ok {
		return 0
	}
	return max(el.Value.(*failures).until.Sub(now), 0)
}

// fail records a failure of key and says whether it is within the hour's audit
// budget.
func (t *throttle) fail(key string, now time.Time) (audit bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.keys[key]
	if !ok {
		if t.order.Len() >= t.max {
			oldest := t.order.Back()
			delete(t.keys, oldest.Value.(*failures).key)
			t.order.Remove(oldest)
		}
		el = t.order.PushFront(&failures{key: key})
		t.keys[key] = el
	}
	t.order.MoveToFront(el)
	f := el.Value.(*failures)
	if !f.until.IsZero() && now.Sub(f.until) > backoffCap {
		f.n = 0
	}
	f.n++
	f.until = now.Add(backoff(f.n))
	if now.Sub(f.hour) >= time.Hour {
		f.hour, f.audited = now, 0
	}
	if f.audited >= auditedPerHour {
		return false
	}
	f.audited++
	return true
}

// clear forgets key's failures: its token was right.
func (t *throttle) clear(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.keys[key]; ok {
		delete(t.keys, key)
		t.order.Remove(el)
	}
}

func backoff(n int) time.Duration {
	switch n -= freeFailures; {
	case n <= 0:
		return 0
	case n > 20: // 2^20 s is far past the cap; no shift overflows
		return backoffCap
	}
	return min(backoffBase<<(n-1), backoffCap)
}
