package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Bindings keeps which certificate each access token the FAPI edge issued is
// bound to (RFC 8705 §3), on every replica, until the token expires. It is a
// table of its own, apart from Handles: a bank issues far more tokens than it
// has authorization requests in flight, and neither may starve the other.
type Bindings interface {
	// PutBinding stores x5t under key until the given time, replacing an
	// earlier value. ErrBindingsFull when the bound of live rows is reached.
	PutBinding(ctx context.Context, key, x5t string, until time.Time) error
	// Binding is the value under key; ok is false when absent or expired.
	Binding(ctx context.Context, key string) (x5t string, ok bool, err error)
	// DeleteBinding removes key (its token was revoked); absent is no error.
	DeleteBinding(ctx context.Context, key string) error
}

// MaxBindings bounds the live bindings of a SQL store: at 1 h tokens, 5
// million rows are about 1,400 token requests a second sustained, each row
// about 200 bytes with its indexes (1 GB). MaxMemoryBindings bounds the
// memory store, one process's heap (about 250 bytes a binding: 60 MB).
const (
	MaxBindings       = 5_000_000
	MaxMemoryBindings = 250_000
)

// ErrBindingsFull: the bound of live bindings is reached; tokens cannot be
// bound until some expire.
var ErrBindingsFull = errors.New("too many live certificate-bound tokens; try again later")

// bindingsRecount is how often a replica counts the SQL table (and sweeps its
// expired rows) when below the bound, and bindingsRetry how often at most
// when at it: counting millions of rows on every token request would be the
// flood's amplifier.
const (
	bindingsRecount = 10 * time.Second
	bindingsRetry   = time.Second
)

var (
	_ Bindings = (*SQL)(nil)
	_ Bindings = (*Memory)(nil)
)

// bindings is the in-memory table (OBDCR_DSN=memory: one replica).
type bindings struct {
	mu    sync.Mutex
	m     map[string]handle
	max   int // 0: MaxMemoryBindings
	swept time.Time
	now   func() time.Time
}

func (b *bindings) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

func (b *bindings) PutBinding(_ context.Context, key, x5t string, until time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]handle{}
	}
	limit := b.max
	if limit <= 0 {
		limit = MaxMemoryBindings
	}
	if _, replace := b.m[key]; !replace && len(b.m) >= limit {
		// A full scan, at most once a second: at the bound, every token
		// request would otherwise pay for one.
		now := b.clock()
		if now.Sub(b.swept) >= bindingsRetry {
			b.swept = now
			for k, v := range b.m {
				if !now.Before(v.until) {
					delete(b.m, k)
				}
			}
		}
		if len(b.m) >= limit {
			return ErrBindingsFull
		}
	}
	b.m[key] = handle{value: []byte(x5t), until: until}
	return nil
}

func (b *bindings) Binding(_ context.Context, key string) (string, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[key]
	if !ok || !b.clock().Before(v.until) {
		return "", false, nil
	}
	return string(v.value), true, nil
}

func (b *bindings) DeleteBinding(_ context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, key)
	return nil
}

// bindingCount is a SQL store's idea of how many bindings are live: counted
// (after sweeping the expired) every bindingsRecount, plus this replica's
// inserts since. Replicas racing overshoot the bound by at most what the
// others insert between two counts: approximate, never unbounded.
type bindingCount struct {
	n  atomic.Int64
	at atomic.Int64 // unix nanoseconds of the last count
}

// PutBinding upserts the row, counting the table only now and then.
func (s *SQL) PutBinding(ctx context.Context, key, x5t string, until time.Time) error {
	limit := int64(s.maxBindings)
	if limit <= 0 {
		limit = MaxBindings
	}
	now := s.nowFn()
	last := s.bindingCount.at.Load()
	due := now.Sub(time.Unix(0, last)) >= bindingsRecount ||
		(s.bindingCount.n.Load() >= limit && now.Sub(time.Unix(0, last)) >= bindingsRetry)
	if due && s.bindingCount.at.CompareAndSwap(last, now.UnixNano()) {
		if _, err := s.exec(ctx, `DELETE FROM obdcr_bindings WHERE expires_at <= ?`, now.UnixMicro()); err != nil {
			return err
		}
		var n int64
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM obdcr_bindings`).Scan(&n); err != nil {
			return err
		}
		s.bindingCount.n.Store(n)
	}
	if s.bindingCount.n.Load() >= limit {
		return ErrBindingsFull
	}
	if _, err := s.exec(ctx, `INSERT INTO obdcr_bindings (key, x5t, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET x5t = excluded.x5t, expires_at = excluded.expires_at`, key, x5t, until.UnixMicro()); err != nil {
		return err
	}
	s.bindingCount.n.Add(1)
	return nil
}

// Binding reads the row, if it has not expired.
func (s *SQL) Binding(ctx context.Context, key string) (string, bool, error) {
	var x5t string
	err := s.db.QueryRowContext(ctx, s.d.bind(`SELECT x5t FROM obdcr_bindings WHERE key = ? AND expires_at > ?`), key, s.nowFn().UnixMicro()).Scan(&x5t)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return x5t, true, nil
}

// DeleteBinding removes the row, and counts it gone.
func (s *SQL) DeleteBinding(ctx context.Context, key string) error {
	res, err := s.exec(ctx, `DELETE FROM obdcr_bindings WHERE key = ?`, key)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		s.bindingCount.n.Add(-n)
	}
	return nil
}
