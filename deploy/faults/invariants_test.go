package main

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// answered makes an answered request sent sec seconds after t0 that took elapsed.
func answered(op string, replica int, sec float64, elapsed time.Duration, status int) Obs {
	return Obs{Op: op, Replica: replica, Start: t0.Add(time.Duration(sec * float64(time.Second))), Elapsed: elapsed,
		Kind: kindAnswered, Status: status, RequestID: "f-" + op, TPP: "f-0", SoftwareID: "sw0", ClientID: "c0"}
}

func with(o Obs, f func(*Obs)) Obs { f(&o); return o }

// invariants lists each violation's invariant, in order, for comparing.
func invariants(vs []Violation) string {
	var names []string
	for _, v := range vs {
		names = append(names, v.Invariant)
	}
	return strings.Join(names, ",")
}

func TestCheckAnswers(t *testing.T) {
	split := faultRun{Name: "split", Start: t0.Add(10 * time.Second), Heal: t0.Add(30 * time.Second), Target: 2, ClientPath: true}
	dbCut := faultRun{Name: "db", Start: t0.Add(10 * time.Second), Heal: t0.Add(30 * time.Second), Target: 0}
	noAnswer := func(o Obs) Obs { o.Kind, o.Status, o.Err = kindNoAnswer, 0, "timeout awaiting headers"; return o }
	cases := []struct {
		name string
		f    faultRun
		obs  Obs
		want string
	}{
		{"a 201 with its client_id", dbCut, answered(opRegister, 0, 1, time.Second, 201), ""},
		{"a 201 without a client_id", dbCut, with(answered(opRegister, 0, 1, time.Second, 201), func(o *Obs) { o.ClientID = "" }), invAnswer},
		{"a 400 with its reason", dbCut, with(answered(opRegister, 0, 1, time.Second, 400), func(o *Obs) { o.Error = "invalid_client_metadata" }), ""},
		{"a 400 without a reason", dbCut, answered(opRegister, 0, 1, time.Second, 400), invAnswer},
		{"a 503", dbCut, answered(opUpdate, 0, 12, 5*time.Second, 503), ""},
		{"a 204 to DELETE", dbCut, answered(opDelete, 0, 1, time.Second, 204), ""},
		{"a 204 to PUT is no answer PUT gives", dbCut, answered(opUpdate, 0, 1, time.Second, 204), invAnswer},
		{"a redirect", dbCut, answered(opGet, 0, 1, time.Second, 302), invAnswer},
		{"a 201 after 26 s, past the budget", dbCut, answered(opRegister, 0, 12, 26*time.Second, 201), invBudget},
		{"a 503 just within the bound", dbCut, answered(opRegister, 0, 12, 11*time.Second, 503), ""},
		{"no answer at all on a replica cut from the database", dbCut, noAnswer(answered(opUpdate, 0, 12, 30*time.Second, 0)), invBudget},
		{"no answer from the replica the client was split from, during the split", split, noAnswer(answered(opUpdate, 2, 12, 30*time.Second, 0)), ""},
		{"slow answer from that replica, across the heal", split, answered(opUpdate, 2, 25, 12*time.Second, 200), ""},
		{"no answer from another replica during the split", split, noAnswer(answered(opUpdate, 1, 12, 30*time.Second, 0)), invBudget},
		{"no answer from that replica long after the heal", split, noAnswer(answered(opUpdate, 2, 40, 30*time.Second, 0)), invBudget},
		{"a connection dropped without an answer", dbCut, with(answered(opRegister, 0, 12, time.Second, 0), func(o *Obs) { o.Kind = kindDropped }), invAnswer},
		{"a connection never made", dbCut, with(answered(opRegister, 0, 12, 3*time.Second, 0), func(o *Obs) { o.Kind = kindUnsent }), ""},
		{"Hydra's token endpoint is not obdcr", dbCut, noAnswer(answered(opToken, -1, 12, 30*time.Second, 0)), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := checkAnswers(c.f, []Obs{c.obs}, 11*time.Second)
			if invariants(got) != c.want {
				t.Fatalf("violations %q, want %q: %+v", invariants(got), c.want, got)
			}
			for _, v := range got {
				if v.Fault != c.f.Name || !strings.Contains(v.Detail, c.obs.RequestID) {
					t.Errorf("a violation must name its fault and request: %+v", v)
				}
			}
		})
	}
}

