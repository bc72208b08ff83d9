package policy

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/obdcr/obdcr/hydra"
)

// The registrar's parts every operation shares: its dependencies, what a request
// carries and leaves behind, and picking the profile that decides it. Creating is
// in register.go, the dry run in dryrun.go, reading and changing a registration in
// manage.go.

// requestClaims decodes registration requests; built once, never changed.
var requestClaims = NewClaimSet[RequestClaims]()

// ClientStore is what the registrar needs of Hydra; *hydra.Admin implements it and
// unit tests fake it.
type ClientStore interface {
	Create(ctx context.Context, c hydra.Client) (hydra.Client, error)
	Get(ctx context.Context, id string) (hydra.Client, error)
	Replace(ctx context.Context, c hydra.Client) (hydra.Client, error)
	Delete(ctx context.Context, id string) error
	// RevokeTokens removes every token of the client.
	RevokeTokens(ctx context.Context, clientID string) error
	// ListByOwner lists the clients of an organisation (obdcr sets owner to org_id).
	ListByOwner(ctx context.Context, owner string) ([]hydra.Client, error)
}

// Registrar decides registration requests and carries out the approved ones.
type Registrar struct {
	Profiles []*Profile
	State    PolicyState
	Clients  ClientStore
	Replay   ReplayCache
	// Orgs, when set, answers org_id lookups without Hydra's scan of every client.
	Orgs OrgIndex
	// Creates, when set, keeps creates in flight, so that a half-made
	// registration is removed (ReconcileCreates).
	Creates   CreateLog
	Audiences []string // OBDCR_ISSUER and OBDCR_AUDIENCES
	// EdgeAlgs, when set, say the FAPI edge is on and signs authorization
	// responses with these algorithms: PAR and JARM are then provided.
	EdgeAlgs []string
	Now      func() time.Time
}

// Submission is a registration request as it arrived.
type Submission struct {
	JWT         []byte
	Certificate *x509.Certificate
}

// Trace is what is known of a request however far it got: for the audit and metrics.
type Trace struct {
	Profile    string
	SoftwareID string
	OrgID      string
	// Verified: SoftwareID and OrgID come from an SSA whose signature checked;
	// before that they are only what the request claims.
	Verified bool
	Rules    []RuleResult
}

// Rule names of the steps the registrar takes around a profile's chain.
const (
	StepSelect  = "profile.select"
	StepReplay  = "request.jti"
	StepCreate  = "hydra.create"
	StepReplace = "hydra.replace"
)

// now is the registrar's clock: Now when set (tests), else the time.
func (r *Registrar) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// ClientIDFor is the client_id of a software_id's single registration. Making it a
// function of the software_id lets Hydra's unique client_id enforce "one
// registration per software_id" atomically, across every replica, with no lock.
func ClientIDFor(profile, softwareID string) string {
	return uuid.NewSHA1(clientIDSpace, []byte(profile+"\x00"+softwareID)).String()
}

var clientIDSpace = uuid.MustParse("5f0b7d0e-4c1a-4c55-9a38-0b1dcb0e7a11")

// prepare parses the request far enough to pick the profile: the SSA's iss decides,
// read before any signature is checked, since it tells which keys to check with.
func (r *Registrar) prepare(ctx context.Context, sub Submission, current *Registration) (*Evaluation, Trace, error) {
	var tr Trace
	fail := func(e *Error) (*Evaluation, Trace, error) {
		e.Rule = StepSelect
		return nil, tr, e
	}
	req, err := ParseJWS(sub.JWT)
	if err != nil {
		return fail(Refuse(InvalidClientMetadata, "", "the request JWT %v", err))
	}
	var claims RequestClaims
	rawReq, err := ParseClaims(req.Payload)
	if err == nil {
		err = requestClaims.Decode(rawReq, &claims)
	}
	if err != nil {
		return fail(Refuse(InvalidClientMetadata, ClaimOf(err), "the request JWT %v", trimClaim(err)))
	}
	if claims.SoftwareStatement == "" {
		return fail(Refuse(InvalidSoftwareStatement, "software_statement", "is required"))
	}
	ssa, err := ParseJWS(stringBytes(rawReq["software_statement"], claims.SoftwareStatement))
	if err != nil {
		return fail(Refuse(InvalidSoftwareStatement, "software_statement", "%v", err))
	}
	ssaClaims, err := ParseClaims(ssa.Payload)
	if err != nil {
		claim := "software_statement"
		if c := ClaimOf(err); c != "" {
			claim += "." + c
		}
		return fail(Refuse(InvalidSoftwareStatement, claim, "%v", trimClaim(err)))
	}
	peek := struct{ Issuer, SoftwareID, OrgID string }{ssaClaims.String("iss"), ssaClaims.String("software_id"), ssaClaims.String("org_id")}
	var p *Profile
	for _, cand := range r.Profiles {
		if cand.Issuer == peek.Issuer {
			p = cand
		}
	}
	if p == nil {
		return fail(Refuse(InvalidSoftwareStatement, "software_statement", "iss %q is not a directory this server trusts", peek.Issuer))
	}
	// Claimed, not yet verified: the audit of an early refusal still says whose it was.
	tr.Profile, tr.SoftwareID, tr.OrgID = p.Name, peek.SoftwareID, peek.OrgID
	if current != nil && current.Profile != p.Name {
		return fail(Refuse(InvalidSoftwareStatement, "software_statement", "is issued by %q, but this client is registered under the %s profile", peek.Issuer, current.Profile))
	}
	st, err := r.State.State(ctx, p.Name)
	if err != nil {
		return nil, tr, &Unavailable{Dependency: "store", Err: err}
	}
	// Switching a profile off stops new registrations; existing clients can still be managed.
	if !st.Enabled && current == nil {
		return fail(Refuse(UnapprovedSoftwareStatement, "software_statement", "registrations under the %s profile are switched off on this server", p.Name))
	}
	ev := &Evaluation{
		Now: r.now(), Profile: p, Settings: st.Settings, Audiences: r.Audiences,
		Certificate: sub.Certificate, Current: current, EdgeAlgs: r.EdgeAlgs,
		Request: req, Claims: &claims, StatementJWS: ssa, StatementClaims: ssaClaims, Granted: claims.ClientMetadata,
	}
	return ev, tr, nil
}

// stringBytes is a string claim's bytes without a copy when its JSON form has no
// escapes (a JWT never has), or else the decoded string's.
func stringBytes(raw json.RawMessage, decoded string) []byte {
	if len(raw) == len(decoded)+2 {
		return raw[1 : len(raw)-1]
	}
	return []byte(decoded)
}

func trimClaim(err error) string {
	var ce *claimError
	if errors.As(err, &ce) {
		return "claim " + ce.claim + " " + ce.msg
	}
	return err.Error()
}

func (r *Registrar) trace(ev *Evaluation, tr *Trace) {
	if ev.Statement != nil {
		tr.SoftwareID, tr.OrgID, tr.Verified = ev.Statement.SoftwareID, ev.Statement.OrgID, true
	}
}

// Profile returns the profile named name.
func (r *Registrar) Profile(name string) (*Profile, bool) {
	for _, p := range r.Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}

// Response is the RFC 7591 answer for reg, shaped by its profile.
func (r *Registrar) Response(reg *Registration) (map[string]any, error) {
	p, ok := r.Profile(reg.Profile)
	if !ok {
		return nil, fmt.Errorf("registration %s names unknown profile %q", reg.ClientID, reg.Profile)
	}
	return p.Respond(reg), nil
}
