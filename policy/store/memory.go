package store

import (
	"context"
	"sync"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// maxMemoryAudit bounds each of the in-memory audit's logs; a single process
// keeps the newest of each.
const maxMemoryAudit = 100_000

// The in-memory audit's logs. Each holds entries of one class, so that what a TPP
// can repeat at will (refusals; updates of its own registration) only pushes out
// older entries of its own class, never a policy change (only admins make those)
// or an approved registration.
const (
	logPolicy     = iota // policy changes
	logRegistered        // approved registrations
	logCalls             // other entries that let something happen: updates, deletions, dry runs
	logRefused           // refusals and failures
	nLogs
)

func logOf(e AuditEntry) int {
	switch {
	case e.Outcome == "refused" || e.Outcome == "failed":
		return logRefused
	case e.Kind == KindPolicy:
		return logPolicy
	case e.Kind == KindRegistration:
		return logRegistered
	}
	return logCalls
}

// Memory is the Store of one process (OBDCR_DSN=memory).
type Memory struct {
	*policy.MemoryReplay
	orgIndex
	createLog
	handles
	secrets
	bindings
	mu      sync.Mutex
	states  map[string]StoredState
	version int64
	logs    [nLogs]auditLog
	nextID  int64
}

// NewMemory returns an empty store.
func NewMemory() *Memory { return NewMemoryWithClock(nil) }

// NewMemoryWithClock returns an empty store whose org index notes times by now
// (time.Now if nil), for tests of what ages out.
func NewMemoryWithClock(now func() time.Time) *Memory {
	return &Memory{MemoryReplay: policy.NewMemoryReplay(nil), states: map[string]StoredState{}, orgIndex: orgIndex{now: now}, createLog: createLog{now: now}, handles: handles{now: now}, bindings: bindings{now: now}}
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
	if cur, ok := m.states[profile]; ok && cur.Version != st.Version {
		return ErrStale
	}
	st.Version++
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
	m.logs[logOf(e)].add(e)
}

func (m *Memory) Audit(_ context.Context, q AuditQuery) ([]AuditEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []AuditEntry{}
	match := func(e AuditEntry) bool {
		return (q.SoftwareID == "" || e.SoftwareID == q.SoftwareID || e.ClaimedSoftwareID == q.SoftwareID) && (q.Profile == "" || e.Profile == q.Profile) && (q.Kind == "" || e.Kind == q.Kind) &&
			(q.Outcome == "" || e.Outcome == q.Outcome) && (q.BeforeID == 0 || e.ID < q.BeforeID)
	}
	// Every log is in id order: merge them, newest first.
	var next [nLogs]int
	for i := range m.logs {
		next[i] = m.logs[i].len() - 1
	}
	for len(out) < q.limit() {
		newest := -1
		for i := range m.logs {
			if next[i] >= 0 && (newest < 0 || m.logs[i].id(next[i]) > m.logs[newest].id(next[newest])) {
				newest = i
			}
		}
		if newest < 0 {
			break
		}
		l, at := &m.logs[newest], next[newest]
		next[newest]--
		if match(l.summary(at)) {
			out = append(out, l.at(at))
		}
	}
	return out, nil
}

// Prune drops decision entries older than before; policy changes are kept.
func (m *Memory) Prune(_ context.Context, before time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for i := range m.logs {
		n += m.logs[i].prune(before)
	}
	return n, nil
}

func (m *Memory) Ping(context.Context) error { return nil }
func (m *Memory) Close() error               { return nil }
