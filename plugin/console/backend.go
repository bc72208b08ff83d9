package console

import (
	"context"
	"encoding/json"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// Backend is what the console asks of the server: the admin API's powers, with
// the same rules and the same audit. The console renders; the server decides.
type Backend interface {
	// Authenticate returns the name of the admin token given, if it is one.
	Authenticate(token string) (actor string, ok bool)
	// KnownName says whether some admin token has this name.
	KnownName(name string) bool
	// NoteSignIn counts a sign-in's outcome in metrics and, for a refusal with
	// e.Audit, writes it to the audit.
	NoteSignIn(c echo.Context, e SignInEvent)
	// SessionKey signs sessions and CSRF tokens; it changes when the admin
	// tokens do, which ends every session.
	SessionKey() []byte
	// EndSession records a signed-out session until it would have expired, on
	// every replica: a copy of its cookie is then refused. SessionEnded says
	// whether id was ended so.
	EndSession(ctx context.Context, id string, until time.Time) error
	SessionEnded(ctx context.Context, id string) (bool, error)
	Policies(ctx context.Context) ([]Policy, error)
	// SavePolicy applies a change as PUT /admin/policies does, audited under the
	// actor on c. A bad setting is a *FieldError.
	SavePolicy(c echo.Context, profile string, enabled *bool, settings json.RawMessage) (before, after Policy, err error)
	FindRegistrations(ctx context.Context, softwareID, orgID, clientID string) ([]Registration, error)
	Registration(ctx context.Context, clientID string) (Registration, error)
	DeleteRegistration(c echo.Context, clientID string) error
	Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error)
	DryRun(c echo.Context, jwt, certPEM []byte) (DryRun, error)
	Overview(ctx context.Context) Overview
}

// Policy is one profile as the console shows it.
type Policy struct {
	Profile  string
	Enabled  bool
	Version  int64
	Settings policy.Settings
	Rules    []string
}

// FieldError is a setting refused, with the admin API's message.
type FieldError struct {
	Field, Message string
}

func (e *FieldError) Error() string { return e.Message }

// Registration is a registration, with its Hydra client as Hydra shows it.
type Registration struct {
	ClientID, Profile, SoftwareID, OrgID, ClientName, Scope, CertThumbprint string
	IssuedAt                                                                time.Time
	RedirectURIs                                                            []string
	Metadata                                                                map[string]any
	HydraClient                                                             json.RawMessage
}

// DryRun is a dry run's report and the answer the endpoint would give.
type DryRun struct {
	Profile, Outcome string
	Rules            []policy.RuleResult
	Answer           string // the RFC 7591 error body, or "201 Created"
}

// Overview is the console's front page.
type Overview struct {
	Profiles []ProfileActivity
	Reasons  []Reason
	Health   []Health
	Findings []Finding
}

// ProfileActivity is a profile's switch and decisions.
type ProfileActivity struct {
	Name                                           string
	Enabled                                        bool
	Approved1h, Refused1h, Approved24h, Refused24h int
	Hours                                          [24][2]int // approved, refused; oldest first
}

// Reason is a refusal reason and how often it was given.
type Reason struct {
	Error, Rule string
	Count       int
}

// Health is one dependency's state.
type Health struct {
	Name, Detail string
	OK           bool
}

// Finding is one finding of the setup check (obdcr doctor).
type Finding struct {
	Severity, Check, Message, Fix string
}
