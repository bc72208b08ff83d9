package policy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/obdcr/obdcr/hydra"
)

// Creates in flight. A create whose answer is lost (a timeout, a connection reset
// after the request went out, the store failing after Hydra created the client)
// may have made a client, now or later: Hydra may still be working on the
// request, or receive it late. So every create is written to the store before it
// is sent, as an attempt: the client id and the request's jti, which the client
// carries in its metadata (request_jti). The attempt is struck off once the
// registration is complete (created at Hydra and audited), or known not to have
// been made. An attempt that is still there once its request has ended is
// half-made: the reconciler, on whichever replica claims it, removes the client
// carrying that jti, looking again until the compensation window has passed, so
// that a create arriving late at Hydra is removed too. A later create of the same
// software carries another jti: it is never touched.

// CompensationWindow bounds how long a half-made registration lasts: within it,
// its client is removed (or was never made), and the TPP's retry succeeds.
const CompensationWindow = 60 * time.Second

const (
	// createSettle is how old an attempt is before the reconciler judges it: past
	// every request's budget (10 s) and Hydra call's timeout (10 s), so that its
	// own request has ended, one way or the other.
	createSettle = 15 * time.Second
	// createLease is how long the replica that claimed an attempt holds it; a
	// replica that dies while judging it leaves it to another after this.
	createLease = 10 * time.Second
	// createBatch bounds the attempts one pass judges.
	createBatch = 100
	// createHold is how long the request that began an attempt holds it: no
	// request outlives obdcr's request budget (10 s). A held attempt may be a
	// create still on its way, so a concurrent registration of the same
	// software is simply the second one; a request that ends not knowing its
	// outcome lets go of its attempt at once.
	createHold = 10 * time.Second
)

// CreateAttempt is one create sent (or about to be sent) to Hydra.
type CreateAttempt struct {
	ID         int64     `json:"-"`
	ClientID   string    `json:"client_id"`
	Nonce      string    `json:"request_jti"` // the request's jti, kept in the client's metadata
	Profile    string    `json:"profile"`
	SoftwareID string    `json:"software_id"`
	OrgID      string    `json:"org_id"`
	NotedAt    time.Time `json:"noted_at"`
	// HeldUntil is when the request that began it lets go of it, at the latest.
	HeldUntil time.Time `json:"-"`
}

// CreateLog is where attempts are kept: the shared store, so that any replica
// can repair what another left half-made.
type CreateLog interface {
	// BeginCreate records an attempt before its create is sent.
	BeginCreate(ctx context.Context, a CreateAttempt) error
	// EndCreate strikes off an attempt: its registration is complete, or was not made.
	EndCreate(ctx context.Context, clientID, nonce string) error
	// ClaimCreates claims at most limit attempts noted before t that no replica
	// holds, for lease; the store decides between replicas claiming at once.
	ClaimCreates(ctx context.Context, before time.Time, lease time.Duration, limit int) ([]CreateAttempt, error)
	// DropCreate strikes off an attempt the reconciler has settled.
	DropCreate(ctx context.Context, id int64) error
	// PendingCreates lists at most limit attempts, oldest first.
	PendingCreates(ctx context.Context, limit int) ([]CreateAttempt, error)
	// ReleaseCreate lets go of an attempt whose request ended without knowing
	// whether it made a client.
	ReleaseCreate(ctx context.Context, clientID, nonce string) error
	// OtherCreates: is an attempt for clientID with another jti open, and held
	// by no request (a half-made registration, not a create on its way)?
	OtherCreates(ctx context.Context, clientID, nonce string) (bool, error)
}

// beginCreate records a registration's create before it is sent.
func (r *Registrar) beginCreate(ctx context.Context, reg *Registration) error {
	if r.Creates == nil {
		return nil
	}
	a := CreateAttempt{ClientID: reg.ClientID, Nonce: reg.RequestJTI, Profile: reg.Profile, SoftwareID: reg.SoftwareID, OrgID: reg.OrgID,
		HeldUntil: r.now().Add(createHold)}
	if err := r.Creates.BeginCreate(ctx, a); err != nil {
		return &Unavailable{Dependency: "store", Err: err}
	}
	return nil
}

// releaseCreate lets go of an attempt whose outcome the request cannot know.
// Failing only leaves it held until createHold.
func (r *Registrar) releaseCreate(ctx context.Context, reg *Registration) {
	if r.Creates != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = r.Creates.ReleaseCreate(ctx, reg.ClientID, reg.RequestJTI)
	}
}

