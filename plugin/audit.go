package plugin

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/trace"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// audit appends an entry. An entry the store did not take is an error: the
// caller answers 503 rather than acknowledge a decision the audit does not hold.
func (s *Server) audit(c echo.Context, e store.AuditEntry) error {
	e.RequestID = requestID(c)
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	e = e.Bounded()
	if !s.digest.admit(e, e.Time) {
		return nil // counted; its window's summary entry will say so
	}
	ctx, cancel := auditContext(c)
	defer cancel()
	if parent := trace.SpanFromContext(ctx); parent.IsRecording() {
		var span trace.Span
		ctx, span = parent.TracerProvider().Tracer("obdcr").Start(ctx, "store.audit")
		defer span.End()
	}
	if err := s.store.Append(ctx, e); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "audit entry could not be stored", slog.String("request_id", e.RequestID),
			slog.String("kind", e.Kind), slog.String("error", err.Error()))
		return &policy.Unavailable{Dependency: "store", Err: err}
	}
	return nil
}

// traceEntry is an entry of what a request showed of itself: as facts once the
// directory's signature checked, as claims before.
func traceEntry(kind string, tr policy.Trace) store.AuditEntry {
	e := store.AuditEntry{Kind: kind, Profile: tr.Profile}
	if tr.Verified {
		e.SoftwareID, e.OrgID = tr.SoftwareID, tr.OrgID
	} else {
		e.ClaimedSoftwareID, e.ClaimedOrgID = tr.SoftwareID, tr.OrgID
	}
	return e
}

// decisionEntry describes a registration or management decision for the audit.
func decisionEntry(kind string, tr policy.Trace, reg *policy.Registration, cert *x509.Certificate, err error) store.AuditEntry {
	e := traceEntry(kind, tr)
	e.Outcome = "approved"
	if reg != nil {
		e.ClientID, e.SoftwareID, e.OrgID, e.Profile = reg.ClientID, reg.SoftwareID, reg.OrgID, reg.Profile
	}
	if cert != nil {
		e.CertThumbprint = policy.Thumbprint(cert)
	}
	if err != nil {
		if r, ok := policy.AsError(err); ok {
			e.Outcome, e.Error, e.Rule, e.Description = "refused", string(r.Code), r.Rule, r.Description
		} else {
			e.Outcome, e.Description = "failed", err.Error()
		}
	}
	return e
}

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
