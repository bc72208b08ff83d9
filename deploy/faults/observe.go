package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
)

// What the harness reads back, from Hydra's admin API, from obdcr's tables in
// PostgreSQL, and from each replica's admin listener (its health and the
// policy it serves from memory). Never from obdcr's logs.

// servedVersion is the uk profile version replica i serves.
func (c *cluster) servedVersion(ctx context.Context, i int) (int64, error) {
	var profiles []struct {
		Profile string `json:"profile"`
		Version int64  `json:"version"`
	}
	if err := c.get(ctx, adminURL(i)+"/admin/policies", &profiles); err != nil {
		return 0, err
	}
	for _, p := range profiles {
		if p.Profile == sandbox.UK {
			return p.Version, nil
		}
	}
	return 0, errNoVersion
}

// storedVersion is the uk profile version in PostgreSQL, retried until the
// database answers (after a restart or a pause it may take a moment).
func (c *cluster) storedVersion(ctx context.Context, within time.Duration) (int64, error) {
	deadline := time.Now().Add(within)
	for {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var v int64
		err := c.db.QueryRowContext(qctx, "SELECT version FROM obdcr_profiles WHERE name = $1", sandbox.UK).Scan(&v)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return v, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// probeRecovery watches every replica from the heal until it answers ready and
// serves the uk version the store holds, or within passes.
func (c *cluster) probeRecovery(ctx context.Context, healed time.Time, within time.Duration) []recovery {
	want, err := c.storedVersion(ctx, within)
	out := make([]recovery, len(replicas))
	var wg sync.WaitGroup
	for i := range replicas {
		out[i] = recovery{Replica: i, Want: want}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &out[i]
			for time.Since(healed) < within {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				if !r.Ready && c.get(pctx, adminURL(i)+"/health/ready", nil) == nil {
					r.Ready, r.ReadyAfter = true, time.Since(healed)
				}
				if got, gerr := c.servedVersion(pctx, i); gerr == nil {
					r.Got = got
					if !r.Policy && err == nil && got >= want {
						r.Policy, r.PolicyAfter = true, time.Since(healed)
					}
				}
				cancel()
				if r.Ready && r.Policy {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !r.Ready {
				r.ReadyAfter = time.Since(healed)
			}
			if !r.Policy {
				r.PolicyAfter = time.Since(healed)
			}
		}()
	}
	wg.Wait()
	return out
}

// replayHeld reports, for the accepted requests among obs, whether their jti's
// replay key is in obdcr_replay.
func (c *cluster) replayHeld(ctx context.Context, obs []Obs) (func(Obs) bool, error) {
	var keys []string
	for _, o := range obs {
		if accepted(o) {
			keys = append(keys, policy.ReplayKey(sandbox.UK, o.SoftwareID, o.JTI))
		}
	}
	held := map[string]bool{}
	rows, err := c.db.QueryContext(ctx, "SELECT key FROM obdcr_replay WHERE key = ANY($1)", keys)
	if err != nil {
		return nil, fmt.Errorf("reading obdcr_replay: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		held[k] = true
	}
	return func(o Obs) bool { return held[policy.ReplayKey(sandbox.UK, o.SoftwareID, o.JTI)] }, rows.Err()
}

// approvedRegistrations are obdcr_audit's approved registration entries whose
// request id starts with idPrefix, by request id.
func (c *cluster) approvedRegistrations(ctx context.Context, idPrefix string) (map[string]auditRow, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT request_id, client_id FROM obdcr_audit
		WHERE kind = 'registration' AND outcome = 'approved' AND request_id LIKE $1`, idPrefix+"%")
	if err != nil {
		return nil, fmt.Errorf("reading obdcr_audit: %w", err)
	}
	defer rows.Close()
	out := map[string]auditRow{}
	for rows.Next() {
		var r auditRow
		if err := rows.Scan(&r.RequestID, &r.ClientID); err != nil {
			return nil, err
		}
		out[r.RequestID] = r
	}
	return out, rows.Err()
}

// hydraClients lists every client Hydra holds that obdcr made (its metadata
// names a software_id), page by page, retried while Hydra does not answer.
func (c *cluster) hydraClients(ctx context.Context) ([]hydraClient, error) {
	var out []hydraClient
	token := ""
	for {
		var page []hydra.Client
		var next string
		var err error
		for try := 0; try < 20; try++ {
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			page, next, err = c.hydraAPI.ListPage(lctx, token)
			cancel()
			if err == nil {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			return nil, fmt.Errorf("listing Hydra's clients: %w", err)
		}
		for _, p := range page {
			var m struct {
				SoftwareID string `json:"software_id"`
				JTI        string `json:"request_jti"`
			}
			_ = json.Unmarshal(p.Metadata, &m)
			if m.SoftwareID != "" {
				out = append(out, hydraClient{ID: p.ID, SoftwareID: m.SoftwareID, JTI: m.JTI})
			}
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}
