package store_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/au"
	"github.com/obdcr/obdcr/policy/store"
	"github.com/obdcr/obdcr/policy/uk"
)

// TestBoundTokensSetting: bound_tokens defaults to true (also on a row stored
// before the setting existed); UK and AU, whose specifications require
// certificate-bound tokens, refuse false with a settings error naming it, in
// the admin's change and in a stored row; a profile whose limits allow
// unbound tokens (a test-only one) takes false and keeps it.
func TestBoundTokensSetting(t *testing.T) {
	ctx := context.Background()
	open := func(t *testing.T) store.Store {
		s, err := store.Open(ctx, "memory")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	loose := uk.New(uk.Config{})
	loose.Name = "xx"
	loose.Limits.UnboundTokens = true
	profiles := []*policy.Profile{uk.New(uk.Config{}), au.New(au.Config{}), loose}
	tests := []struct {
		profile        string
		unboundAllowed bool
	}{{"uk", false}, {"au", false}, {"xx", true}}
	for _, tc := range tests {
		t.Run(tc.profile, func(t *testing.T) {
			s := open(t)
			// A row from before the setting: it takes the default.
			if err := s.Seed(ctx, tc.profile, store.StoredState{Settings: json.RawMessage(`{"allow_delete":true}`)}); err != nil {
				t.Fatal(err)
			}
			st, err := store.NewSharedState(ctx, s, profiles, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := st.State(ctx, tc.profile); !got.Settings.BoundTokens {
				t.Fatal("bound_tokens does not default to true")
			}
			got, err := st.Apply(ctx, tc.profile, store.Change{Settings: json.RawMessage(`{"bound_tokens":false}`)})
			if tc.unboundAllowed {
				if err != nil || got.Settings.BoundTokens {
					t.Fatalf("a profile allowing unbound tokens: %+v %v", got.Settings.BoundTokens, err)
				}
				return
			}
			var se *store.SettingsError
			if !errorsAs(err, &se) || !strings.HasPrefix(err.Error(), "bound_tokens: must be true") {
				t.Fatalf("bound_tokens false on %s: %v, want a settings error naming bound_tokens", tc.profile, err)
			}
			// A row written by hand with false is not applied.
			s2 := open(t)
			_ = s2.Seed(ctx, tc.profile, store.StoredState{Settings: json.RawMessage(`{"bound_tokens":false}`)})
			if _, err := store.NewSharedState(ctx, s2, profiles, nil, nil); err == nil || !strings.Contains(err.Error(), "bound_tokens") {
				t.Fatalf("a stored bound_tokens false was loaded: %v", err)
			}
		})
	}
}
