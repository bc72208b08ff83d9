package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"
)

// Handles keeps short-lived, single-use values that every replica must see: the
// FAPI edge's pushed authorization requests and its authorization handles. A
// value is taken at most once, on whichever replica asks first. Token bindings
// are not here but in Bindings, so that neither can fill the other's table.
type Handles interface {
	// PutHandle stores value under key until the given time. ErrHandlesFull
	// when the table holds MaxHandles live values.
	PutHandle(ctx context.Context, key string, value []byte, until time.Time) error
	// TakeHandle removes and returns the value; ok is false when it is absent,
	// already taken or expired.
	TakeHandle(ctx context.Context, key string) (value []byte, ok bool, err error)
	// PeekHandle returns the value and leaves it.
	PeekHandle(ctx context.Context, key string) (value []byte, ok bool, err error)
}

// MaxHandles bounds the live handles of one store. Each is made for a request
// object a registered client signed (pushed with client authentication, or
// sent by value through a browser) or a code Hydra issued, and lives minutes,
// so a full table means a flood, which is refused rather than stored.
const MaxHandles = 100_000

// ErrHandlesFull: MaxHandles live values are held; try again later.
var ErrHandlesFull = errors.New("too many pending authorization requests; try again later")

var (
	_ Handles = (*SQL)(nil)
	_ Handles = (*Memory)(nil)
)

// handles is the in-memory table (OBDCR_DSN=memory: one replica).
type handles struct {
	mu  sync.Mutex
	m   map[string]handle
	max int // 0: MaxHandles
	now func() time.Time
}

// handleLimit is max, or MaxHandles when unset.
func handleLimit(max int) int {
	if max > 0 {
		return max
	}
	return MaxHandles
}

type handle struct {
	value []byte
	until time.Time
}

func (h *handles) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}

func (h *handles) PutHandle(_ context.Context, key string, value []byte, until time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]handle{}
	}
	if len(h.m) >= handleLimit(h.max) {
		now := h.clock()
		for k, v := range h.m {
			if !now.Before(v.until) {
				delete(h.m, k)
			}
		}
		if len(h.m) >= handleLimit(h.max) {
			return ErrHandlesFull
		}
	}
	h.m[key] = handle{value: append([]byte(nil), value...), until: until}
	return nil
}

func (h *handles) TakeHandle(_ context.Context, key string) ([]byte, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[key]
	if !ok {
		return nil, false, nil
	}
	delete(h.m, key)
	if !h.clock().Before(v.until) {
		return nil, false, nil
	}
	return v.value, true, nil
}

func (h *handles) PeekHandle(_ context.Context, key string) ([]byte, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[key]
	if !ok || !h.clock().Before(v.until) {
		return nil, false, nil
	}
	return v.value, true, nil
}

// PutHandle inserts the value. Expired rows are swept at most once a minute, and
// the count is checked on each insert: an approximate bound across replicas
// racing, never an unbounded table.
func (s *SQL) PutHandle(ctx context.Context, key string, value []byte, until time.Time) error {
	now := s.nowFn()
	if last := s.handlesSwept.Load(); now.Unix()-last >= 60 && s.handlesSwept.CompareAndSwap(last, now.Unix()) {
		_, _ = s.exec(ctx, `DELETE FROM obdcr_handles WHERE expires_at <= ?`, now.UnixMicro())
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM obdcr_handles`).Scan(&n); err != nil {
		return err
	}
	if n >= handleLimit(s.maxHandles) {
		if _, err := s.exec(ctx, `DELETE FROM obdcr_handles WHERE expires_at <= ?`, now.UnixMicro()); err != nil {
			return err
		}
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM obdcr_handles`).Scan(&n); err != nil {
			return err
		}
		if n >= handleLimit(s.maxHandles) {
			return ErrHandlesFull
		}
	}
	_, err := s.exec(ctx, `INSERT INTO obdcr_handles (key, value, expires_at) VALUES (?, ?, ?)`, key, string(value), until.UnixMicro())
	return err
}

// TakeHandle deletes the row and reads it in one statement, so of two replicas
// taking one key only one gets a row.
func (s *SQL) TakeHandle(ctx context.Context, key string) ([]byte, bool, error) {
	var value string
	var exp int64
	err := s.db.QueryRowContext(ctx, s.d.bind(`DELETE FROM obdcr_handles WHERE key = ? RETURNING value, expires_at`), key).Scan(&value, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if s.nowFn().UnixMicro() >= exp {
		return nil, false, nil
	}
	return []byte(value), true, nil
}

// PeekHandle reads the row, if it has not expired.
func (s *SQL) PeekHandle(ctx context.Context, key string) ([]byte, bool, error) {
	var value string
	err := s.db.QueryRowContext(ctx, s.d.bind(`SELECT value FROM obdcr_handles WHERE key = ? AND expires_at > ?`), key, s.nowFn().UnixMicro()).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return []byte(value), true, nil
}
