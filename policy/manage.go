package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/obdcr/obdcr/hydra"
)

// Managing a registration once it exists: read it back, list them, replace it
// (RFC 7592) and remove it.

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
	payload, err := storedPayload(reg.SoftwareStatement)
	if err != nil {
		return nil, err
	}
	raw, err := ParseClaims(payload)
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

// storedPayload is the payload of a stored SSA. One stored before ParseJWS read
// headers strictly (verified then by jwx's parser, which let a repeated header
// parameter, padding or an empty crit through) is read as jwx reads it, so that
// its TPP can still manage the registration; only the claims are taken from it.
func storedPayload(ssa string) ([]byte, error) {
	j, err := ParseJWS([]byte(ssa))
	if err == nil {
		return j.Payload, nil
	}
	m, lenient := jws.Parse([]byte(ssa), jws.WithCompact())
	if lenient != nil {
		return nil, err
	}
	return m.Payload(), nil
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
			return nil, tr, hydraRefused(StepReplace, rejected)
		default:
			return nil, tr, &Unavailable{Dependency: "hydra", Err: err, Detail: "whether the update was applied is not known; send it again"}
		}
	}
	return reg, tr, nil
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
		return &Unavailable{Dependency: "hydra", Err: err, Detail: "whether the registration was deleted is not known; send the DELETE again"}
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
