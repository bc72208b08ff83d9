package service

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// ManagementCall is what a TPP's call to /register/{client_id} (RFC 7592)
// brought to prove itself.
type ManagementCall struct {
	Op string // get, update or delete
	// Cert is the transport certificate; nil when none was proved, and then
	// CertProblem says why.
	Cert        *x509.Certificate
	CertProblem string
	ClientID    string
	// Token is the bearer access token; "" when none was sent as Bearer.
	Token string
	// Binding is the x5t#S256 the FAPI edge bound Token to (RFC 8705 §3); ""
	// for a token it did not issue, which must then come over the registered
	// certificate.
	Binding string
}

// unauthorized is RFC 6750's 401. Every way a management call can fail to prove
// itself gives the same status, so that a caller learns nothing about client ids
// that are not its own; the description says what to fix.
func unauthorized(desc string) *Error {
	e := refuse(Unauthorized, "invalid_token", desc)
	e.Challenge = `Bearer error="invalid_token", error_description="` + strings.ReplaceAll(desc, `"`, "'") + `"`
	return e
}

func insufficientScope(scope string) *Error {
	e := refuse(Forbidden, "insufficient_scope", "the token lacks the scope "+scope)
	e.Challenge = `Bearer error="insufficient_scope", scope="` + scope + `"`
	return e
}

// Authorize proves a management call (OBIE DCR v3.3, CDS): a client_credentials
// access token Hydra issued to exactly this client, presented over the TLS
// certificate the token is bound to (the FAPI edge's tokens, RFC 8705), or, for
// a token Hydra issued without the edge, the certificate the client registered
// with.
//
// The order is what the caller has proved so far: first a certificate from a
// trusted CA (a caller without one is counted, never audited: it could be
// anyone, as often as it likes), then a client_id of the shape obdcr issues,
// then the token. Every refusal is counted, and audited within its
// certificate's budget.
func (s *Service) Authorize(ctx context.Context, call ManagementCall) (TPP, error) {
	client, err := s.authorize(ctx, call)
	if err == nil {
		return TPP{Cert: call.Cert, Client: client}, nil
	}
	s.d.Metrics.Management.WithLabelValues("", call.Op, "refused").Inc()
	var se *Error
	if errors.As(err, &se) && se.unproven {
		return TPP{}, err
	}
	code, desc := "", err.Error()
	if se != nil {
		code, desc = se.Code, se.Description
	}
	e := store.AuditEntry{Kind: store.KindManagement, ClaimedClientID: call.ClientID, Outcome: "refused", Error: code,
		Description: call.Op + ": " + desc}
	TPP{Cert: call.Cert}.stamp(&e)
	if aerr := s.audit(ctx, e); aerr != nil {
		return TPP{}, aerr
	}
	return TPP{}, err
}

func (s *Service) authorize(ctx context.Context, call ManagementCall) (*policy.Registration, error) {
	if call.Cert == nil {
		e := unauthorized(call.CertProblem)
		e.unproven = true
		return nil, e
	}
	if !issuedShape(call.ClientID) {
		return nil, unauthorized("the client_id is not one this server issues")
	}
	if call.Token == "" {
		e := refuse(Unauthorized, "invalid_token", "send the client's access token as Authorization: Bearer")
		e.Challenge = `Bearer realm="obdcr"`
		return nil, e
	}
	it, err := s.d.Hydra.Introspect(ctx, call.Token)
	if err != nil {
		return nil, &policy.Unavailable{Dependency: "hydra", Err: err}
	}
	switch {
	case !it.Active:
		return nil, unauthorized("the access token is not active: expired, revoked or unknown")
	case it.ClientID != call.ClientID || it.Subject != call.ClientID:
		// sub = client_id only for client_credentials tokens: a token a user
		// granted (CDR data) must not manage the registration.
		return nil, unauthorized("the access token was not issued to this client by the client_credentials grant")
	case it.TokenUse != "" && it.TokenUse != "access_token":
		return nil, unauthorized("the token is not an access token")
	}
	reg, err := s.d.Registrar.Load(ctx, call.ClientID)
	if errors.Is(err, policy.ErrNoRegistration) {
		return nil, unauthorized("the access token was not issued to this client by the client_credentials grant")
	}
	if err != nil {
		return nil, err
	}
	if call.Binding != "" {
		// A bound token proves the certificate it was issued over, which after
		// a rotation is no longer the one registered.
		if subtle.ConstantTimeCompare([]byte(policy.Thumbprint(call.Cert)), []byte(call.Binding)) != 1 {
			return nil, unauthorized("the access token is bound to another TLS client certificate (RFC 8705)")
		}
	} else if subtle.ConstantTimeCompare([]byte(policy.Thumbprint(call.Cert)), []byte(reg.CertThumbprint)) != 1 {
		return nil, unauthorized("the TLS client certificate is not the one this client registered with")
	}
	if p, ok := s.d.Registrar.Profile(reg.Profile); ok && p.ManagementScope != "" && !slices.Contains(it.Scope, p.ManagementScope) {
		return nil, insufficientScope(p.ManagementScope)
	}
	return reg, nil
}

