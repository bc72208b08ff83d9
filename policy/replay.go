package policy

import (
	"context"
	"sync"
	"time"
)

// ReplayCache remembers request jtis until they expire, so a captured request
// cannot be sent twice (OBIE DCR: jti single use).
type ReplayCache interface {
	// Seen reports whether key is held; it consumes nothing (rule order, dry runs).
	Seen(ctx context.Context, key string) (bool, error)
	// Claim holds key until the given time; false means someone already holds it.
	Claim(ctx context.Context, key string, until time.Time) (bool, error)
}

// MemoryReplay is a ReplayCache for one process (OBDCR_DSN=memory).
type MemoryReplay struct {
	mu    sync.Mutex
	until map[string]time.Time
	now   func() time.Time
	swept time.Time
}

// NewMemoryReplay returns an empty cache; now may be nil for the wall clock.
func NewMemoryReplay(now func() time.Time) *MemoryReplay {
	if now == nil {
		now = time.Now
	}
	return &MemoryReplay{until: map[string]time.Time{}, now: now}
}

func (m *MemoryReplay) Seen(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.until[key]
	return ok && m.now().Before(t), nil
}

func (m *MemoryReplay) Claim(_ context.Context, key string, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	// Sweep at most once a minute, so the map stays as small as the live jtis
	// without a goroutine of its own.
	if now.Sub(m.swept) > time.Minute {
		for k, t := range m.until {
			if !now.Before(t) {
				delete(m.until, k)
			}
		}
		m.swept = now
	}
	if t, ok := m.until[key]; ok && now.Before(t) {
		return false, nil
	}
	m.until[key] = until
	return true, nil
}
