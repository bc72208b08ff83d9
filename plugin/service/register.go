package service

import (
	"context"
	"errors"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// Outcome names a decision for metrics and logs: approved, refused (with its
// RFC 7591 error code) or failed (a dependency, not the request).
func Outcome(err error) (outcome, code string) {
	if err == nil {
		return "approved", ""
	}
	if e, ok := policy.AsError(err); ok {
		return "refused", string(e.Code)
	}
	return "failed", ""
}

// Register decides a registration (RFC 7591 §3) by a TPP, audits and counts
// it, and completes it: only a completed registration is answered 201. One
// created but not audited or not completed is half-made: the TPP hears that
// the outcome is not known yet, and the reconciler removes the client within
// the compensation window (policy.CompensationWindow). The trace is what is
// known of the request however far it got, for the request's log line.
func (s *Service) Register(ctx context.Context, actor TPP, jwt []byte) (*policy.Registration, policy.Trace, error) {
	reg, tr, err := s.d.Registrar.Register(ctx, policy.Submission{JWT: jwt, Certificate: actor.Cert})
	outcome, code := Outcome(err)
	s.d.Metrics.Registrations.WithLabelValues(tr.Profile, outcome, code).Inc()
	rule := ""
	if e, ok := policy.AsError(err); ok {
		rule = e.Rule
	}
	s.activity.record(s.d.Now(), tr.Profile, err == nil, code, rule)
	if aerr := s.audit(ctx, decisionEntry(store.KindRegistration, tr, reg, actor.Cert, err)); aerr != nil {
		if reg != nil {
			return nil, tr, policy.OutcomeUnknown("store", aerr)
		}
		if policy.IsRefusal(err) {
			return nil, tr, aerr
		}
	}
	if err != nil {
		return nil, tr, err
	}
	cctx, cancel := afterWork(ctx)
	defer cancel()
	if err := s.d.Registrar.Complete(cctx, reg); err != nil {
		return nil, tr, err
	}
	return reg, tr, nil
}

// Update replaces the registration the TPP proved it manages (RFC 7592 §2.2)
// with a new signed request, checked by the same rules.
func (s *Service) Update(ctx context.Context, actor TPP, jwt []byte) (*policy.Registration, policy.Trace, error) {
	current := actor.Client
	reg, tr, err := s.d.Registrar.Update(ctx, current, policy.Submission{JWT: jwt, Certificate: actor.Cert})
	outcome, _ := Outcome(err)
	s.d.Metrics.Management.WithLabelValues(current.Profile, "update", outcome).Inc()
	e := decisionEntry(store.KindManagement, tr, current, actor.Cert, err)
	if err == nil {
		e.Outcome = "updated"
	}
	if aerr := s.audit(ctx, e); aerr != nil {
		return nil, tr, aerr
	}
	if errors.Is(err, policy.ErrNoRegistration) {
		return nil, tr, unauthorized("the client no longer exists")
	}
	return reg, tr, err
}