func TestCheckJTI(t *testing.T) {
	reg := with(answered(opRegister, 0, 1, time.Second, 201), func(o *Obs) { o.JTI = "j1" })
	replayed := with(answered(opReplay, 1, 5, time.Second, 400), func(o *Obs) { o.JTI, o.Error = "j1", "invalid_client_metadata" })
	replayTaken := with(replayed, func(o *Obs) { o.Status, o.Error = 201, "" })
	upd := with(answered(opUpdate, 2, 3, time.Second, 200), func(o *Obs) { o.JTI = "j2" })
	all := func(Obs) bool { return true }
	cases := []struct {
		name string
		obs  []Obs
		held func(Obs) bool
		want string
	}{
		{"accepted once, its replay refused", []Obs{reg, replayed}, all, ""},
		{"the replay accepted too", []Obs{reg, replayTaken}, all, invJTI},
		{"a PUT's jti, then the same as a registration", []Obs{upd, with(reg, func(o *Obs) { o.JTI = "j2" })}, all, invJTI},
		{"accepted but not held in the replay cache", []Obs{reg}, func(o Obs) bool { return o.JTI != "j1" }, invJTI},
		{"refused requests are not accepted", []Obs{replayed, replayed}, all, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := checkJTI("f", c.obs, c.held); invariants(got) != c.want {
				t.Fatalf("violations %q, want %q: %+v", invariants(got), c.want, got)
			}
		})
	}
}

func TestCheckAudit(t *testing.T) {
	reg := answered(opRegister, 0, 1, time.Second, 201)
	cases := []struct {
		name  string
		audit map[string]auditRow
		want  string
	}{
		{"its entry", map[string]auditRow{reg.RequestID: {reg.RequestID, "c0"}}, ""},
		{"no entry", map[string]auditRow{}, invAudit},
		{"an entry for another client", map[string]auditRow{reg.RequestID: {reg.RequestID, "c9"}}, invAudit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obs := []Obs{reg, answered(opRegister, 0, 2, time.Second, 503)} // a 503 needs no entry
			if got := checkAudit("f", obs, c.audit); invariants(got) != c.want {
				t.Fatalf("violations %q, want %q: %+v", invariants(got), c.want, got)
			}
		})
	}
}

func TestCheckRecovery(t *testing.T) {
	fine := recovery{Replica: 0, Ready: true, ReadyAfter: time.Second, Policy: true, PolicyAfter: 2 * time.Second, Want: 7, Got: 7}
	cases := []struct {
		name string
		rec  recovery
		want string
	}{
		{"ready and current", fine, ""},
		{"never ready", with2(fine, func(r *recovery) { r.Ready, r.ReadyAfter = false, 30*time.Second }), invReady},
		{"ready too late", with2(fine, func(r *recovery) { r.ReadyAfter = 16 * time.Second }), invReady},
		{"the policy 16 s late", with2(fine, func(r *recovery) { r.PolicyAfter = 16 * time.Second }), invPolicy},
		{"the old policy still", with2(fine, func(r *recovery) { r.Policy, r.Got, r.PolicyAfter = false, 6, 30*time.Second }), invPolicy},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := checkRecovery("f", []recovery{c.rec}, 15*time.Second, 5*time.Second); invariants(got) != c.want {
				t.Fatalf("violations %q, want %q: %+v", invariants(got), c.want, got)
			}
		})
	}
}

func with2(r recovery, f func(*recovery)) recovery { f(&r); return r }

