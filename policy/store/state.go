package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// PolicyPoll is how often a replica checks the shared policy version. A change
// made on one replica reaches the others within it (the contract says 5 s).
const PolicyPoll = time.Second

// SharedState is policy.PolicyState over a Store. Reads come from memory, so the
// registration path never waits on the database for it; a one-row version check
// every PolicyPoll brings changes made elsewhere.
type SharedState struct {
	store    Store
	profiles map[string]*policy.Profile
	log      *slog.Logger

	mu      sync.RWMutex
	states  map[string]policy.State
	version int64
}

// ErrUnknownProfile: no profile of that name is built in.
var ErrUnknownProfile = fmt.Errorf("unknown profile")

// ErrCommitUnknown: a save's commit was sent and no answer came back; it may
// or may not have been applied.
var ErrCommitUnknown = errors.New("the commit was sent and its outcome is not known")

// NewSharedState seeds each profile's first state (its defaults, enabled if
// listed; a stored state wins) and loads them all.
func NewSharedState(ctx context.Context, st Store, profiles []*policy.Profile, enabled []string, log *slog.Logger) (*SharedState, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &SharedState{store: st, profiles: map[string]*policy.Profile{}, log: log}
	for _, p := range profiles {
		s.profiles[p.Name] = p
		on := false
		for _, e := range enabled {
			on = on || e == p.Name
		}
		settings, _ := json.Marshal(p.Defaults)
		if err := st.Seed(ctx, p.Name, StoredState{Enabled: on, Settings: settings}); err != nil {
			return nil, fmt.Errorf("store: seeding profile %s: %w", p.Name, err)
		}
	}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *SharedState) reload(ctx context.Context) error {
	stored, version, err := s.store.States(ctx)
	if err != nil {
		return err
	}
	states := make(map[string]policy.State, len(s.profiles))
	for name, p := range s.profiles {
		st, err := s.decode(p, stored[name])
		if err != nil {
			return err
		}
		states[name] = st
	}
	s.mu.Lock()
	s.states, s.version = states, version
	s.mu.Unlock()
	return nil
}

// decode lays stored settings over the profile's defaults, so settings added
// since the row was written take their default.
func (s *SharedState) decode(p *policy.Profile, st StoredState) (policy.State, error) {
	settings := p.Defaults
	if len(st.Settings) > 0 {
		merged, err := p.Defaults.Merge(st.Settings)
		if err != nil {
			return policy.State{}, fmt.Errorf("store: stored settings of %s: %w", p.Name, err)
		}
		settings = merged
	}
	// A row written by hand, or by a build with wider limits, is refused whole
	// rather than applied: the profile's limits are what the rules rely on.
	if err := settings.Validate(p.Limits); err != nil {
		return policy.State{}, fmt.Errorf("store: stored settings of %s are outside the profile's limits, not applied: %w", p.Name, err)
	}
	return policy.State{Enabled: st.Enabled, Settings: settings, Version: st.Version}, nil
}

// State implements policy.PolicyState.
func (s *SharedState) State(_ context.Context, profile string) (policy.State, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.states[profile]
	if !ok {
		return policy.State{}, ErrUnknownProfile
	}
	return st, nil
}

// Change is a policy admin's edit of one profile.
type Change struct {
	Enabled  *bool
	Settings json.RawMessage // a partial settings object
	Actor    string
	// RequestID ties the audit entry to the admin request's log line.
	RequestID string
	// IfMatch, when set, is the version the change was made against: if the
	// profile has been saved since, the change is refused with ErrStale.
	IfMatch *int64
}

// SettingsError is a change refused because a setting is out of bounds.
type SettingsError struct{ Err error }

func (e *SettingsError) Error() string { return e.Err.Error() }

// Apply validates a change, stores it with its audit entry in one transaction,
// and returns the profile's new state. A partial change is applied to the
// current stored state atomically: if another save lands in between, the change
// is laid again over that one (or, with IfMatch, refused with ErrStale).
func (s *SharedState) Apply(ctx context.Context, profile string, c Change) (policy.State, error) {
	p, ok := s.profiles[profile]
	if !ok {
		return policy.State{}, ErrUnknownProfile
	}
	for attempt := 0; ; attempt++ {
		after, err := s.apply(ctx, p, c)
		if !errors.Is(err, ErrStale) || c.IfMatch != nil || attempt == 10 {
			return after, err
		}
	}
}

func (s *SharedState) apply(ctx context.Context, p *policy.Profile, c Change) (policy.State, error) {
	// Start from the stored state, not the cache, so that two admins editing
	// different settings on two replicas do not undo each other.
	if err := s.reload(ctx); err != nil {
		return policy.State{}, err
	}
	before, _ := s.State(ctx, p.Name)
	if c.IfMatch != nil && *c.IfMatch != before.Version {
		return policy.State{}, ErrStale
	}
	after := before
	if c.Enabled != nil {
		after.Enabled = *c.Enabled
	}
	if len(c.Settings) > 0 {
		merged, err := before.Settings.Merge(c.Settings)
		if err != nil {
			return policy.State{}, &SettingsError{err}
		}
		after.Settings = merged
	}
	if err := after.Settings.Validate(p.Limits); err != nil {
		return policy.State{}, &SettingsError{err}
	}
	b, _ := json.Marshal(before)
	a, _ := json.Marshal(after)
	settings, _ := json.Marshal(after.Settings)
	entry := AuditEntry{Kind: KindPolicy, Profile: p.Name, Outcome: "changed", Actor: c.Actor, RequestID: c.RequestID, Before: b, After: a}
	if err := s.store.PutState(ctx, p.Name, StoredState{Enabled: after.Enabled, Settings: settings, Version: before.Version}, entry); err != nil {
		return policy.State{}, err
	}
	// The save is committed: a store that stops answering now does not undo it.
	// The answer is what was saved (the version is the compare-and-swap's); the
	// cache catches up at the next poll.
	if err := s.reload(ctx); err != nil {
		after.Version = before.Version + 1
		return after, nil
	}
	return s.State(ctx, p.Name)
}

// PolicyPollTimeout bounds one poll. A read on a connection cut by a partition
// returns only when TCP's retransmission, backing off, reaches the database
// again: up to 16 s after the heal for a 20 s cut. Abandoning the call closes
// that connection, and the next poll takes a fresh one, which answers as soon as
// the database can: a change is seen within PolicyPoll + PolicyPollTimeout of the heal.
const PolicyPollTimeout = 2 * time.Second

// Run keeps the cache current until ctx ends.
func (s *SharedState) Run(ctx context.Context) {
	policy.Every(ctx, PolicyPoll, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, PolicyPollTimeout)
		defer cancel()
		s.reloadIfChanged(ctx)
	})
}

// reloadIfChanged reloads the cache when the store's version has moved: one
// small query when nothing changed, which is nearly always.
func (s *SharedState) reloadIfChanged(ctx context.Context) {
	v, err := s.store.Version(ctx)
	if err != nil {
		s.log.Warn("policy version check failed; keeping the current policy", "error", err.Error())
		return
	}
	s.mu.RLock()
	same := v == s.version
	s.mu.RUnlock()
	if same {
		return
	}
	if err := s.reload(ctx); err != nil {
		s.log.Error("policy reload failed; keeping the current policy", "error", err.Error())
		return
	}
	s.log.Info("policy changed elsewhere; reloaded", "version", v)
}
