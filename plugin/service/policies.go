package service

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// Policies are every profile as it is now.
func (s *Service) Policies(ctx context.Context) ([]view.Policy, error) {
	out := []view.Policy{}
	for _, p := range s.d.Registrar.Profiles {
		st, err := s.d.State.State(ctx, p.Name)
		if err != nil {
			return nil, unavailable(err)
		}
		out = append(out, view.NewPolicy(p, st))
	}
	return out, nil
}

// PolicyChange is what an admin changes of a profile.
type PolicyChange struct {
	Enabled  *bool
	Settings json.RawMessage // a partial settings object; empty changes none
	// IfMatch, when set, is the version the change was made against.
	IfMatch *int64
}

// SavePolicy applies a change to a profile on every replica; the store audits
// it under the actor in the same transaction. A setting out of bounds is an
// Invalid refusal wrapping the *store.SettingsError.
func (s *Service) SavePolicy(ctx context.Context, actor Admin, profile string, c PolicyChange) (before, after view.Policy, err error) {
	p, ok := s.d.Registrar.Profile(profile)
	if !ok {
		return before, after, refuse(NotFound, "not_found", "no profile "+strconv.Quote(profile)+"; see GET /admin/policies")
	}
	old, err := s.d.State.State(ctx, profile)
	if err != nil {
		return before, after, unavailable(err)
	}
	st, err := s.d.State.Apply(ctx, profile, store.Change{Enabled: c.Enabled, Settings: c.Settings, IfMatch: c.IfMatch,
		Actor: actor.Name(), RequestID: RequestID(ctx)})
	var se *store.SettingsError
	switch {
	case errors.As(err, &se):
		return before, after, &Error{Kind: Invalid, Code: "invalid_request", Description: se.Error(), Err: se}
	case errors.Is(err, store.ErrStale):
		return before, after, refuse(Stale, "precondition_failed", "the profile was changed since that version; GET /admin/policies and apply your change again")
	case errors.Is(err, store.ErrCommitUnknown):
		return before, after, &policy.Unavailable{Dependency: "store", Err: err,
			Detail: "whether the change was saved is not known; GET /admin/policies shows the profile's version, then send the change again if it is not there"}
	case err != nil:
		return before, after, unavailable(err)
	}
	attrs := []any{"profile", profile, "actor", actor.Name(), "enabled", st.Enabled, "request_id", RequestID(ctx)}
	if _, ok := actor.(ConsoleSession); ok {
		attrs = append(attrs, "via", "console")
	}
	s.d.Log.Info("policy changed", attrs...)
	return view.NewPolicy(p, old), view.NewPolicy(p, st), nil
}
