package plugin

import (
	"context"
	"time"
)

// pruneAudit removes decision entries older than OBDCR_AUDIT_RETENTION, at start
// and hourly; policy changes are kept. Every replica may run it: a delete is
// idempotent.
func (s *Server) pruneAudit(ctx context.Context) {
	if s.cfg.AuditRetention <= 0 {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := s.store.Prune(ctx, time.Now().Add(-s.cfg.AuditRetention))
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("audit retention: pruning failed; will retry", "error", err.Error())
		case n > 0:
			s.log.Info("audit retention: removed old decision entries", "entries", n, "retention", s.cfg.AuditRetention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
