package policy

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/obdcr/obdcr/hydra"
)

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
	Orgs      OrgIndex
	Audiences []string // OBDCR_ISSUER and OBDCR_AUDIENCES
	Now       func() time.Time
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

// Register decides a request and, if every rule passes, creates the Hydra client.
func (r *Registrar) Register(ctx context.Context, sub Submission) (*Registration, Trace, error) {
	ev, reg, tr, err := r.decide(ctx, sub, nil)
	if err != nil {
		return nil, tr, err
	}
	if ev.Settings.MultipleRegistrations {
		reg.ClientID = uuid.NewString()
	} else {
		reg.ClientID = ClientIDFor(ev.Profile.Name, reg.SoftwareID)
	}
	reg.RequestJTI = ev.Claims.ID
	hc, err := reg.ToHydra()
	if err != nil {
		return nil, tr, err
	}
	if err := r.noteClient(ctx, reg); err != nil {
		return nil, tr, err
	}
	created, err := r.Clients.Create(ctx, hc)
	if err != nil {
		r.unnoteRefused(ctx, reg.ClientID, ev.Settings.MultipleRegistrations, err)
		return nil, tr, r.createFailed(ctx, reg, ev.Claims.ID, err)
	}
	if isSecretMethod(reg.Metadata.TokenEndpointAuthMethod) {
		reg.ClientSecret = created.Secret
	}
	return reg, tr, nil
}

// decide runs a request through its profile's chain, stopping at the first
// refusal, and consumes its jti once every rule has passed. POST and PUT share it.
func (r *Registrar) decide(ctx context.Context, sub Submission, current *Registration) (*Evaluation, *Registration, Trace, error) {
	ev, tr, err := r.prepare(ctx, sub, current)
	if err != nil {
		return nil, nil, tr, err
	}
	tr.Rules, err = ev.Profile.Evaluate(ctx, ev, false)
	r.trace(ev, &tr)
	if err != nil {
		return nil, nil, tr, err
	}
	if err := r.consumeJTI(ctx, ev); err != nil {
		return nil, nil, tr, err
	}
	return ev, r.approved(ev), tr, nil
}

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

// createFailed maps Hydra's answer, and makes sure nothing is left half-created:
// when the outcome is unknown (a timeout), a client this very request made is removed.
func (r *Registrar) createFailed(ctx context.Context, reg *Registration, nonce string, err error) error {
	var rejected *hydra.RejectedError
	var down *hydra.UnavailableError
	switch {
	case errors.Is(err, hydra.ErrConflict):
		e := Refuse(InvalidClientMetadata, "software_id",
			"software %s already has a registration (client_id %s); update it with PUT /register/%s, or delete it first",
			reg.SoftwareID, reg.ClientID, reg.ClientID)
		e.Rule = StepCreate
		return e
	case errors.As(err, &rejected):
		e := Refuse(InvalidClientMetadata, "", "the authorization server refused the client: %s", rejected.Message)
		e.Rule = StepCreate
		return e
	case errors.As(err, &down):
		r.compensate(ctx, reg.ClientID, nonce)
		return &Unavailable{Dependency: "hydra", Timeout: down.Timeout, Err: err}
	default:
		r.compensate(ctx, reg.ClientID, nonce)
		return &Unavailable{Dependency: "hydra", Err: err}
	}
}

func (r *Registrar) compensate(ctx context.Context, clientID, nonce string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	c, err := r.Clients.Get(cctx, clientID)
	if err != nil || nonceOf(c.Metadata) != nonce {
		return
	}
	_ = r.Clients.Delete(cctx, clientID)
}

func nonceOf(meta json.RawMessage) string {
	var m struct {
		Nonce string `json:"request_jti"`
	}
	_ = json.Unmarshal(meta, &m)
	return m.Nonce
}

func isSecretMethod(m string) bool {
	return m == "client_secret_basic" || m == "client_secret_post"
}

// DryRunReport is every rule's verdict for a request; nothing is created or consumed.
type DryRunReport struct {
	Profile string       `json:"profile,omitempty"`
	Outcome string       `json:"outcome"`
	Error   *Error       `json:"-"`
	Rules   []RuleResult `json:"rules"`
}

