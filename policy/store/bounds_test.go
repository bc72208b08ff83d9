package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
	"github.com/obdcr/obdcr/policy/uk"
)

// A flood of refusals never pushes out an approved decision or a policy change.
func TestMemoryAuditKeepsApprovalsThroughARefusalFlood(t *testing.T) {
	ctx := context.Background()
	s := store.NewMemory()
	_ = s.Append(ctx, store.AuditEntry{Kind: store.KindRegistration, Outcome: "approved", SoftwareID: "good", ClientID: "c1"})
	_ = s.Append(ctx, store.AuditEntry{Kind: store.KindPolicy, Outcome: "changed", Profile: "uk", Actor: "alice"})
	for i := range 100_050 {
		_ = s.Append(ctx, store.AuditEntry{Kind: store.KindManagement, Outcome: "refused", ClaimedClientID: fmt.Sprint(i)})
	}
	got, _ := s.Audit(ctx, store.AuditQuery{SoftwareID: "good"})
	if len(got) != 1 || got[0].ClientID != "c1" {
		t.Fatalf("the approved entry is gone: %+v", got)
	}
	if got, _ := s.Audit(ctx, store.AuditQuery{Kind: store.KindPolicy}); len(got) != 1 {
		t.Fatalf("the policy change is gone: %+v", got)
	}
	// newest first across both logs
	got, _ = s.Audit(ctx, store.AuditQuery{Limit: 3})
	if len(got) != 3 || got[0].ClaimedClientID != "100049" || got[0].ID < got[1].ID {
		t.Fatalf("newest first: %+v", got)
	}
}

// What a TPP can repeat once let in (updates of its own registration, and reads
// were audited too) never pushes out a policy change or an approved registration:
// each class has a log of its own, and the newest entries still come first.
func TestMemoryAuditKeepsPolicyThroughATPPsOwnCalls(t *testing.T) {
	ctx := context.Background()
	for _, outcome := range []string{"updated", "read", "deleted"} {
		t.Run(outcome, func(t *testing.T) {
			s := store.NewMemory()
			_ = s.Append(ctx, store.AuditEntry{Kind: store.KindPolicy, Outcome: "changed", Profile: "uk", Actor: "alice"})
			_ = s.Append(ctx, store.AuditEntry{Kind: store.KindRegistration, Outcome: "approved", SoftwareID: "good", ClientID: "c1"})
			for i := range 100_050 {
				_ = s.Append(ctx, store.AuditEntry{Kind: store.KindManagement, Outcome: outcome, SoftwareID: "tpp", ClientID: fmt.Sprint(i)})
				if i%1000 == 0 {
					_ = s.Append(ctx, store.AuditEntry{Kind: store.KindManagement, Outcome: "refused", ClaimedClientID: fmt.Sprint(i)})
				}
			}
			_ = s.Append(ctx, store.AuditEntry{Kind: store.KindManagement, Outcome: "refused", ClaimedClientID: "last"})
			if got, _ := s.Audit(ctx, store.AuditQuery{Kind: store.KindPolicy}); len(got) != 1 || got[0].Actor != "alice" {
				t.Fatalf("the policy change is gone: %+v", got)
			}
			if got, _ := s.Audit(ctx, store.AuditQuery{SoftwareID: "good"}); len(got) != 1 || got[0].ClientID != "c1" {
				t.Fatalf("the approved registration is gone: %+v", got)
			}
			got, _ := s.Audit(ctx, store.AuditQuery{Limit: 3})
			if len(got) != 3 || got[0].ClaimedClientID != "last" || got[1].ClientID != "100049" || got[2].ClientID != "100048" {
				t.Fatalf("newest first across the logs: %+v", got)
			}
			all, _ := s.Audit(ctx, store.AuditQuery{Limit: store.MaxAuditLimit, BeforeID: got[2].ID})
			for i := 1; i < len(all); i++ {
				if all[i].ID >= all[i-1].ID {
					t.Fatalf("entry %d out of order: %d after %d", i, all[i].ID, all[i-1].ID)
				}
			}
		})
	}
}

