package store

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// Every store is an org index (policy.OrgIndex).
var (
	_ policy.OrgIndex = (*SQL)(nil)
	_ policy.OrgIndex = (*Memory)(nil)
)

func (s *SQL) NoteClient(ctx context.Context, orgID, clientID string) error {
	_, err := s.exec(ctx, `INSERT INTO obdcr_org_clients (client_id, org_id, noted_at) VALUES (?, ?, ?)
		ON CONFLICT (client_id) DO UPDATE SET org_id = excluded.org_id, noted_at = excluded.noted_at`,
		clientID, orgID, s.nowFn().UnixMicro())
	return err
}

func (s *SQL) ForgetClient(ctx context.Context, clientID string) error {
	_, err := s.exec(ctx, `DELETE FROM obdcr_org_clients WHERE client_id = ?`, clientID)
	return err
}

func (s *SQL) ForgetStale(ctx context.Context, clientID string, olderThan time.Duration) error {
	_, err := s.exec(ctx, `DELETE FROM obdcr_org_clients WHERE client_id = ? AND noted_at < ?`, clientID, s.nowFn().Add(-olderThan).UnixMicro())
	return err
}

func (s *SQL) OrgClients(ctx context.Context, orgID string, limit int) ([]string, bool, error) {
	var complete int64
	if err := s.db.QueryRowContext(ctx, `SELECT complete_at FROM obdcr_org_index WHERE id = 1`).Scan(&complete); err != nil {
		return nil, false, err
	}
	ids, err := s.clientIDs(ctx, `SELECT client_id FROM obdcr_org_clients WHERE org_id = ? ORDER BY noted_at, client_id LIMIT ?`, orgID, limit)
	return ids, complete > 0, err
}

func (s *SQL) NotedBefore(ctx context.Context, t time.Time, limit int) ([]string, error) {
	return s.clientIDs(ctx, `SELECT client_id FROM obdcr_org_clients WHERE noted_at < ? ORDER BY noted_at, client_id LIMIT ?`, t.UnixMicro(), limit)
}

func (s *SQL) MarkComplete(ctx context.Context) error {
	_, err := s.exec(ctx, `UPDATE obdcr_org_index SET complete_at = ? WHERE id = 1`, s.nowFn().UnixMicro())
	return err
}

func (s *SQL) clientIDs(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.d.bind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// orgIndex is the memory store's: lost with the process, so each start
// refills it from Hydra before lookups use it.
type orgIndex struct {
	mu       sync.Mutex
	byClient map[string]orgNote
	byOrg    map[string][]string
	complete bool
	now      func() time.Time
}

// orgNote is what the memory index holds per client: a Unix time in
// nanoseconds rather than a time.Time, whose location pointer the garbage
// collector would visit for every registration held.
type orgNote struct {
	org   string
	noted int64
}

func (x *orgIndex) NoteClient(_ context.Context, orgID, clientID string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byClient == nil {
		x.byClient, x.byOrg = map[string]orgNote{}, map[string][]string{}
	}
	old, ok := x.byClient[clientID]
	if ok && old.org != orgID {
		x.removeLocked(old.org, clientID)
	}
	if ids := x.byOrg[orgID]; len(ids) > 0 {
		// The org's name as a note already holds it, so that an org's thousand
		// clients share one copy rather than each keeping its request's.
		if held, ok := x.byClient[ids[0]]; ok && held.org == orgID {
			orgID = held.org
		}
	}
	if !ok || old.org != orgID {
		x.byOrg[orgID] = append(x.byOrg[orgID], clientID)
	}
	x.byClient[clientID] = orgNote{org: orgID, noted: x.clock().UnixNano()}
	return nil
}

func (x *orgIndex) ForgetClient(_ context.Context, clientID string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.byClient[clientID]; ok {
		x.removeLocked(old.org, clientID)
		delete(x.byClient, clientID)
	}
	return nil
}

func (x *orgIndex) ForgetStale(_ context.Context, clientID string, olderThan time.Duration) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.byClient[clientID]; ok && old.noted < x.clock().Add(-olderThan).UnixNano() {
		x.removeLocked(old.org, clientID)
		delete(x.byClient, clientID)
	}
	return nil
}

func (x *orgIndex) removeLocked(org, clientID string) {
	ids := slices.DeleteFunc(x.byOrg[org], func(id string) bool { return id == clientID })
	if len(ids) == 0 {
		delete(x.byOrg, org)
		return
	}
	x.byOrg[org] = ids
}

func (x *orgIndex) OrgClients(_ context.Context, orgID string, limit int) ([]string, bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ids := slices.Clone(x.byOrg[orgID])
	x.sortLocked(ids)
	return ids[:min(len(ids), limit)], x.complete, nil
}

func (x *orgIndex) NotedBefore(_ context.Context, t time.Time, limit int) ([]string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var ids []string
	before := t.UnixNano()
	for id, n := range x.byClient {
		if n.noted < before {
			ids = append(ids, id)
		}
	}
	x.sortLocked(ids)
	return ids[:min(len(ids), limit)], nil
}

// sortLocked orders ids as the SQL stores do: oldest noted first, then by id.
func (x *orgIndex) sortLocked(ids []string) {
	slices.SortFunc(ids, func(a, b string) int {
		if c := cmp.Compare(x.byClient[a].noted, x.byClient[b].noted); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
}

func (x *orgIndex) MarkComplete(context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.complete = true
	return nil
}

func (x *orgIndex) clock() time.Time {
	if x.now != nil {
		return x.now()
	}
	return time.Now()
}
