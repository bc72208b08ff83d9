package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// Secrets keeps values obdcr generates once and every replica then shares, such
// as the key the FAPI edge signs its assertions to Hydra with. Names are
// obdcr's own constants, never a caller's, so the table stays a few rows.
type Secrets interface {
	// Secret returns the value stored under name. When there is none it stores
	// what generate makes; of replicas racing, the first insert wins and every
	// one of them returns that value.
	Secret(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error)
}

var (
	_ Secrets = (*SQL)(nil)
	_ Secrets = (*Memory)(nil)
)

// secrets is the in-memory table (one replica).
type secrets struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *secrets) Secret(_ context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[name]; ok {
		return v, nil
	}
	v, err := generate()
	if err != nil {
		return nil, err
	}
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[name] = v
	return v, nil
}

func (s *SQL) Secret(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	read := func() ([]byte, error) {
		var v string
		err := s.db.QueryRowContext(ctx, s.d.bind(`SELECT value FROM obdcr_secrets WHERE name = ?`), name).Scan(&v)
		return []byte(v), err
	}
	v, err := read()
	if !errors.Is(err, sql.ErrNoRows) {
		return v, err
	}
	made, err := generate()
	if err != nil {
		return nil, err
	}
	// Two replicas starting together both generate; the key is the row, so one
	// insert is kept and both read it back.
	if _, err := s.exec(ctx, `INSERT INTO obdcr_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, string(made), s.nowFn().UnixMicro()); err != nil {
		return nil, err
	}
	return read()
}
