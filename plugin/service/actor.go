package service

import (
	"crypto/x509"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// Actor is who asks for an operation. The audit records it: an admin by the
// name of the admin token it proved, a TPP by its certificate's thumbprint.
// Only the types here are actors.
type Actor interface {
	// Name is the admin token's name, or the TPP certificate's thumbprint.
	Name() string
	stamp(e *store.AuditEntry)
}

// Admin is an actor who holds an admin token: only admins change policies
// and run dry runs.
type Admin interface {
	Actor
	admin()
}

// AdminToken is a caller of the admin API (and so of the CLI), by the name of
// the OBDCR_ADMIN_TOKEN it sent.
type AdminToken struct{ Token string }

// ConsoleSession is a console user, by the name of the admin token the
// session was signed in with.
type ConsoleSession struct{ Token string }

// TPP is a TPP proven by its transport certificate. Client is the
// registration it proved it manages (Authorize), nil when it registers.
type TPP struct {
	Cert   *x509.Certificate
	Client *policy.Registration
}

func (a AdminToken) Name() string     { return a.Token }
func (a ConsoleSession) Name() string { return a.Token }

func (a TPP) Name() string {
	if a.Cert == nil {
		return ""
	}
	return policy.Thumbprint(a.Cert)
}

func (a AdminToken) stamp(e *store.AuditEntry)     { e.Actor = a.Token }
func (a ConsoleSession) stamp(e *store.AuditEntry) { e.Actor = a.Token }
func (a TPP) stamp(e *store.AuditEntry)            { e.CertThumbprint = a.Name() }

func (AdminToken) admin()     {}
func (ConsoleSession) admin() {}