// issuedShape: every client_id obdcr issues is a UUID in its canonical form.
func issuedShape(id string) bool {
	if len(id) != 36 {
		return false
	}
	_, err := uuid.Parse(id)
	return err == nil
}

// Read is a TPP reading its own registration (RFC 7592 §2.1). Counted, not
// audited: a read changes nothing, and a client may read its own registration
// as often as the rate limit lets it; one entry each would let it fill the audit.
func (s *Service) Read(actor TPP) *policy.Registration {
	s.d.Metrics.Management.WithLabelValues(actor.Client.Profile, "get", "approved").Inc()
	return actor.Client
}

// Delete removes a registration and every token its client holds: a TPP its
// own (RFC 7592 §2.3, if its profile allows it), an admin any. It is audited
// before it happens, as a deletion must never be without its entry; if the
// removal then fails, a second entry says so. why is the audit's description
// of an admin's deletion.
func (s *Service) Delete(ctx context.Context, actor Actor, clientID, why string) error {
	reg, err := s.deletable(ctx, actor, clientID)
	if err != nil {
		return err
	}
	e := store.AuditEntry{Kind: store.KindManagement, Profile: reg.Profile, SoftwareID: reg.SoftwareID, OrgID: reg.OrgID,
		ClientID: reg.ClientID, Outcome: "deleted"}
	actor.stamp(&e)
	if _, tpp := actor.(TPP); tpp {
		s.d.Metrics.Management.WithLabelValues(reg.Profile, "delete", "approved").Inc()
	} else {
		e.Description = why
	}
	if err := s.audit(ctx, e); err != nil {
		return err
	}
	err = s.d.Registrar.Deregister(ctx, reg.ClientID)
	if err == nil || errors.Is(err, policy.ErrNoRegistration) {
		return nil
	}
	e.ID, e.Time, e.Outcome, e.Description = 0, s.d.Now().UTC(), "failed", "deletion failed: "+err.Error()
	_ = s.audit(ctx, e)
	return err
}

// deletable is the registration actor may delete.
func (s *Service) deletable(ctx context.Context, actor Actor, clientID string) (*policy.Registration, error) {
	if tpp, ok := actor.(TPP); ok {
		if tpp.Client == nil || tpp.Client.ClientID != clientID {
			return nil, unauthorized("the client_id is not the one the access token was issued to")
		}
		st, err := s.d.Registrar.State.State(ctx, tpp.Client.Profile)
		if err != nil {
			return nil, unavailable(err)
		}
		if !st.Settings.AllowDelete {
			return nil, refuse(NotAllowed, "method_not_allowed", "this server does not let "+tpp.Client.Profile+" clients delete their registration; ask the bank")
		}
		return tpp.Client, nil
	}
	reg, err := s.d.Registrar.Load(ctx, clientID)
	if errors.Is(err, policy.ErrNoRegistration) {
		return nil, &Error{Kind: NotFound, Code: "not_found", Description: "no registration with that client_id", Err: err}
	}
	return reg, err
}
