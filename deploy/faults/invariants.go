package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// What the harness observes, and the invariants it holds obdcr to. The checks
// are pure functions of observations (the load's log of every request, the
// state read back from Hydra's admin API and PostgreSQL, the recovery probes),
// so they are unit-tested on fabricated ones.

// Operations the load sends.
const (
	opRegister = "register" // POST /register
	opGet      = "get"      // GET /register/{id}
	opUpdate   = "update"   // PUT /register/{id}
	opDelete   = "delete"   // DELETE /register/{id}
	opReplay   = "replay"   // POST /register with a request JWT already sent once
	opPolicy   = "policy"   // PUT /admin/policies/uk
	opToken    = "token"    // client_credentials at Hydra, not through obdcr
)

// How a request ended.
const (
	kindAnswered = "answered"  // an HTTP answer came
	kindNoAnswer = "no_answer" // sent whole, and nothing came within the client's timeout
	kindDropped  = "dropped"   // sent whole, and the connection ended without an answer
	kindUnsent   = "unsent"    // never reached obdcr: the connection or TLS handshake failed
)

// Obs is one request the load sent and what came of it.
type Obs struct {
	Op          string        `json:"op"`
	Replica     int           `json:"replica"` // index into replicas; -1 for Hydra
	TPP         string        `json:"tpp,omitempty"`
	SoftwareID  string        `json:"software_id,omitempty"`
	ClientID    string        `json:"client_id,omitempty"` // the client the request is about
	JTI         string        `json:"jti,omitempty"`
	RequestID   string        `json:"request_id"` // sent as X-Request-Id: the audit keeps it
	Start       time.Time     `json:"start"`
	Elapsed     time.Duration `json:"elapsed"`
	Kind        string        `json:"kind"`
	Status      int           `json:"status,omitempty"`
	Err         string        `json:"err,omitempty"`
	Error       string        `json:"error,omitempty"` // the OAuth error of the body
	Description string        `json:"error_description,omitempty"`
	Version     int64         `json:"version,omitempty"` // policy: the profile version answered
}