// DryRun runs selection and the whole chain without stopping at the first refusal.
func (r *Registrar) DryRun(ctx context.Context, sub Submission) (DryRunReport, Trace, error) {
	ev, tr, err := r.prepare(ctx, sub, nil)
	rep := DryRunReport{Profile: tr.Profile, Outcome: "refused"}
	if err != nil {
		e, ok := AsError(err)
		if !ok {
			return rep, tr, err
		}
		rep.Error = e
		rep.Rules = []RuleResult{{Rule: StepSelect, Verdict: Fail, Message: e.Description}}
		tr.Rules = rep.Rules
		return rep, tr, nil
	}
	ev.DryRun = true
	results, err := ev.Profile.Evaluate(ctx, ev, true)
	r.trace(ev, &tr)
	rep.Rules = append([]RuleResult{{Rule: StepSelect, Verdict: Pass, Message: "profile " + ev.Profile.Name}}, results...)
	tr.Rules = rep.Rules
	if err != nil {
		e, ok := AsError(err)
		if !ok {
			return rep, tr, err
		}
		rep.Error = e
		return rep, tr, nil
	}
	// The last thing a real registration can meet: the software's registration
	// already exists. Looking is read-only.
	step, e := r.duplicateStep(ctx, ev)
	rep.Rules = append(rep.Rules, step)
	tr.Rules = rep.Rules
	if e != nil {
		rep.Error = e
		return rep, tr, nil
	}
	rep.Outcome = "approved"
	return rep, tr, nil
}

func (r *Registrar) duplicateStep(ctx context.Context, ev *Evaluation) (RuleResult, *Error) {
	if ev.Settings.MultipleRegistrations {
		return RuleResult{Rule: StepCreate, Verdict: Pass, Message: "several registrations per software_id are allowed"}, nil
	}
	if r.Clients == nil {
		return RuleResult{Rule: StepCreate, Verdict: Skipped, Message: "skipped: offline, Hydra not asked whether the software is registered already"}, nil
	}
	id := ClientIDFor(ev.Profile.Name, ev.Statement.SoftwareID)
	if _, err := r.Clients.Get(ctx, id); err == nil {
		e := Refuse(InvalidClientMetadata, "software_id", "software %s already has a registration (client_id %s); update it with PUT /register/%s, or delete it first",
			ev.Statement.SoftwareID, id, id)
		e.Rule = StepCreate
		return RuleResult{Rule: StepCreate, Verdict: Fail, Message: e.Description}, e
	}
	return RuleResult{Rule: StepCreate, Verdict: Pass}, nil
}

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
		Certificate: sub.Certificate, Current: current,
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

// ReplayKey is the replay-cache key of a request: jti is unique per issuer. It is
// hashed so that any jti, however long or odd, makes a fixed-size key every
// store can hold.
func ReplayKey(profile, iss, jti string) string {
	sum := sha256.Sum256([]byte(profile + "\x00" + iss + "\x00" + jti))
	return hex.EncodeToString(sum[:])
}

func (r *Registrar) consumeJTI(ctx context.Context, ev *Evaluation) (err error) {
	ctx, span := startSpan(ctx, "store.replay")
	defer func() { endSpan(span, err) }()
	until := ev.Now.Add(time.Duration(ev.Settings.ClockSkew))
	if ev.Claims.ExpiresAt != nil {
		until = ev.Claims.ExpiresAt.Add(time.Duration(ev.Settings.ClockSkew))
	}
	if min := ev.Now.Add(time.Duration(ev.Settings.RequestMaxAge)); until.Before(min) {
		until = min
	}
	fresh, err := r.Replay.Claim(ctx, ReplayKey(ev.Profile.Name, ev.Claims.Issuer, ev.Claims.ID), until)
	if err != nil {
		return &Unavailable{Dependency: "store", Err: err}
	}
	if !fresh {
		e := Refuse(InvalidClientMetadata, "jti", "%q has been used already; every request needs a new jti", ev.Claims.ID)
		e.Rule = StepReplay
		return e
	}
	return nil
}

func (r *Registrar) approved(ev *Evaluation) *Registration {
	reg := &Registration{
		IssuedAt: ev.Now.UTC().Truncate(time.Second), Profile: ev.Profile.Name,
		SoftwareID: ev.Statement.SoftwareID, OrgID: ev.Statement.OrgID,
		SoftwareStatement: ev.Claims.SoftwareStatement, Statement: ev.Statement,
		Metadata: ev.Granted,
	}
	// What the directory vetted wins over what the request says: keys, names, links.
	st, m := ev.Statement, &reg.Metadata
	m.SoftwareID, m.JWKSURI = st.SoftwareID, st.JWKSURI
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&m.ClientName, st.ClientName}, {&m.ClientURI, st.ClientURI}, {&m.LogoURI, st.LogoURI},
		{&m.PolicyURI, st.PolicyURI}, {&m.TosURI, st.TosURI},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	if ev.Certificate != nil {
		reg.CertThumbprint = Thumbprint(ev.Certificate)
	}
	return reg
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

