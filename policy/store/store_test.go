package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
	"github.com/obdcr/obdcr/policy/uk"
)

var pg *testenv.Postgres

func TestMain(m *testing.M) {
	var err error
	pg, err = testenv.StartPostgres()
	if err != nil {
		fmt.Fprintln(os.Stderr, "PostgreSQL for the store tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// backend opens a fresh store of a kind, and a second handle on the same
// database (a second replica) where the kind has one.
type backend struct {
	name string
	dsn  func(t *testing.T) string
}

var backends = []backend{
	{"memory", func(*testing.T) string { return "memory" }},
	{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "obdcr.db") }},
	{"postgres", func(t *testing.T) string {
		dsn, err := pg.NewDatabase()
		if err != nil {
			t.Fatal(err)
		}
		return dsn
	}},
}

func open(t *testing.T, dsn string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreContract(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b.dsn(t))
			t.Run("replay", func(t *testing.T) {
				until := time.Now().Add(time.Minute)
				if ok, err := s.Claim(ctx, "k1", until); !ok || err != nil {
					t.Fatalf("first claim: %v %v", ok, err)
				}
				if ok, _ := s.Claim(ctx, "k1", until); ok {
					t.Fatal("a jti was claimed twice")
				}
				if seen, _ := s.Seen(ctx, "k1"); !seen {
					t.Fatal("a claimed jti is not seen")
				}
				if seen, _ := s.Seen(ctx, "k2"); seen {
					t.Fatal("an unclaimed jti is seen")
				}
				past := time.Now().Add(-time.Second)
				_, _ = s.Claim(ctx, "expired", past)
				if ok, _ := s.Claim(ctx, "expired", until); !ok {
					t.Fatal("an expired jti could not be claimed again")
				}
				// An exp far past 2262 (NumericDate takes up to 1e11 s) is held as
				// long as a store can say, never wrapped into the past.
				for _, far := range []time.Time{time.Unix(9_300_000_000, 0), time.Unix(100_000_000_000, 0)} {
					key := "far " + far.String()
					if ok, err := s.Claim(ctx, key, far); !ok || err != nil {
						t.Fatalf("first claim until %v: %v %v", far, ok, err)
					}
					if ok, _ := s.Claim(ctx, key, far); ok {
						t.Fatalf("a jti held until %v was claimed twice", far)
					}
				}
			})
			t.Run("replay race", func(t *testing.T) {
				var wins atomic.Int32
				var wg sync.WaitGroup
				for i := 0; i < 50; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if ok, err := s.Claim(ctx, "race", time.Now().Add(time.Minute)); ok && err == nil {
							wins.Add(1)
						}
					}()
				}
				wg.Wait()
				if wins.Load() != 1 {
					t.Fatalf("%d of 50 racing claims won, want 1", wins.Load())
				}
			})
			t.Run("states", func(t *testing.T) {
				if err := s.Seed(ctx, "uk", store.StoredState{Enabled: true, Settings: json.RawMessage(`{}`)}); err != nil {
					t.Fatal(err)
				}
				_ = s.Seed(ctx, "uk", store.StoredState{Enabled: false, Settings: json.RawMessage(`{}`)})
				states, v0, err := s.States(ctx)
				if err != nil || !states["uk"].Enabled {
					t.Fatalf("seed: %v %v", states, err)
				}
				e := store.AuditEntry{Kind: store.KindPolicy, Profile: "uk", Outcome: "changed", Actor: "alice", Before: json.RawMessage(`{"enabled":true}`), After: json.RawMessage(`{"enabled":false}`)}
				if err := s.PutState(ctx, "uk", store.StoredState{Enabled: false, Settings: json.RawMessage(`{"clock_skew":"10s"}`)}, e); err != nil {
					t.Fatal(err)
				}
				states, v1, _ := s.States(ctx)
				if states["uk"].Enabled || v1 <= v0 || string(states["uk"].Settings) != `{"clock_skew":"10s"}` {
					t.Fatalf("after put: %+v version %d -> %d", states["uk"], v0, v1)
				}
				if v, _ := s.Version(ctx); v != v1 {
					t.Fatalf("Version %d, States said %d", v, v1)
				}
				got, _ := s.Audit(ctx, store.AuditQuery{Kind: store.KindPolicy})
				if len(got) != 1 || got[0].Actor != "alice" || string(got[0].After) != `{"enabled":false}` {
					t.Fatalf("policy audit: %+v", got)
				}
			})
			t.Run("audit", func(t *testing.T) {
				for i := 0; i < 30; i++ {
					profile := []string{"uk", "au"}[i%2]
					if err := s.Append(ctx, store.AuditEntry{Kind: store.KindRegistration, Profile: profile, SoftwareID: fmt.Sprintf("sw%d", i%3), Outcome: "approved", RequestID: fmt.Sprint(i)}); err != nil {
						t.Fatal(err)
					}
				}
				all, _ := s.Audit(ctx, store.AuditQuery{Kind: store.KindRegistration, Limit: 5})
				if len(all) != 5 || all[0].RequestID != "29" || all[4].RequestID != "25" {
					t.Fatalf("newest first, limited: %v", ids(all))
				}
				sw, _ := s.Audit(ctx, store.AuditQuery{SoftwareID: "sw1", Profile: "uk", Limit: 100})
				for _, e := range sw {
					if e.SoftwareID != "sw1" || e.Profile != "uk" {
						t.Fatalf("filter leaked %+v", e)
					}
				}
				if len(sw) != 5 {
					t.Fatalf("%d entries for sw1/uk, want 5", len(sw))
				}
				if all[0].Time.IsZero() || time.Since(all[0].Time) > time.Minute {
					t.Errorf("entry time %v", all[0].Time)
				}
				// paging back from the oldest of a page, and the outcome filter
				older, _ := s.Audit(ctx, store.AuditQuery{Kind: store.KindRegistration, Limit: 5, BeforeID: all[4].ID})
				if len(older) != 5 || older[0].RequestID != "24" {
					t.Fatalf("the page before id %d: %v", all[4].ID, ids(older))
				}
				if none, _ := s.Audit(ctx, store.AuditQuery{Outcome: "refused"}); len(none) != 0 {
					t.Fatalf("outcome filter: %v", ids(none))
				}
			})
		})
	}
}

