package service

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// audit appends an entry. An entry the store did not take is an error: the
// caller answers 503 rather than acknowledge a decision the audit does not hold.
// A refusal is written within its certificate's budget (refusalDigest).
func (s *Service) audit(ctx context.Context, e store.AuditEntry) error {
	e.RequestID = RequestID(ctx)
	if e.Time.IsZero() {
		e.Time = s.d.Now().UTC()
	}
	e = e.Bounded()
	if !s.digest.admit(e, e.Time) {
		return nil // counted; its window's summary entry will say so
	}
	ctx, cancel := afterWork(ctx)
	defer cancel()
	if parent := trace.SpanFromContext(ctx); parent.IsRecording() {
		var span trace.Span
		ctx, span = parent.TracerProvider().Tracer("obdcr").Start(ctx, "store.audit")
		defer span.End()
	}
	if err := s.d.Store.Append(ctx, e); err != nil {
		s.d.Log.LogAttrs(ctx, slog.LevelError, "audit entry could not be stored", slog.String("request_id", e.RequestID),
			slog.String("kind", e.Kind), slog.String("error", err.Error()))
		return unavailable(err)
	}
	return nil
}

// Audit lists entries, newest first.
func (s *Service) Audit(ctx context.Context, q store.AuditQuery) ([]view.AuditEntry, error) {
	entries, err := s.d.Store.Audit(ctx, q)
	if err != nil {
		return nil, unavailable(err)
	}
	return entries, nil
}

// SignInRefused audits a console sign-in refused from source; name is the
// token name it gave as name:token, if one of the server's. The refusal stands
// whether or not the store takes the entry (audit logs a failure).
func (s *Service) SignInRefused(ctx context.Context, source, name string) {
	desc := "console sign-in from " + source + " with a value that is not an admin token"
	if name != "" {
		desc += " (given as name:token for " + name + ")"
	}
	_ = s.audit(ctx, store.AuditEntry{Kind: store.KindSignIn, Outcome: "refused", Error: "invalid_token", Description: desc})
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

// answerByKey holds the time by which the request must be answered.
type answerByKey struct{}

// WithAnswerBy says by when the request that ctx serves must be answered: its
// work may end earlier (ctx's deadline), but its audit entry and completion
// may use the time left up to t.
func WithAnswerBy(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, answerByKey{}, t)
}

// afterWork is the context an audit entry or a completion is written in: not
// ended by the caller going away or the work's deadline, and bounded by 5 s or
// the time the request must be answered by, whichever is sooner.
func afterWork(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(5 * time.Second)
	if t, ok := ctx.Value(answerByKey{}).(time.Time); ok && t.Before(deadline) {
		deadline = t
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}

// HalfMadeRemoved audits the reconciler's removal of a half-made registration:
// a create whose answer was lost and which was never completed. A failure to
// store the entry is logged (audit) and returned; the removal stands.
func (s *Service) HalfMadeRemoved(ctx context.Context, a policy.CreateAttempt) error {
	return s.audit(ctx, store.AuditEntry{Kind: store.KindRegistration, Profile: a.Profile, SoftwareID: a.SoftwareID, OrgID: a.OrgID,
		ClientID: a.ClientID, Outcome: "removed", Actor: "obdcr",
		Description: "half-made registration removed: the create's answer was lost and the registration was never completed"})
}