func TestCheckHydra(t *testing.T) {
	created := answered(opRegister, 0, 1, time.Second, 201)
	deleted := answered(opDelete, 1, 3, time.Second, 204)
	timedOut := answered(opRegister, 0, 1, 10*time.Second, 504)
	alreadyThere := with(answered(opRegister, 1, 70, time.Second, 400), func(o *Obs) {
		o.Error, o.Description = "invalid_client_metadata", "software sw0 already has a registration (client_id c0)"
	})
	retried := answered(opRegister, 1, 70, time.Second, 201)
	lostDelete := with(answered(opDelete, 1, 3, 30*time.Second, 0), func(o *Obs) { o.Kind = kindNoAnswer })
	ours := func(sw string) string {
		if strings.HasPrefix(sw, "sw") {
			return "f"
		}
		return ""
	}
	c0 := hydraClient{ID: "c0", SoftwareID: "sw0"}
	// pg-restart of 2026-12-07: the TPP's DELETE got 502 "whether the
	// registration was deleted is not known" (Hydra revoked its tokens, then
	// failed the client delete), then 503 "store is unavailable"; it gave up
	// and registered: 503s, then 400 "already has a registration".
	createdJTI := with(created, func(o *Obs) { o.JTI = "j-created" })
	partial := with(answered(opDelete, 1, 3, time.Second, 502), func(o *Obs) {
		o.Error, o.Description = "temporarily_unavailable", "hydra is unavailable; whether the registration was deleted is not known; send the DELETE again"
	})
	storeDown := answered(opDelete, 2, 4, time.Second, 503)
	registerDown := with(answered(opRegister, 0, 6, time.Second, 503), func(o *Obs) { o.JTI = "j-after" })
	afterPartial := []Obs{createdJTI, partial, storeDown, registerDown, alreadyThere}
	retriedDelete := answered(opDelete, 0, 80, time.Second, 204)
	goneDelete := answered(opDelete, 0, 80, time.Second, 404)
	withJTI := func(jti string) hydraClient { return hydraClient{ID: "c0", SoftwareID: "sw0", JTI: jti} }
	cases := []struct {
		name    string
		obs     []Obs
		clients []hydraClient
		want    string
	}{
		{"a 201 the TPP holds, at Hydra", []Obs{created}, []hydraClient{c0}, ""},
		{"a 201 whose client is missing", []Obs{created}, nil, invAnswer},
		{"deleted with 204 and gone", []Obs{created, deleted}, nil, ""},
		{"deleted with 204 and back", []Obs{created, deleted}, []hydraClient{c0}, invDeleted},
		{"a 504, the client made anyway, the retry refused", []Obs{timedOut, alreadyThere}, []hydraClient{c0}, invOrphan},
		{"a 504, the client made anyway, the retry given it", []Obs{timedOut, retried}, []hydraClient{c0}, ""},
		{"a 504 and nothing made", []Obs{timedOut}, nil, ""},
		{"a lost DELETE: either way", []Obs{created, lostDelete}, []hydraClient{c0}, ""},
		{"a DELETE not known, then registrations refused: the TPP's own client", afterPartial, []hydraClient{withJTI("j-created")}, ""},
		{"a DELETE not known, then registrations refused: an updated client of the TPP", afterPartial, []hydraClient{withJTI("")}, ""},
		{"a DELETE not known, then a registration not known made the client", afterPartial, []hydraClient{withJTI("j-after")}, invOrphan},
		{"a DELETE not known, retried: 204 and gone", append(afterPartial[:3:3], retriedDelete), nil, ""},
		{"a DELETE not known, retried: 204 and at Hydra", append(afterPartial[:3:3], retriedDelete), []hydraClient{withJTI("j-created")}, invDeleted},
		{"a DELETE not known, retried: 404 and at Hydra", append(afterPartial[:3:3], goneDelete), []hydraClient{withJTI("j-created")}, invOrphan},
		{"a DELETE answered 404 while held, at Hydra", []Obs{created, goneDelete}, []hydraClient{c0}, invOrphan},
		{"a client no answer made", nil, []hydraClient{c0}, invOrphan},
		{"a client of software the load never used", nil, []hydraClient{{ID: "x", SoftwareID: "bank-app"}}, ""},
		{"two clients of one software", []Obs{created}, []hydraClient{c0, {ID: "c1", SoftwareID: "sw0"}}, invOrphan + "," + invOnePerSW},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := checkHydra(c.obs, c.clients, ours); invariants(got) != c.want {
				t.Fatalf("violations %q, want %q: %+v", invariants(got), c.want, got)
			}
		})
	}
}

func TestStuck(t *testing.T) {
	timedOut := answered(opRegister, 0, 1, 10*time.Second, 504)
	refused := with(answered(opRegister, 1, 5, time.Second, 400), func(o *Obs) {
		o.Error, o.Description = "invalid_client_metadata", "software sw0 already has a registration (client_id c0)"
	})
	cases := []struct {
		name string
		obs  []Obs
		want bool
	}{
		{"a registration with no definite answer", []Obs{timedOut}, true},
		{"told one exists that it never got", []Obs{refused}, true},
		{"told one exists while it holds it", []Obs{answered(opRegister, 0, 0, time.Second, 201), refused}, false},
		{"a 504, then a 201", []Obs{timedOut, answered(opRegister, 0, 3, time.Second, 201)}, false},
		{"registered", []Obs{answered(opRegister, 0, 0, time.Second, 201)}, false},
		{"a DELETE with no definite answer", []Obs{answered(opRegister, 0, 0, time.Second, 201), answered(opDelete, 0, 1, time.Second, 502)}, true},
		{"a DELETE not known, retried: 204", []Obs{answered(opRegister, 0, 0, time.Second, 201), answered(opDelete, 0, 1, time.Second, 502),
			answered(opDelete, 0, 3, time.Second, 204)}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, deleting := stuck(c.obs)
			if got["f-0"] != c.want {
				t.Fatalf("stuck = %v, want %v", got["f-0"], c.want)
			}
			// Only a TPP whose last DELETE's outcome is unknown sends it again.
			last := c.obs[len(c.obs)-1]
			if want := last.Op == opDelete && last.unknownOutcome(); deleting["f-0"] != want {
				t.Fatalf("deleting = %v, want %v", deleting["f-0"], want)
			}
		})
	}
}
