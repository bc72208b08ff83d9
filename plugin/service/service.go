// Package service is obdcr's application service: every operation a TPP, an
// admin or the console asks for (register, update, delete, save a policy, dry
// run, read) decides, audits, compensates and counts here, in one place. It
// has no HTTP in it: the TPP API, the admin API and the console translate
// requests into calls and errors back into answers.
package service

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// Hydra is what the service asks of Hydra's admin API itself; registering and
// removing clients go through the registrar.
type Hydra interface {
	Introspect(ctx context.Context, token string) (hydra.Token, error)
	Get(ctx context.Context, id string) (hydra.Client, error)
	Ready(ctx context.Context) error
}

// Metrics are the counters the service keeps; their names and labels are the
// server's (plugin/metrics.go).
type Metrics struct {
	// Registrations is obdcr_registrations_total: profile, outcome, error.
	Registrations *prometheus.CounterVec
	// Management is obdcr_management_total: profile, operation, outcome.
	Management *prometheus.CounterVec
	// Suppressed counts refusals past their certificate's audit budget
	// (obdcr_audit_refusals_suppressed_total).
	Suppressed func(profile string, n int)
}

// Deps is what the service works with.
type Deps struct {
	Registrar *policy.Registrar
	// State is the profiles' shared state; the registrar reads it too.
	State *store.SharedState
	Store store.Store
	Hydra Hydra
	Log   *slog.Logger
	// AuditRefusals is each certificate's budget of refusal entries an hour.
	AuditRefusals int
	Metrics       Metrics
	// Health are the outside services the profiles depend on (the CDR Register).
	Health []policy.HealthCheck
	// Findings are the last setup check's, or nil.
	Findings func() []view.Finding
	Now      func() time.Time
}

// Service is the application service.
type Service struct {
	d        Deps
	digest   *refusalDigest
	activity *activity
}

// New makes the service. Run writes the audit's refusal summaries.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Findings == nil {
		d.Findings = func() []view.Finding { return nil }
	}
	names := make([]string, len(d.Registrar.Profiles))
	for i, p := range d.Registrar.Profiles {
		names[i] = p.Name
	}
	return &Service{d: d, digest: newRefusalDigest(time.Minute, d.AuditRefusals, d.Metrics.Suppressed), activity: newActivity(names)}
}

// Run writes the refusal digest's summaries until ctx ends.
func (s *Service) Run(ctx context.Context) { s.digest.run(ctx, s.d.Store.Append) }

type requestIDKey struct{}

// WithRequestID carries a request's id to the audit entries made for it.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the id WithRequestID put on ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// unavailable is the store failing an operation.
func unavailable(err error) error { return &policy.Unavailable{Dependency: "store", Err: err} }
