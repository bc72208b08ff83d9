package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/policytest"
	"github.com/obdcr/obdcr/policy/store"
	"github.com/obdcr/obdcr/policy/uk"
)

// flakyStore is the memory store, failing audit appends and state saves on demand.
type flakyStore struct {
	*store.Memory
	failAppend, failPut bool
	// putUnknown: a save is committed and its answer lost (the store stopped
	// answering mid-commit). statesDownAfterPut: reads fail once a save is in.
	putUnknown, statesDownAfterPut, put bool
}

func (s *flakyStore) States(ctx context.Context) (map[string]store.StoredState, int64, error) {
	if s.statesDownAfterPut && s.put {
		return nil, 0, errStoreDown
	}
	return s.Memory.States(ctx)
}

var errStoreDown = errors.New("store down")

// errCommitUnknown is the store's word for a commit sent and not answered.
var errCommitUnknown = store.ErrCommitUnknown

func (s *flakyStore) Append(ctx context.Context, e store.AuditEntry) error {
	if s.failAppend {
		return errStoreDown
	}
	return s.Memory.Append(ctx, e)
}

func (s *flakyStore) PutState(ctx context.Context, profile string, st store.StoredState, e store.AuditEntry) error {
	if s.failPut {
		return errStoreDown
	}
	err := s.Memory.PutState(ctx, profile, st, e)
	s.put = err == nil
	if err == nil && s.putUnknown {
		return fmt.Errorf("%w: %w", errCommitUnknown, errStoreDown)
	}
	return err
}

// fakeHydra is the fixture's Hydra, with an introspection that answers token.
type fakeHydra struct {
	*policytest.Hydra
	token hydra.Token
}

func (h *fakeHydra) Introspect(context.Context, string) (hydra.Token, error) { return h.token, nil }
func (h *fakeHydra) Ready(context.Context) error                             { return nil }

// env is a service over a UK fixture, a memory store and a fake Hydra.
type env struct {
	f             *policytest.Fixture
	st            *flakyStore
	hydra         *fakeHydra
	svc           *Service
	registrations *prometheus.CounterVec
	management    *prometheus.CounterVec
}

func newEnv(t *testing.T) *env {
	t.Helper()
	f := policytest.NewFixture(t, sandbox.UK, func(keys policy.TrustStore, replay policy.ReplayCache, jwks string) *policy.Profile {
		return uk.New(uk.Config{DirectoryJWKS: jwks, Keys: keys, Replay: replay})
	})
	st := &flakyStore{Memory: store.NewMemory()}
	log := slog.New(slog.DiscardHandler)
	shared, err := store.NewSharedState(context.Background(), st, f.Registrar.Profiles, []string{f.Profile.Name}, log)
	if err != nil {
		t.Fatal(err)
	}
	f.Registrar.State = shared
	e := &env{f: f, st: st, hydra: &fakeHydra{Hydra: f.Hydra},
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"profile", "outcome", "error"}),
		management:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "m"}, []string{"profile", "operation", "outcome"})}
	e.svc = New(Deps{Registrar: f.Registrar, State: shared, Store: st, Hydra: e.hydra, Log: log, AuditRefusals: 60,
		Metrics: Metrics{Registrations: e.registrations, Management: e.management, Suppressed: func(string, int) {}}})
	return e
}

func (e *env) tpp() TPP { return TPP{Cert: e.f.Cert} }