func (o Obs) String() string {
	s := fmt.Sprintf("%s %s via r%d at %s", o.Op, o.RequestID, o.Replica+1, o.Start.Format("15:04:05.000"))
	if o.ClientID != "" {
		s += " client " + o.ClientID
	}
	if o.Kind == kindAnswered {
		s += fmt.Sprintf(": %d after %s", o.Status, o.Elapsed.Round(time.Millisecond))
		if o.Description != "" {
			s += " " + truncate(o.Description, 140)
		}
		return s
	}
	return s + fmt.Sprintf(": %s after %s (%s)", o.Kind, o.Elapsed.Round(time.Millisecond), truncate(o.Err, 100))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// toObdcr says the request went to obdcr (not to Hydra).
func (o Obs) toObdcr() bool { return o.Op != opToken }

// unknownOutcome: the request may or may not have taken effect.
func (o Obs) unknownOutcome() bool {
	return o.Kind == kindNoAnswer || o.Kind == kindDropped || (o.Kind == kindAnswered && o.Status >= 500)
}

// Invariants, as the report names them.
const (
	invOrphan   = "no-orphan" // every client obdcr made is a 201 the TPP holds, or is gone, after the window
	invOnePerSW = "one-client-per-software"
	invAudit    = "audit-for-every-201"
	invJTI      = "jti-accepted-once"
	invPolicy   = "policy-within-5s"
	invReady    = "ready-after-heal"
	invAnswer   = "answer-shape" // 201 / 4xx with its reason / 5xx; never a 201 whose client is missing
	invBudget   = "answered-within-budget"
	invDeleted  = "deleted-stays-deleted"
)

// Violation is one invariant broken, with the fault and the request that show it.
type Violation struct {
	Invariant string `json:"invariant"`
	Fault     string `json:"fault"`
	Detail    string `json:"detail"`
}

// faultRun is when a fault was in force, and whom it cut.
type faultRun struct {
	Name   string
	Start  time.Time // the fault began
	Heal   time.Time // it was healed (a restart begun, a rule removed)
	Target int       // the replica it hit, -1 for none
	// ClientPath: the fault is on the path between the load and Target (a
	// split, a kill): requests to it then may get no answer at all, and that is
	// the network's doing, not obdcr's.
	ClientPath bool
}

// excused: the request crossed a path the fault cut.
func (f faultRun) excused(o Obs) bool {
	if !f.ClientPath || o.Replica != f.Target {
		return false
	}
	end := o.Start.Add(o.Elapsed)
	return end.After(f.Start) && o.Start.Before(f.Heal.Add(time.Second))
}

// checkAnswers holds every answer obdcr gave to its shape and its budget.
// bound is obdcr's request budget plus the slack the load's own side needs.
func checkAnswers(f faultRun, obs []Obs, bound time.Duration) []Violation {
	var out []Violation
	bad := func(inv, why string, o Obs) {
		out = append(out, Violation{inv, f.Name, why + ": " + o.String()})
	}
	for _, o := range obs {
		if !o.toObdcr() {
			continue
		}
		switch o.Kind {
		case kindNoAnswer:
			if !f.excused(o) {
				bad(invBudget, "no answer", o)
			}
			continue
		case kindDropped:
			if !f.excused(o) {
				bad(invAnswer, "connection ended without an answer", o)
			}
			continue
		case kindUnsent:
			continue
		}
		if o.Elapsed > bound && !f.excused(o) {
			bad(invBudget, fmt.Sprintf("answered after more than %s", bound), o)
		}
		switch {
		case o.Status >= 500:
		case o.Status >= 400:
			if o.Error == "" {
				bad(invAnswer, "a 4xx without its reason", o)
			}
		case o.Status == 201 && (o.Op == opRegister || o.Op == opReplay):
			if o.ClientID == "" {
				bad(invAnswer, "a 201 without a client_id", o)
			}
		case o.Status == 200 && (o.Op == opGet || o.Op == opUpdate || o.Op == opPolicy):
		case o.Status == 204 && o.Op == opDelete:
		default:
			bad(invAnswer, fmt.Sprintf("status %d is not an answer %s may give", o.Status, o.Op), o)
		}
	}
	return out
}

// accepted: obdcr took the request's jti (a registration or an update that succeeded).
func accepted(o Obs) bool {
	return o.Kind == kindAnswered && ((o.Status == 201 && (o.Op == opRegister || o.Op == opReplay)) || (o.Status == 200 && o.Op == opUpdate))
}

// checkJTI: no jti accepted twice (as the TPP saw it), and every accepted jti
// held in the shared replay cache (as PostgreSQL has it), so that no replica
// would take it again. held reports whether a request's replay key is stored.
func checkJTI(fault string, obs []Obs, held func(Obs) bool) []Violation {
	var out []Violation
	first := map[string]Obs{}
	for _, o := range obs {
		if !accepted(o) || o.JTI == "" {
			continue
		}
		if prev, ok := first[o.JTI]; ok {
			out = append(out, Violation{invJTI, fault, fmt.Sprintf("jti %s accepted twice: %s, then %s", o.JTI, prev, o)})
			continue
		}
		first[o.JTI] = o
		if held != nil && !held(o) {
			out = append(out, Violation{invJTI, fault, fmt.Sprintf("jti %s accepted but not in obdcr_replay: %s", o.JTI, o)})
		}
	}
	return out
}

// auditRow is an approved registration entry in obdcr_audit.
type auditRow struct {
	RequestID, ClientID string
}

// checkAudit: every 201 has its registration entry, approved, for its client.
func checkAudit(fault string, obs []Obs, audit map[string]auditRow) []Violation {
	var out []Violation
	for _, o := range obs {
		if o.Kind != kindAnswered || o.Status != 201 {
			continue
		}
		row, ok := audit[o.RequestID]
		switch {
		case !ok:
			out = append(out, Violation{invAudit, fault, "a 201 with no approved registration entry: " + o.String()})
		case row.ClientID != o.ClientID:
			out = append(out, Violation{invAudit, fault, fmt.Sprintf("the entry names client %s: %s", row.ClientID, o)})
		}
	}
	return out
}

// recovery is what the probes saw of one replica after a heal.
type recovery struct {
	Replica     int
	Ready       bool          // it answered ready within the probes' time
	ReadyAfter  time.Duration // from the heal
	Policy      bool          // it served the profile version the store had at the heal
	PolicyAfter time.Duration
	Want, Got   int64 // that version, and the last the replica served
}

// checkRecovery: after the heal every replica is ready within readyWithin
// and serves the last policy within policyWithin.
func checkRecovery(fault string, recs []recovery, readyWithin, policyWithin time.Duration) []Violation {
	var out []Violation
	for _, r := range recs {
		if !r.Ready || r.ReadyAfter > readyWithin {
			out = append(out, Violation{invReady, fault, fmt.Sprintf("r%d not ready within %s of the heal (ready: %v after %s)",
				r.Replica+1, readyWithin, r.Ready, r.ReadyAfter.Round(time.Millisecond))})
		}
		if !r.Policy || r.PolicyAfter > policyWithin {
			out = append(out, Violation{invPolicy, fault, fmt.Sprintf("r%d served uk policy version %d, not %d, for %s after the heal",
				r.Replica+1, r.Got, r.Want, r.PolicyAfter.Round(time.Millisecond))})
		}
	}
	return out
}

// hydraClient is a client in Hydra's admin list that obdcr made.
type hydraClient struct {
	ID, SoftwareID string
	// JTI is the request_jti obdcr keeps in the client's metadata: the jti of
	// the registration that created it, "" once an update replaced it.
	JTI string
}

// Where a client stands after what its TPP was told, in order.
const (
	stNone          = iota // nothing was ever asked
	stLive                 // a 201 or a later 200 the TPP holds
	stDeleted              // a 204 to DELETE
	stUnknownCreate        // a registration with no definite answer: a 5xx, none, a dropped connection
	stUnknownDelete        // a DELETE with no definite answer: the client is the TPP's still, until a retry says otherwise
	stGone                 // a 404 to DELETE: obdcr says there is no such registration
)

type clientState struct {
	state int
	why   Obs // the answer that put it there (the first of a run of answers without a definite outcome)
	n     int // answers without a definite outcome since the last definite one
	last  Obs // the last answer about the client
	// pending are the jtis of registrations with no definite answer sent while
	// a DELETE's outcome was unknown: a client at Hydra carrying one of them
	// was made by such a registration, and is not the TPP's.
	pending []string
}

// enter moves to state st because of o; a second answer without a definite
// outcome keeps the first as the reason and counts.
func (c clientState) enter(st int, o Obs) clientState {
	if st == c.state && (st == stUnknownCreate || st == stUnknownDelete) {
		c.n++
		return c
	}
	return clientState{state: st, why: o, n: 1, last: o}
}

// clientStates replays each client's requests in the order they were sent.
func clientStates(obs []Obs) map[string]clientState {
	sorted := append([]Obs(nil), obs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Start.Before(sorted[j].Start) })
	states := map[string]clientState{}
	for _, o := range sorted {
		if !o.toObdcr() || o.ClientID == "" || o.Kind == kindUnsent {
			continue
		}
		cur := states[o.ClientID]
		switch o.Op {
		case opRegister, opReplay:
			switch {
			case o.Kind == kindAnswered && o.Status == 201:
				cur = cur.enter(stLive, o)
			case o.unknownOutcome() && cur.state == stUnknownDelete:
				// The client may be the TPP's old one or this request's: the
				// client's own jti tells (checkHydra).
				cur.pending = append(cur.pending, o.JTI)
			case o.unknownOutcome() && cur.state != stLive:
				cur = cur.enter(stUnknownCreate, o)
			}
		case opGet, opUpdate:
			if o.Kind == kindAnswered && o.Status == 200 {
				cur = cur.enter(stLive, o)
			}
		case opDelete:
			switch {
			case o.Kind == kindAnswered && o.Status == 204:
				cur = cur.enter(stDeleted, o)
			case o.Kind == kindAnswered && o.Status == 404 && (cur.state == stLive || cur.state == stUnknownDelete):
				cur = cur.enter(stGone, o)
			case o.unknownOutcome() && (cur.state == stLive || cur.state == stUnknownDelete):
				cur = cur.enter(stUnknownDelete, o)
			}
		}
		cur.last = o
		states[o.ClientID] = cur
	}
	return states
}