// Deregister removes a client and every token it holds. Tokens go first: a
// client deleted with tokens still live would leave them usable until expiry.
func (r *Registrar) Deregister(ctx context.Context, clientID string) error {
	if err := r.Clients.RevokeTokens(ctx, clientID); err != nil && !errors.Is(err, hydra.ErrNotFound) {
		return &Unavailable{Dependency: "hydra", Err: err}
	}
	if err := r.Clients.Delete(ctx, clientID); err != nil {
		if errors.Is(err, hydra.ErrNotFound) {
			return ErrNoRegistration
		}
		return &Unavailable{Dependency: "hydra", Err: err}
	}
	r.forgetClient(ctx, clientID)
	return nil
}

// RemoveSoftware removes the registration of a software_id under profile, if any,
// and returns its client_id ("" when there was none).
func (r *Registrar) RemoveSoftware(ctx context.Context, profile, softwareID string) (string, error) {
	id := ClientIDFor(profile, softwareID)
	if err := r.Deregister(ctx, id); err != nil {
		if errors.Is(err, ErrNoRegistration) {
			return "", nil
		}
		return "", err
	}
	return id, nil
}

// ErrNoRegistration: no client obdcr registered has that id. Management calls
// answer it exactly as a bad token, so that client ids cannot be probed.
var ErrNoRegistration = errors.New("no such registration")

// Load reads a registration back from Hydra.
func (r *Registrar) Load(ctx context.Context, clientID string) (*Registration, error) {
	c, err := r.Clients.Get(ctx, clientID)
	if errors.Is(err, hydra.ErrNotFound) {
		return nil, ErrNoRegistration
	}
	if err != nil {
		return nil, &Unavailable{Dependency: "hydra", Err: err}
	}
	reg, err := FromHydra(c, r.decodeStored)
	if err != nil {
		return nil, ErrNoRegistration
	}
	return reg, nil
}

// decodeStored re-reads the SSA kept with a registration. It was verified when the
// client registered; here it only supplies the claims the answer repeats.
func (r *Registrar) decodeStored(reg *Registration) (*SoftwareStatement, error) {
	p, ok := r.Profile(reg.Profile)
	if !ok {
		return nil, fmt.Errorf("unknown profile %q", reg.Profile)
	}
	j, err := ParseJWS([]byte(reg.SoftwareStatement))
	if err != nil {
		return nil, err
	}
	raw, err := ParseClaims(j.Payload)
	if err != nil {
		return nil, err
	}
	st, err := p.DecodeStatement(raw)
	if err != nil {
		return nil, err
	}
	st.Raw = reg.SoftwareStatement
	return st, nil
}

// Update replaces a registration with a new request checked by the same rules
// (RFC 7592 §2.2). client_id and client_id_issued_at stay; on any refusal or
// failure the registration stays exactly as it was.
func (r *Registrar) Update(ctx context.Context, current *Registration, sub Submission) (*Registration, Trace, error) {
	_, reg, tr, err := r.decide(ctx, sub, current)
	if err != nil {
		return nil, tr, err
	}
	reg.ClientID, reg.IssuedAt = current.ClientID, current.IssuedAt
	hc, err := reg.ToHydra()
	if err != nil {
		return nil, tr, err
	}
	if err := r.noteClient(ctx, reg); err != nil {
		return nil, tr, err
	}
	if _, err := r.Clients.Replace(ctx, hc); err != nil {
		var rejected *hydra.RejectedError
		switch {
		case errors.Is(err, hydra.ErrNotFound):
			return nil, tr, ErrNoRegistration
		case errors.As(err, &rejected):
			e := Refuse(InvalidClientMetadata, "", "the authorization server refused the client: %s", rejected.Message)
			e.Rule = StepReplace
			return nil, tr, e
		default:
			return nil, tr, &Unavailable{Dependency: "hydra", Err: err}
		}
	}
	return reg, tr, nil
}

// Find lists registrations for admins: those of a software_id (its single
// registration under each profile), or all of an organisation's. With both, an
// organisation's registrations of that software (as when several are allowed).
func (r *Registrar) Find(ctx context.Context, softwareID, orgID string) ([]*Registration, error) {
	var out []*Registration
	if orgID != "" {
		clients, err := r.orgClients(ctx, orgID)
		if err != nil {
			return nil, err
		}
		for _, c := range clients {
			reg, err := FromHydra(c, r.decodeStored)
			if err != nil || (softwareID != "" && reg.SoftwareID != softwareID) {
				continue
			}
			out = append(out, reg)
		}
		return out, nil
	}
	for _, p := range r.Profiles {
		reg, err := r.Load(ctx, ClientIDFor(p.Name, softwareID))
		if errors.Is(err, ErrNoRegistration) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, reg)
	}
	return out, nil
}