// registered is a client registered behind the service's back (no audit, no
// count), with a token Hydra would introspect as its own.
func (e *env) registered(t *testing.T) TPP {
	t.Helper()
	reg, err := e.f.Register(e.f.Request(t, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	e.hydra.token = hydra.Token{Active: true, ClientID: reg.ClientID, Subject: reg.ClientID, Scope: []string{e.f.Profile.ManagementScope}}
	return TPP{Cert: e.f.Cert, Client: reg}
}

func (e *env) audit(t *testing.T) []store.AuditEntry {
	t.Helper()
	entries, err := e.st.Memory.Audit(context.Background(), store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// counted is every non-zero series of both counters, as "labels=value", the
// labels in the order of their names.
func (e *env) counted(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, vec := range []*prometheus.CounterVec{e.registrations, e.management} {
		ch := make(chan prometheus.Metric, 64)
		vec.Collect(ch)
		close(ch)
		for m := range ch {
			var d dto.Metric
			if err := m.Write(&d); err != nil {
				t.Fatal(err)
			}
			if d.GetCounter().GetValue() == 0 {
				continue
			}
			var labels []string
			for _, l := range d.GetLabel() {
				labels = append(labels, l.GetValue())
			}
			out = append(out, fmt.Sprintf("%s=%g", strings.Join(labels, "/"), d.GetCounter().GetValue()))
		}
	}
	sort.Strings(out)
	return out
}

// Each operation decides, audits and counts once, in the service: the entry
// names the typed actor (an admin by its token's name, a TPP by its
// certificate's thumbprint), and an operation the audit could not take leaves
// nothing half-made at Hydra.
func TestServiceOperations(t *testing.T) {
	badRedirect := policytest.Set("redirect_uris", []string{"http://insecure.example/cb"})
	cases := []struct {
		name string
		// setup runs before what is measured; it returns the client to act on.
		setup func(e *env, t *testing.T) TPP
		op    func(t *testing.T, e *env, client TPP) error
		// wantErr: the kind of service refusal, or a check of the error.
		wantErr func(error) bool
		// wantEntry is the one entry written, as kind/outcome/actor/thumbprint
		// ("" when none should be).
		wantEntry func(e *env, client TPP) string
		wantCount []string // labels=value of each counter series counted
		clients   int      // clients at Hydra after
	}{
		{
			name: "register: approved",
			op: func(t *testing.T, e *env, _ TPP) error {
				_, _, err := e.svc.Register(context.Background(), e.tpp(), e.f.Request(t, nil, nil))
				return err
			},
			wantEntry: func(e *env, _ TPP) string { return "registration/approved//" + e.tpp().Name() },
			wantCount: []string{"/approved/uk=1"}, clients: 1,
		},
		{
			name: "register: refused",
			op: func(t *testing.T, e *env, _ TPP) error {
				_, _, err := e.svc.Register(context.Background(), e.tpp(), e.f.Request(t, nil, badRedirect))
				return err
			},
			wantErr:   policy.IsRefusal,
			wantEntry: func(e *env, _ TPP) string { return "registration/refused//" + e.tpp().Name() },
			wantCount: []string{"invalid_redirect_uri/refused/uk=1"},
		},
		{
			// Half-made: the reconciler removes the client within the
			// compensation window (policy/uk's and plugin's half-made tests).
			name: "register: the audit fails, so the outcome is not known",
			setup: func(e *env, t *testing.T) TPP {
				e.st.failAppend = true
				return TPP{}
			},
			op: func(t *testing.T, e *env, _ TPP) error {
				_, _, err := e.svc.Register(context.Background(), e.tpp(), e.f.Request(t, nil, nil))
				var u *policy.Unavailable
				if !errors.As(err, &u) || !strings.Contains(u.Detail, "not known") {
					t.Errorf("the answer does not say the outcome is unknown: %v", err)
				}
				return err
			},
			wantErr:   isUnavailable,
			wantCount: []string{"/approved/uk=1"}, clients: 1,
		},
		{
			name:  "update: approved",
			setup: (*env).registered,
			op: func(t *testing.T, e *env, c TPP) error {
				_, _, err := e.svc.Update(context.Background(), c, e.f.Request(t, nil, nil))
				return err
			},
			wantEntry: func(e *env, _ TPP) string { return "management/updated//" + e.tpp().Name() },
			wantCount: []string{"update/approved/uk=1"}, clients: 1,
		},
		{
			name:  "update: refused",
			setup: (*env).registered,
			op: func(t *testing.T, e *env, c TPP) error {
				_, _, err := e.svc.Update(context.Background(), c, e.f.Request(t, nil, badRedirect))
				return err
			},
			wantErr:   policy.IsRefusal,
			wantEntry: func(e *env, _ TPP) string { return "management/refused//" + e.tpp().Name() },
			wantCount: []string{"update/refused/uk=1"}, clients: 1,
		},
		{
			name:  "delete: by the TPP",
			setup: (*env).registered,
			op: func(t *testing.T, e *env, c TPP) error {
				return e.svc.Delete(context.Background(), c, c.Client.ClientID, "")
			},
			wantEntry: func(e *env, _ TPP) string { return "management/deleted//" + e.tpp().Name() },
			wantCount: []string{"delete/approved/uk=1"},
		},
		{
			name: "delete: by the TPP, which its profile does not allow",
			setup: func(e *env, t *testing.T) TPP {
				c := e.registered(t)
				if _, _, err := e.svc.SavePolicy(context.Background(), AdminToken{"setup"}, "uk", PolicyChange{Settings: json.RawMessage(`{"allow_delete":false}`)}); err != nil {
					t.Fatal(err)
				}
				return c
			},
			op: func(t *testing.T, e *env, c TPP) error {
				return e.svc.Delete(context.Background(), c, c.Client.ClientID, "")
			},
			wantErr: func(err error) bool { return IsKind(err, NotAllowed) },
			clients: 1,
		},
		{
			name:  "delete: by an admin",
			setup: (*env).registered,
			op: func(t *testing.T, e *env, c TPP) error {
				return e.svc.Delete(context.Background(), AdminToken{"alice"}, c.Client.ClientID, "removed by an admin")
			},
			wantEntry: func(*env, TPP) string { return "management/deleted/alice/" },
		},
		{
			name:  "delete: in the console",
			setup: (*env).registered,
			op: func(t *testing.T, e *env, c TPP) error {
				return e.svc.Delete(context.Background(), ConsoleSession{"bob"}, c.Client.ClientID, "removed in the console")
			},
			wantEntry: func(*env, TPP) string { return "management/deleted/bob/" },
		},
		{
			name: "delete: the audit fails, so nothing is deleted",
			setup: func(e *env, t *testing.T) TPP {
				c := e.registered(t)
				e.st.failAppend = true
				return c
			},
			op: func(t *testing.T, e *env, c TPP) error {
				return e.svc.Delete(context.Background(), AdminToken{"alice"}, c.Client.ClientID, "removed by an admin")
			},
			wantErr: isUnavailable, clients: 1,
		},
		{
			name: "delete: by an admin, of no registration",
			op: func(t *testing.T, e *env, _ TPP) error {
				return e.svc.Delete(context.Background(), AdminToken{"alice"}, "00000000-0000-0000-0000-000000000000", "removed")
			},
			wantErr: func(err error) bool { return IsKind(err, NotFound) && errors.Is(err, policy.ErrNoRegistration) },
		},
		{
			name: "save policy: by an admin",
			op: func(t *testing.T, e *env, _ TPP) error {
				_, after, err := e.svc.SavePolicy(context.Background(), AdminToken{"alice"}, "uk", PolicyChange{Settings: json.RawMessage(`{"clock_skew":"20s"}`)})
				if err == nil && after.Version != 1 {
					t.Errorf("version %d after the first save, want 1", after.Version)
				}
				return err
			},
			wantEntry: func(*env, TPP) string { return "policy/changed/alice/" },
		},
		{
			name: "save policy: a setting out of bounds",
			op: func(t *testing.T, e *env, _ TPP) error {
				_, _, err := e.svc.SavePolicy(context.Background(), ConsoleSession{"bob"}, "uk", PolicyChange{Settings: json.RawMessage(`{"clock_skew":"10h"}`)})
				return err
			},
			wantErr: func(err error) bool {
				var se *store.SettingsError
				return IsKind(err, Invalid) && errors.As(err, &se)
			},
		},
		{
			name:  "save policy: the store fails",
			setup: func(e *env, t *testing.T) TPP { e.st.failPut = true; return TPP{} },
			op: func(t *testing.T, e *env, _ TPP) error {
				off := false
				_, _, err := e.svc.SavePolicy(context.Background(), AdminToken{"alice"}, "uk", PolicyChange{Enabled: &off})
				if st, _ := e.f.Registrar.State.State(context.Background(), "uk"); !st.Enabled {
					t.Error("the profile is off though the store did not take the change")
				}
				return err
			},
			wantErr: isUnavailable,
		},
		{
			// The commit was sent and no answer came: the answer says the
			// outcome is not known, never that nothing was changed.
			name:  "save policy: the commit's outcome is not known",
			setup: func(e *env, t *testing.T) TPP { e.st.putUnknown = true; return TPP{} },
			op: func(t *testing.T, e *env, _ TPP) error {
				off := false
				_, _, err := e.svc.SavePolicy(context.Background(), AdminToken{"alice"}, "uk", PolicyChange{Enabled: &off})
				return err
			},
			wantErr: func(err error) bool {
				var u *policy.Unavailable
				return errors.As(err, &u) && strings.Contains(u.Detail, "whether the change was saved is not known")
			},
			wantEntry: func(*env, TPP) string { return "policy/changed/alice/" },
		},
		{
			// Saved, then the store stopped answering before the cache was
			// re-read: the save stands, and the answer is what was saved.
			name:  "save policy: saved, then the store stops answering",
			setup: func(e *env, t *testing.T) TPP { e.st.statesDownAfterPut = true; return TPP{} },
			op: func(t *testing.T, e *env, _ TPP) error {
				off := false
				before, after, err := e.svc.SavePolicy(context.Background(), AdminToken{"alice"}, "uk", PolicyChange{Enabled: &off})
				if err == nil && (after.Enabled || after.Version != before.Version+1) {
					t.Errorf("answered %+v after %+v, want the saved state: disabled, one version on", after, before)
				}
				return err
			},
			wantEntry: func(*env, TPP) string { return "policy/changed/alice/" },
		},
		{
			name: "dry run: in the console",
			op: func(t *testing.T, e *env, _ TPP) error {
				d, err := e.svc.DryRun(context.Background(), ConsoleSession{"bob"}, e.f.Request(t, nil, badRedirect), e.f.Cert)
				if err == nil && (d.Error == nil || d.Error.Error != "invalid_redirect_uri") {
					t.Errorf("answer %+v, want invalid_redirect_uri", d)
				}
				return err
			},
			wantEntry: func(*env, TPP) string { return "dry_run/refused/bob/" },
		},
		{
			name:  "dry run: the audit fails",
			setup: func(e *env, t *testing.T) TPP { e.st.failAppend = true; return TPP{} },
			op: func(t *testing.T, e *env, _ TPP) error {
				_, err := e.svc.DryRun(context.Background(), AdminToken{"alice"}, e.f.Request(t, nil, nil), nil)
				return err
			},
			wantErr: isUnavailable,
		},
		{
			name: "authorize: a token of another client",
			setup: func(e *env, t *testing.T) TPP {
				c := e.registered(t)
				e.hydra.token.ClientID = "someone-else"
				return c
			},
			op: func(t *testing.T, e *env, c TPP) error {
				_, err := e.svc.Authorize(context.Background(), ManagementCall{Op: "get", Cert: e.f.Cert, ClientID: c.Client.ClientID, Token: "t"})
				return err
			},
			wantErr:   func(err error) bool { return IsKind(err, Unauthorized) },
			wantEntry: func(e *env, _ TPP) string { return "management/refused//" + e.tpp().Name() },
			wantCount: []string{"get/refused/=1"}, clients: 1,
		},
		{
			name: "authorize: no certificate proved",
			op: func(t *testing.T, e *env, _ TPP) error {
				_, err := e.svc.Authorize(context.Background(), ManagementCall{Op: "delete", CertProblem: "no certificate", ClientID: "x"})
				return err
			},
			wantErr:   func(err error) bool { return IsKind(err, Unauthorized) },
			wantCount: []string{"delete/refused/=1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var client TPP
			if tc.setup != nil {
				client = tc.setup(e, t)
			}
			before := len(e.audit(t))
			err := tc.op(t, e, client)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != nil && (err == nil || !tc.wantErr(err)):
				t.Fatalf("error %v, not the one wanted", err)
			}
			e.st.failAppend, e.st.failPut = false, false
			var got []string
			for _, a := range e.audit(t)[:len(e.audit(t))-before] {
				got = append(got, a.Kind+"/"+a.Outcome+"/"+a.Actor+"/"+a.CertThumbprint)
			}
			var want []string
			if tc.wantEntry != nil {
				want = []string{tc.wantEntry(e, client)}
			}
			if strings.Join(got, ";") != strings.Join(want, ";") {
				t.Errorf("audit %q, want %q", got, want)
			}
			if got := e.counted(t); strings.Join(got, ";") != strings.Join(tc.wantCount, ";") {
				t.Errorf("counted %q, want %q", got, tc.wantCount)
			}
			if n := e.hydra.Len(); n != tc.clients {
				t.Errorf("%d clients at Hydra, want %d", n, tc.clients)
			}
		})
	}
}

func isUnavailable(err error) bool {
	var u *policy.Unavailable
	return errors.As(err, &u)
}