func ids(es []store.AuditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.RequestID)
	}
	return out
}

// Two replicas on one database: what one claims or changes, the other sees.
func TestTwoReplicas(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends[1:] {
		t.Run(b.name, func(t *testing.T) {
			dsn := b.dsn(t)
			a, c := open(t, dsn), open(t, dsn) // the second open also proves migrations are idempotent
			if ok, _ := a.Claim(ctx, "jti-1", time.Now().Add(time.Minute)); !ok {
				t.Fatal("claim on replica A")
			}
			if ok, _ := c.Claim(ctx, "jti-1", time.Now().Add(time.Minute)); ok {
				t.Fatal("replica B claimed a jti replica A holds")
			}
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := 0; i < 40; i++ {
				wg.Add(1)
				s := []store.Store{a, c}[i%2]
				go func() {
					defer wg.Done()
					if ok, err := s.Claim(ctx, "jti-race", time.Now().Add(time.Minute)); ok && err == nil {
						wins.Add(1)
					} else if err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("%d wins across two replicas, want 1", wins.Load())
			}

			profiles := []*policy.Profile{uk.New(uk.Config{})}
			sa, err := store.NewSharedState(ctx, a, profiles, []string{"uk"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := store.NewSharedState(ctx, c, profiles, []string{"uk"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go sc.Run(rctx)
			off := false
			start := time.Now()
			if _, err := sa.Apply(ctx, "uk", store.Change{Enabled: &off, Actor: "alice"}); err != nil {
				t.Fatal(err)
			}
			for {
				st, _ := sc.State(ctx, "uk")
				if !st.Enabled {
					break
				}
				if time.Since(start) > 5*time.Second {
					t.Fatal("replica B did not see the change within 5 s")
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("%s: replica B saw the change after %s", b.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestSharedStateValidation(t *testing.T) {
	ctx := context.Background()
	s := open(t, "memory")
	st, err := store.NewSharedState(ctx, s, []*policy.Profile{uk.New(uk.Config{})}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		patch, want string
	}{
		{`{"signing_algs":["RS256"]}`, "signing_algs"},
		{`{"signing_algs":[]}`, "signing_algs"},
		{`{"token_endpoint_auth_methods":["self_signed_tls_client_auth"]}`, "token_endpoint_auth_methods"},
		{`{"clock_skew":"1h"}`, "clock_skew"},
		{`{"clock_skew":"soon"}`, "clock_skew"},
		{`{"transport_certificate":"maybe"}`, "transport_certificate"},
		{`{"colour":"blue"}`, "colour"},
		{`{"allow_delete":"yes"}`, "allow_delete"},
	}
	for _, c := range cases {
		t.Run(c.patch, func(t *testing.T) {
			_, err := st.Apply(ctx, "uk", store.Change{Settings: json.RawMessage(c.patch)})
			var se *store.SettingsError
			if err == nil || !errorsAs(err, &se) || !contains(err.Error(), c.want) {
				t.Fatalf("want a SettingsError naming %s, got %v", c.want, err)
			}
		})
	}
	if v, _ := s.Version(ctx); v != 0 {
		t.Fatalf("refused changes were stored (version %d)", v)
	}
	if _, err := st.Apply(ctx, "br", store.Change{}); err != store.ErrUnknownProfile {
		t.Fatalf("unknown profile: %v", err)
	}
	got, err := st.Apply(ctx, "uk", store.Change{Settings: json.RawMessage(`{"clock_skew":"10s","signing_algs":["ES256"]}`)})
	if err != nil || time.Duration(got.Settings.ClockSkew) != 10*time.Second || len(got.Settings.SigningAlgs) != 1 || !got.Settings.AllowDelete {
		t.Fatalf("partial change: %+v %v", got.Settings, err)
	}
}
