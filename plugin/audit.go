package plugin

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"

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
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 5*time.Second)
	defer cancel()
	if err := s.store.Append(ctx, e); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "audit entry could not be stored", slog.String("request_id", e.RequestID),
			slog.String("kind", e.Kind), slog.String("error", err.Error()))
		return &policy.Unavailable{Dependency: "store", Err: err}
	}
	return nil
}

// decisionEntry describes a registration or management decision for the audit.
func decisionEntry(kind string, tr policy.Trace, reg *policy.Registration, cert *x509.Certificate, err error) store.AuditEntry {
	e := store.AuditEntry{Kind: kind, Profile: tr.Profile, SoftwareID: tr.SoftwareID, OrgID: tr.OrgID, Outcome: "approved"}
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
