package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"time"

	"github.com/google/uuid"

	"github.com/obdcr/obdcr/hydra"
)

// Creating a registration: decide, consume the jti, create the client at Hydra, and
// undo a half-made one when Hydra's answer is unknown.

// Register decides a request and, if every rule passes, creates the Hydra client.
func (r *Registrar) Register(ctx context.Context, sub Submission) (*Registration, Trace, error) {
	ev, reg, tr, err := r.decide(ctx, sub, nil)
	if err != nil {
		return nil, tr, err
	}
	multiple := ev.Settings.MultipleRegistrations
	if multiple {
		reg.ClientID = uuid.NewString()
	} else {
		reg.ClientID = ClientIDFor(ev.Profile.Name, reg.SoftwareID)
	}
	reg.RequestJTI = ev.Claims.ID
	// ev is not used past this point, so the request's body and what the parse
	// made of it (its JWS, payload and claims) are garbage while the create waits
	// on Hydra, which is most of a registration's time, rather than held by every
	// registration in flight (TestRegisterHoldsNoParseWhileCreating). The
	// statement's claims stay: reg answers with them.
	hc, err := reg.ToHydra()
	if err != nil {
		return nil, tr, err
	}
	if err := r.noteClient(ctx, reg); err != nil {
		return nil, tr, err
	}
	if err := r.beginCreate(ctx, reg); err != nil {
		return nil, tr, err
	}
	created, err := r.Clients.Create(ctx, hc)
	if err != nil {
		r.unnoteRefused(ctx, reg.ClientID, multiple, err)
		return nil, tr, r.createFailed(ctx, reg, err)
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

// createFailed maps Hydra's answer to what is known. A refusal or a create that
// never left obdcr made nothing; any other failure (a timeout, a reset after
// sending, a 5xx) may have made the client, now or later: the answer says the
// outcome is unknown, and the reconciler settles it within the compensation window.
func (r *Registrar) createFailed(ctx context.Context, reg *Registration, err error) error {
	var rejected *hydra.RejectedError
	switch {
	case errors.Is(err, hydra.ErrConflict):
		r.endCreate(ctx, reg)
		if pending := r.earlierCreatePending(ctx, reg); pending != nil {
			return pending
		}
		return alreadyRegistered(reg.SoftwareID, reg.ClientID)
	case errors.As(err, &rejected):
		r.endCreate(ctx, reg)
		return hydraRefused(StepCreate, rejected)
	case notSent(err):
		r.endCreate(ctx, reg)
		return &Unavailable{Dependency: "hydra", Err: err}
	default:
		// A client this very request made is removed at once if Hydra answers
		// within the request's budget; the attempt stays for the reconciler, in
		// case the create reaches Hydra later still.
		_, _ = r.removeHalfMade(ctx, CreateAttempt{ClientID: reg.ClientID, Nonce: reg.RequestJTI})
		r.releaseCreate(ctx, reg)
		return OutcomeUnknown("hydra", err)
	}
}

// notSent: the create never reached Hydra (no connection could be made, or it
// waited for a place among HYDRA_ADMIN_MAX_CONNS until its time ran out), so it
// made nothing and never will.
func notSent(err error) bool {
	var op *net.OpError
	return errors.Is(err, hydra.ErrNotSent) || (errors.As(err, &op) && op.Op == "dial")
}

// alreadyRegistered refuses a second registration of a software_id: Hydra's
// conflict on create and the dry run's look-ahead give the TPP the same answer.
func alreadyRegistered(softwareID, clientID string) *Error {
	e := Refuse(InvalidClientMetadata, "software_id",
		"software %s already has a registration (client_id %s); update it with PUT /register/%s, or delete it first",
		softwareID, clientID, clientID)
	e.Rule = StepCreate
	return e
}

// hydraRefused passes on Hydra's refusal of a client every rule approved, as the
// step (create or replace) that met it.
func hydraRefused(step string, rejected *hydra.RejectedError) *Error {
	e := Refuse(InvalidClientMetadata, "", "the authorization server refused the client: %s", rejected.Message)
	e.Rule = step
	return e
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
