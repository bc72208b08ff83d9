package policy

import (
	"context"
	"fmt"
	"sync"
)

// State is a profile's runtime switch and settings.
type State struct {
	Enabled  bool     `json:"enabled"`
	Settings Settings `json:"settings"`
	// Version counts the saves of a shared state; GET /admin/policies shows it
	// and If-Match names it.
	Version int64 `json:"-"`
}

// PolicyState is where profile state lives: in memory for one process, or in a
// store that every replica reads.
type PolicyState interface {
	State(ctx context.Context, profile string) (State, error)
}

// MemoryState keeps profile state in this process.
type MemoryState struct {
	mu     sync.RWMutex
	states map[string]State
}

// NewMemoryState starts every profile with its defaults, enabled if listed.
func NewMemoryState(profiles []*Profile, enabled []string) *MemoryState {
	m := &MemoryState{states: map[string]State{}}
	for _, p := range profiles {
		on := false
		for _, e := range enabled {
			on = on || e == p.Name
		}
		m.states[p.Name] = State{Enabled: on, Settings: p.Defaults.clone()}
	}
	return m
}

func (m *MemoryState) State(_ context.Context, profile string) (State, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.states[profile]
	if !ok {
		return State{}, fmt.Errorf("no profile %q", profile)
	}
	s.Settings = s.Settings.clone()
	return s, nil
}

// Put replaces a profile's state.
func (m *MemoryState) Put(_ context.Context, profile string, s State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.states[profile]; !ok {
		return fmt.Errorf("no profile %q", profile)
	}
	m.states[profile] = s
	return nil
}
