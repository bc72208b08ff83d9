package plugin

import (
	"context"
	"math/rand/v2"
	"time"
)

// orgIndexEvery is how often the org index is refilled from Hydra: it catches
// clients that replicas of an older obdcr registered during an upgrade, and ids
// of clients deleted in Hydra directly. Spread by up to an hour so that replicas
// started together do not page through Hydra together.
const orgIndexEvery = 24 * time.Hour

// keepOrgIndex fills the org index from Hydra when it is not complete (always at
// the start of a memory store; once after the migration that made it on SQL),
// then daily. A failure is retried with backoff; until the first fill, org_id
// lookups read Hydra's owner list, as before.
func (s *Server) keepOrgIndex(ctx context.Context) {
	if s.registrar.Orgs == nil {
		return
	}
	wait := time.Duration(0)
	if _, complete, err := s.registrar.Orgs.OrgClients(ctx, "", 0); err == nil && complete {
		s.metrics.orgIndexReady.Set(1)
		wait = jittered(orgIndexEvery)
	}
	backoff := time.Minute
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		start := time.Now()
		res, err := s.registrar.ResyncOrgIndex(ctx, s.hydra)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("org index: refilling from Hydra failed; org_id lookups read Hydra's list until it succeeds", "error", err.Error(), "retry_in", backoff.String())
			wait, backoff = backoff, min(backoff*2, 30*time.Minute)
			continue
		}
		s.metrics.orgIndexReady.Set(1)
		s.log.Info("org index: refilled from Hydra", "clients_read", res.Clients, "registrations", res.Noted,
			"forgotten", res.Forgotten, "pages", res.Pages, "took", time.Since(start).Round(time.Millisecond).String())
		wait, backoff = jittered(orgIndexEvery), time.Minute
	}
}

func jittered(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(time.Hour)))
}