func TestAuditRetentionAndVersions(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b.dsn(t))
			old := time.Now().Add(-500 * 24 * time.Hour)
			for _, e := range []store.AuditEntry{
				{Time: old, Kind: store.KindRegistration, Outcome: "approved", SoftwareID: "old"},
				{Time: old, Kind: store.KindManagement, Outcome: "refused", SoftwareID: "old"},
				{Time: old, Kind: store.KindPolicy, Outcome: "changed", Profile: "uk"},
				{Kind: store.KindRegistration, Outcome: "approved", SoftwareID: "new"},
				{Kind: store.KindRegistration, Outcome: "refused", ClaimedSoftwareID: "claims-to-be"},
			} {
				if err := s.Append(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			n, err := s.Prune(ctx, time.Now().Add(-400*24*time.Hour))
			if err != nil || n != 2 {
				t.Fatalf("pruned %d (%v); want the 2 old decisions", n, err)
			}
			all, _ := s.Audit(ctx, store.AuditQuery{})
			if len(all) != 3 {
				t.Fatalf("left %d entries, want 3 (the policy change and the new ones)", len(all))
			}
			claimed, _ := s.Audit(ctx, store.AuditQuery{SoftwareID: "claims-to-be"})
			if len(claimed) != 1 || claimed[0].SoftwareID != "" || claimed[0].ClaimedSoftwareID != "claims-to-be" {
				t.Fatalf("a claimed software_id: %+v", claimed)
			}

			// A save based on a version that is no longer current is refused.
			if err := s.Seed(ctx, "uk", store.StoredState{Enabled: true, Settings: json.RawMessage(`{}`)}); err != nil {
				t.Fatal(err)
			}
			states, _, _ := s.States(ctx)
			v := states["uk"].Version
			e := store.AuditEntry{Kind: store.KindPolicy, Profile: "uk", Outcome: "changed"}
			if err := s.PutState(ctx, "uk", store.StoredState{Enabled: false, Settings: json.RawMessage(`{}`), Version: v}, e); err != nil {
				t.Fatal(err)
			}
			if err := s.PutState(ctx, "uk", store.StoredState{Enabled: true, Settings: json.RawMessage(`{}`), Version: v}, e); !errors.Is(err, store.ErrStale) {
				t.Fatalf("a save over a stale version: %v", err)
			}
			states, _, _ = s.States(ctx)
			if states["uk"].Enabled || states["uk"].Version != v+1 {
				t.Fatalf("after a refused stale save: %+v", states["uk"])
			}
		})
	}
}

// Two admins saving different settings at once both keep their change; a save
// that names a stale version is refused.
func TestSharedStateConcurrentSaves(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dsn := b.dsn(t)
			profiles := []*policy.Profile{uk.New(uk.Config{})}
			replicas := make([]*store.SharedState, 2)
			for i := range replicas {
				s := open(t, dsn)
				if b.name == "memory" && i == 1 {
					break
				}
				st, err := store.NewSharedState(ctx, s, profiles, []string{"uk"}, nil)
				if err != nil {
					t.Fatal(err)
				}
				replicas[i] = st
			}
			if replicas[1] == nil {
				replicas[1] = replicas[0]
			}
			patches := []string{`{"clock_skew":"5s"}`, `{"ssa_max_age":"12h"}`, `{"request_max_age":"30m"}`, `{"allow_delete":false}`}
			var wg sync.WaitGroup
			for i, p := range patches {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := replicas[i%2].Apply(ctx, "uk", store.Change{Settings: json.RawMessage(p), Actor: fmt.Sprint("admin", i)}); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			got, err := replicas[0].Apply(ctx, "uk", store.Change{Settings: json.RawMessage(`{}`)})
			if err != nil {
				t.Fatal(err)
			}
			s := got.Settings
			if time.Duration(s.ClockSkew) != 5*time.Second || time.Duration(s.SSAMaxAge) != 12*time.Hour ||
				time.Duration(s.RequestMaxAge) != 30*time.Minute || s.AllowDelete {
				t.Fatalf("a concurrent change was lost: %+v", s)
			}
			stale := got.Version - 1
			if _, err := replicas[1].Apply(ctx, "uk", store.Change{Settings: json.RawMessage(`{"clock_skew":"7s"}`), IfMatch: &stale}); !errors.Is(err, store.ErrStale) {
				t.Fatalf("If-Match on a stale version: %v", err)
			}
			if _, err := replicas[1].Apply(ctx, "uk", store.Change{Settings: json.RawMessage(`{"clock_skew":"7s"}`), IfMatch: &got.Version}); err != nil {
				t.Fatalf("If-Match on the current version: %v", err)
			}
		})
	}
}

// A stored row outside the profile's limits is refused on load, never applied.
func TestStoredSettingsRevalidatedOnLoad(t *testing.T) {
	ctx := context.Background()
	s := open(t, "memory")
	if err := s.Seed(ctx, "uk", store.StoredState{Enabled: true, Settings: json.RawMessage(`{"signing_algs":["none"]}`)}); err != nil {
		t.Fatal(err)
	}
	_, err := store.NewSharedState(ctx, s, []*policy.Profile{uk.New(uk.Config{})}, []string{"uk"}, nil)
	if err == nil || !strings.Contains(err.Error(), "outside the profile's limits") || !strings.Contains(err.Error(), "signing_algs") {
		t.Fatalf("a row allowing alg none was loaded: %v", err)
	}
}