// checkHydra holds Hydra's clients, read after every fault healed and the
// compensation window passed, to what the TPPs were told. faultOf names the
// fault whose load used a software_id ("" for one the load never used).
func checkHydra(obs []Obs, clients []hydraClient, faultOf func(softwareID string) string) []Violation {
	var out []Violation
	at := map[string]bool{}
	jtiAt := map[string]string{}
	perSW := map[string][]string{}
	for _, c := range clients {
		at[c.ID], jtiAt[c.ID] = true, c.JTI
		perSW[c.SoftwareID] = append(perSW[c.SoftwareID], c.ID)
	}
	for sw, ids := range perSW {
		if len(ids) > 1 {
			sort.Strings(ids)
			out = append(out, Violation{invOnePerSW, faultOf(sw), fmt.Sprintf("software %s has %d clients: %s", sw, len(ids), strings.Join(ids, ", "))})
		}
	}
	states := clientStates(obs)
	for id, st := range states {
		fault := faultOf(st.why.SoftwareID)
		switch {
		case st.state == stLive && !at[id]:
			out = append(out, Violation{invAnswer, fault, "a client the TPP holds is not at Hydra; last told: " + st.why.String()})
		case st.state == stDeleted && at[id]:
			out = append(out, Violation{invDeleted, fault, "deleted with 204, at Hydra again: " + st.why.String() + "; the last answer: " + st.last.String()})
		case st.state == stGone && at[id]:
			out = append(out, Violation{invOrphan, fault, "DELETE answered 404, at Hydra after the window: " + st.why.String() + "; the last answer: " + st.last.String()})
		case st.state == stUnknownDelete && at[id] && jtiAt[id] != "" && slices.Contains(st.pending, jtiAt[id]):
			out = append(out, Violation{invOrphan, fault, fmt.Sprintf("at Hydra, made by registration jti %s that had no definite answer, sent after a DELETE whose outcome was unknown (%s); the last answer: %s",
				jtiAt[id], st.why, st.last)})
		case st.state == stUnknownCreate && at[id]:
			detail := fmt.Sprintf("at Hydra, and its TPP never got it: %d registrations without a definite outcome, the first: %s", st.n, st.why)
			if st.last.RequestID != st.why.RequestID {
				detail += "; the last answer: " + st.last.String()
			}
			out = append(out, Violation{invOrphan, fault, detail})
		}
	}
	for _, c := range clients {
		if states[c.ID].state == stNone {
			if fault := faultOf(c.SoftwareID); fault != "" {
				out = append(out, Violation{invOrphan, fault, "client " + c.ID + " of software " + c.SoftwareID + " is at Hydra and no answer the TPP had made it"})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Detail < out[j].Detail })
	return out
}

// stuck are the TPPs whose last registration has no definite answer, or was
// refused because one exists that the TPP does not hold: after the compensation
// window the TPP retries, and that retry must succeed. deleting are those whose
// last DELETE has no definite answer: they send it again first.
func stuck(obs []Obs) (out, deleting map[string]bool) {
	out, deleting = map[string]bool{}, map[string]bool{}
	states := clientStates(obs)
	for _, st := range states {
		switch st.state {
		case stUnknownCreate:
			out[st.why.TPP] = true
		case stUnknownDelete:
			out[st.why.TPP], deleting[st.why.TPP] = true, true
		}
	}
	for _, o := range obs {
		if o.Op == opRegister && o.Kind == kindAnswered && o.Status == 400 && strings.Contains(o.Description, "already has a registration") &&
			states[o.ClientID].state != stLive {
			out[o.TPP] = true
		}
	}
	return out, deleting
}
