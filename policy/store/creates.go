package store

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// Every store keeps creates in flight (policy.CreateLog).
var (
	_ policy.CreateLog = (*SQL)(nil)
	_ policy.CreateLog = (*Memory)(nil)
)

func (s *SQL) BeginCreate(ctx context.Context, a policy.CreateAttempt) error {
	_, err := s.exec(ctx, `INSERT INTO obdcr_creates (client_id, nonce, profile, software_id, org_id, noted_at, claimed_until)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, a.ClientID, a.Nonce, a.Profile, a.SoftwareID, a.OrgID, s.nowFn().UnixMicro(), a.HeldUntil.UnixMicro())
	return err
}

func (s *SQL) ReleaseCreate(ctx context.Context, clientID, nonce string) error {
	_, err := s.exec(ctx, `UPDATE obdcr_creates SET claimed_until = 0 WHERE client_id = ? AND nonce = ?`, clientID, nonce)
	return err
}

func (s *SQL) EndCreate(ctx context.Context, clientID, nonce string) error {
	_, err := s.exec(ctx, `DELETE FROM obdcr_creates WHERE client_id = ? AND nonce = ?`, clientID, nonce)
	return err
}

// ClaimCreates claims in one statement: a row another replica claimed first no
// longer matches claimed_until < now when this one's update reaches it.
func (s *SQL) ClaimCreates(ctx context.Context, before time.Time, lease time.Duration, limit int) ([]policy.CreateAttempt, error) {
	now := s.nowFn()
	return s.attempts(ctx, `UPDATE obdcr_creates SET claimed_until = ?
		WHERE id IN (SELECT id FROM obdcr_creates WHERE noted_at < ? AND claimed_until < ? ORDER BY noted_at, id LIMIT ?)
		AND claimed_until < ?
		RETURNING id, client_id, nonce, profile, software_id, org_id, noted_at`,
		now.Add(lease).UnixMicro(), before.UnixMicro(), now.UnixMicro(), limit, now.UnixMicro())
}

func (s *SQL) DropCreate(ctx context.Context, id int64) error {
	_, err := s.exec(ctx, `DELETE FROM obdcr_creates WHERE id = ?`, id)
	return err
}

func (s *SQL) PendingCreates(ctx context.Context, limit int) ([]policy.CreateAttempt, error) {
	return s.attempts(ctx, `SELECT id, client_id, nonce, profile, software_id, org_id, noted_at
		FROM obdcr_creates ORDER BY noted_at, id LIMIT ?`, limit)
}

func (s *SQL) OtherCreates(ctx context.Context, clientID, nonce string) (bool, error) {
	ids, err := s.clientIDs(ctx, `SELECT client_id FROM obdcr_creates WHERE client_id = ? AND nonce <> ? AND claimed_until < ? LIMIT 1`,
		clientID, nonce, s.nowFn().UnixMicro())
	return len(ids) > 0, err
}

func (s *SQL) attempts(ctx context.Context, q string, args ...any) ([]policy.CreateAttempt, error) {
	rows, err := s.db.QueryContext(ctx, s.d.bind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []policy.CreateAttempt
	for rows.Next() {
		var a policy.CreateAttempt
		var noted int64
		if err := rows.Scan(&a.ID, &a.ClientID, &a.Nonce, &a.Profile, &a.SoftwareID, &a.OrgID, &noted); err != nil {
			return nil, err
		}
		a.NotedAt = time.UnixMicro(noted).UTC()
		out = append(out, a)
	}
	// RETURNING gives rows in no set order.
	slices.SortFunc(out, func(a, b policy.CreateAttempt) int { return a.NotedAt.Compare(b.NotedAt) })
	return out, rows.Err()
}

// createLog is the memory store's: a process's own creates, repaired by itself.
type createLog struct {
	mu       sync.Mutex
	attempts []memAttempt
	nextID   int64
	now      func() time.Time
}

type memAttempt struct {
	policy.CreateAttempt
	claimedUntil time.Time
}

func (l *createLog) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

func (l *createLog) BeginCreate(_ context.Context, a policy.CreateAttempt) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextID++
	a.ID, a.NotedAt = l.nextID, l.clock().UTC()
	l.attempts = append(l.attempts, memAttempt{CreateAttempt: a, claimedUntil: a.HeldUntil})
	return nil
}

func (l *createLog) ReleaseCreate(_ context.Context, clientID, nonce string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.attempts {
		if m := &l.attempts[i]; m.ClientID == clientID && m.Nonce == nonce {
			m.claimedUntil = time.Time{}
		}
	}
	return nil
}

func (l *createLog) EndCreate(_ context.Context, clientID, nonce string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts = slices.DeleteFunc(l.attempts, func(m memAttempt) bool { return m.ClientID == clientID && m.Nonce == nonce })
	return nil
}

func (l *createLog) ClaimCreates(_ context.Context, before time.Time, lease time.Duration, limit int) ([]policy.CreateAttempt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	var out []policy.CreateAttempt
	for i := range l.attempts {
		m := &l.attempts[i]
		if len(out) < limit && m.NotedAt.Before(before) && m.claimedUntil.Before(now) {
			m.claimedUntil = now.Add(lease)
			out = append(out, m.CreateAttempt)
		}
	}
	return out, nil
}

func (l *createLog) DropCreate(_ context.Context, id int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts = slices.DeleteFunc(l.attempts, func(m memAttempt) bool { return m.ID == id })
	return nil
}

func (l *createLog) PendingCreates(_ context.Context, limit int) ([]policy.CreateAttempt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []policy.CreateAttempt
	for _, m := range l.attempts[:min(len(l.attempts), limit)] {
		out = append(out, m.CreateAttempt)
	}
	return out, nil
}

func (l *createLog) OtherCreates(_ context.Context, clientID, nonce string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	return slices.ContainsFunc(l.attempts, func(m memAttempt) bool {
		return m.ClientID == clientID && m.Nonce != nonce && m.claimedUntil.Before(now)
	}), nil
}
