package policy

import (
	"context"
	"crypto/sha256"
	"math"
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

// MemoryReplay is a ReplayCache for one process (OBDCR_DSN=memory). It holds
// each key's SHA-256 and its expiry in Unix nanoseconds: 40 bytes an entry with
// no pointers for the collector to follow, where a string key and a time.Time
// held about 130 in three objects (every registration holds one until its
// request expires).
type MemoryReplay struct {
	mu    sync.Mutex
	until map[replayDigest]int64
	now   func() time.Time
	swept time.Time
}

type replayDigest [sha256.Size]byte

// NewMemoryReplay returns an empty cache; now may be nil for the wall clock.
func NewMemoryReplay(now func() time.Time) *MemoryReplay {
	if now == nil {
		now = time.Now
	}
	return &MemoryReplay{until: map[replayDigest]int64{}, now: now}
}

func (m *MemoryReplay) Seen(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.until[sha256.Sum256([]byte(key))]
	return ok && m.now().UnixNano() < t, nil
}

func (m *MemoryReplay) Claim(_ context.Context, key string, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	// Sweep at most once a minute, so the map stays as small as the live jtis
	// without a goroutine of its own.
	if now.Sub(m.swept) > time.Minute {
		for k, t := range m.until {
			if now.UnixNano() >= t {
				delete(m.until, k)
			}
		}
		m.swept = now
	}
	d := sha256.Sum256([]byte(key))
	if t, ok := m.until[d]; ok && now.UnixNano() < t {
		return false, nil
	}
	m.until[d] = expiryNanos(until)
	return true, nil
}

// lastNano is the latest time Unix nanoseconds hold (April 2262).
var lastNano = time.Unix(0, math.MaxInt64)

// expiryNanos is until in Unix nanoseconds, held at the latest they can say: a
// request may carry an exp centuries away (NumericDate takes up to 1e11 s), and
// one past 2262 must not wrap into the past and free its jti at once.
func expiryNanos(until time.Time) int64 {
	if until.After(lastNano) {
		return math.MaxInt64
	}
	return until.UnixNano()
}
