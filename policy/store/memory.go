package store

import (
	"context"
	"sync"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// maxMemoryAudit bounds the in-memory audit log; a single process keeps the newest.
const maxMemoryAudit = 100_000

// Memory is the Store of one process (OBDCR_DSN=memory).
type Memory struct {
	*policy.MemoryReplay
	mu      sync.Mutex
	states  map[string]StoredState
	version int64
	audit   []AuditEntry
	nextID  int64
}

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{MemoryReplay: policy.NewMemoryReplay(nil), states: map[string]StoredState{}}
}

func (m *Memory) States(context.Context) (map[string]StoredState, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]StoredState, len(m.states))
	for k, v := range m.states {
		out[k] = v
	}
	return out, m.version, nil
}

func (m *Memory) Version(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.version, nil
}

func (m *Memory) Seed(_ context.Context, profile string, st StoredState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.states[profile]; !ok {
		m.states[profile] = st
	}
	return nil
}

func (m *Memory) PutState(_ context.Context, profile string, st StoredState, e AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states[profile] = st
	m.version++
	m.appendLocked(e)
	return nil
}

func (m *Memory) Append(_ context.Context, e AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.appendLocked(e)
	return nil
}

func (m *Memory) appendLocked(e AuditEntry) {
	m.nextID++
	e.ID = m.nextID
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	m.audit = append(m.audit, e)
	if len(m.audit) > maxMemoryAudit {
		m.audit = append(m.audit[:0:0], m.audit[len(m.audit)-maxMemoryAudit:]...)
	}
}

func (m *Memory) Audit(_ context.Context, q AuditQuery) ([]AuditEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []AuditEntry{}
	for i := len(m.audit) - 1; i >= 0 && len(out) < q.limit(); i-- {
		e := m.audit[i]
		if (q.SoftwareID == "" || e.SoftwareID == q.SoftwareID) && (q.Profile == "" || e.Profile == q.Profile) && (q.Kind == "" || e.Kind == q.Kind) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *Memory) Ping(context.Context) error { return nil }
func (m *Memory) Close() error               { return nil }
