package console

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/obdcr/obdcr/plugin/service"
	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy/store"
)

// Service is what the console does: the operations of the admin API, through
// the same application service (plugin/service), which decides and audits.
// The console renders.
type Service interface {
	Overview(ctx context.Context) view.Overview
	Policies(ctx context.Context) ([]view.Policy, error)
	// SavePolicy applies a change as PUT /admin/policies does. A bad setting is
	// an error wrapping a *store.SettingsError.
	SavePolicy(ctx context.Context, actor service.Admin, profile string, c service.PolicyChange) (before, after view.Policy, err error)
	Registrations(ctx context.Context, q service.RegistrationQuery) ([]view.Registration, error)
	Registration(ctx context.Context, clientID string) (view.RegistrationDetail, error)
	Delete(ctx context.Context, actor service.Actor, clientID, why string) error
	Audit(ctx context.Context, q store.AuditQuery) ([]view.AuditEntry, error)
	DryRun(ctx context.Context, actor service.Admin, jwt []byte, cert *x509.Certificate) (view.DryRun, error)
}

// Backend is what the console's sign-in and sessions ask of the server.
type Backend interface {
	// Authenticate returns the name of the admin token given, if it is one.
	Authenticate(token string) (actor string, ok bool)
	// KnownName says whether some admin token has this name.
	KnownName(name string) bool
	// NoteSignIn counts a sign-in's outcome in metrics and, for a refusal with
	// e.Audit, writes it to the audit.
	NoteSignIn(ctx context.Context, e SignInEvent)
	// SessionKey signs sessions and CSRF tokens; it changes when the admin
	// tokens do, which ends every session.
	SessionKey() []byte
	// EndSession records a signed-out session until it would have expired, on
	// every replica: a copy of its cookie is then refused. SessionEnded says
	// whether id was ended so.
	EndSession(ctx context.Context, id string, until time.Time) error
	SessionEnded(ctx context.Context, id string) (bool, error)
}

// Policy is one profile as the console shows it (and the admin API answers it).
type Policy = view.Policy