// endCreate strikes off an attempt known not to have made a client. Failing
// only leaves it to the reconciler, which finds no client.
func (r *Registrar) endCreate(ctx context.Context, reg *Registration) {
	if r.Creates != nil {
		_ = r.Creates.EndCreate(ctx, reg.ClientID, reg.RequestJTI)
	}
}

// Complete marks a registration complete once it is created and audited: only
// then may it be answered 201. Failing, its outcome is unknown to the TPP, and
// the reconciler removes the client within the compensation window.
func (r *Registrar) Complete(ctx context.Context, reg *Registration) error {
	if r.Creates == nil {
		return nil
	}
	if err := r.Creates.EndCreate(ctx, reg.ClientID, reg.RequestJTI); err != nil {
		return OutcomeUnknown("store", err)
	}
	return nil
}

// OutcomeUnknown is a registration whose create may have made a client: the
// answer says so, and when it will be settled, never that nothing was registered.
func OutcomeUnknown(dependency string, err error) *Unavailable {
	var down *hydra.UnavailableError
	return &Unavailable{Dependency: dependency, Timeout: errors.As(err, &down) && down.Timeout, Err: err,
		Detail: fmt.Sprintf("whether the client was registered is not known: a half-made registration is removed within %d s (the compensation window), then send a new registration request",
			int(CompensationWindow/time.Second))}
}

// earlierCreatePending answers a create Hydra refused as a duplicate while an
// earlier create of the same client id is still unsettled: that client may be a
// half-made registration, which the reconciler removes; the TPP can then retry.
func (r *Registrar) earlierCreatePending(ctx context.Context, reg *Registration) error {
	if r.Creates == nil {
		return nil
	}
	other, err := r.Creates.OtherCreates(ctx, reg.ClientID, reg.RequestJTI)
	if err != nil || !other {
		return nil
	}
	return &Unavailable{Dependency: "hydra", Err: errors.New("an earlier create of this client is unsettled"),
		Detail: fmt.Sprintf("an earlier registration of software %s did not complete; it is completed or removed within %d s (the compensation window), then send a new registration request",
			reg.SoftwareID, int(CompensationWindow/time.Second))}
}

// Reconciled is what one pass of ReconcileCreates did.
type Reconciled struct {
	Judged  int
	Removed []CreateAttempt // half-made registrations whose client was removed
	Settled int             // attempts struck off, past the compensation window
}

// ReconcileCreates judges the attempts past createSettle that no replica holds:
// a client at Hydra carrying the attempt's jti was never completed, and is
// removed with its tokens. An attempt is struck off only once it is older than
// the compensation window, so a create reaching Hydra late is removed too. An
// attempt Hydra cannot be asked about stays, and is judged again next pass.
func (r *Registrar) ReconcileCreates(ctx context.Context) (Reconciled, error) {
	var out Reconciled
	if r.Creates == nil {
		return out, nil
	}
	now := r.now()
	due, err := r.Creates.ClaimCreates(ctx, now.Add(-createSettle), createLease, createBatch)
	if err != nil {
		return out, fmt.Errorf("half-made registrations: %w", err)
	}
	var errs []error
	for _, a := range due {
		out.Judged++
		removed, err := r.removeHalfMade(ctx, a)
		if err != nil {
			errs = append(errs, fmt.Errorf("half-made registration %s: %w", a.ClientID, err))
			continue
		}
		if removed {
			out.Removed = append(out.Removed, a)
		}
		if a.NotedAt.Before(now.Add(-CompensationWindow)) {
			if err := r.Creates.DropCreate(ctx, a.ID); err != nil {
				errs = append(errs, err)
				continue
			}
			out.Settled++
		}
	}
	return out, errors.Join(errs...)
}

// removeHalfMade removes the attempt's client if Hydra has it and it carries the
// attempt's jti; a client with another jti is another request's.
func (r *Registrar) removeHalfMade(ctx context.Context, a CreateAttempt) (bool, error) {
	c, err := r.Clients.Get(ctx, a.ClientID)
	if errors.Is(err, hydra.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if nonceOf(c.Metadata) != a.Nonce {
		return false, nil
	}
	if err := r.Clients.RevokeTokens(ctx, a.ClientID); err != nil && !errors.Is(err, hydra.ErrNotFound) {
		return false, err
	}
	if err := r.Clients.Delete(ctx, a.ClientID); err != nil && !errors.Is(err, hydra.ErrNotFound) {
		return false, err
	}
	return true, nil
}
