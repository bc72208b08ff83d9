package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// tally is a fault's requests to obdcr by how they ended.
type tally struct {
	requests, created, ok, client, server, none int
}

func count(obs []Obs) tally {
	var t tally
	for _, o := range obs {
		if !o.toObdcr() {
			continue
		}
		t.requests++
		switch {
		case o.Kind != kindAnswered:
			t.none++
		case o.Status == 201:
			t.created++
		case o.Status >= 500:
			t.server++
		case o.Status >= 400:
			t.client++
		default:
			t.ok++
		}
	}
	return t
}

// recoveredIn is how long after the heal every replica was ready and served
// the last policy; "-" when one never did within the probes' time.
func recoveredIn(recs []recovery) string {
	var worst time.Duration
	for _, r := range recs {
		if !r.Ready || !r.Policy {
			return "not in 30 s"
		}
		worst = max(worst, r.ReadyAfter, r.PolicyAfter)
	}
	return fmt.Sprintf("%.1f s", worst.Seconds())
}

const tableHead = "| fault | requests | 201 | 200/204 | 4xx | 5xx | no answer | violations | recovered in |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"

func tableRow(r *faultResult) string {
	t := count(r.obs)
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d | %d | %s |\n", r.fault.name, t.requests, t.created, t.ok,
		t.client, t.server, t.none, len(r.violations), recoveredIn(r.recs))
}

func totalViolations(results []*faultResult) int {
	n := 0
	for _, r := range results {
		n += len(r.violations)
	}
	return n
}

// byInvariant groups violations, invariants in a fixed order.
func byInvariant(vs []Violation) ([]string, map[string][]Violation) {
	groups := map[string][]Violation{}
	for _, v := range vs {
		groups[v.Invariant] = append(groups[v.Invariant], v)
	}
	var names []string
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, groups
}

// printReport writes the table, the violations (the first few of each kind),
// and the last line the issue names.
// more names where every violation is written.
func printReport(w io.Writer, results []*faultResult, more string) {
	fmt.Fprint(w, "\n"+tableHead)
	for _, r := range results {
		fmt.Fprint(w, tableRow(r))
	}
	for _, r := range results {
		names, groups := byInvariant(r.violations)
		for _, n := range names {
			vs := groups[n]
			fmt.Fprintf(w, "\n%s: %s: %d\n", r.fault.name, n, len(vs))
			for i, v := range vs {
				if i == 5 {
					fmt.Fprintf(w, "  ... and %d more (%s has them all)\n", len(vs)-5, more)
					break
				}
				fmt.Fprintf(w, "  - %s\n", v.Detail)
			}
		}
	}
	fmt.Fprintf(w, "\nfaults: %d run, %d invariant violations\n", len(results), totalViolations(results))
}

// writeResults writes RESULTS.md: how the run was made, the table, what each
// invariant means and its bound, every violation, and what was not done.
func writeResults(path string, opt options, results []*faultResult, took time.Duration) error {
	var b strings.Builder
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	fmt.Fprintf(&b, "# %s\n\n", opt.title)
	fmt.Fprintf(&b, "Measured by `deploy/faults` on %s, commit %s, %d CPUs, in %s. Each fault lasted %s, with the load running %s before it and %s after its heal; compensation window %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), strings.TrimSpace(string(commit)), runtime.NumCPU(), took.Round(time.Second),
		opt.duration, opt.warm, opt.after, opt.window)
	b.WriteString(topologyText)
	fmt.Fprintf(&b, "\nLoad: %d closed-loop TPPs (register, GET, PUT, DELETE (sent again until its outcome is known), then the deleted registration's own request replayed to another replica), each request to the next replica; an admin changes the UK policy every 1.5 s on each replica in turn. A request waits %s for its answer.\n\n",
		opt.workers, opt.timeout)
	b.WriteString(tableHead)
	for _, r := range results {
		b.WriteString(tableRow(r))
	}
	fmt.Fprintf(&b, "\nfaults: %d run, %d invariant violations\n\n## The faults\n\n", len(results), totalViolations(results))
	for _, r := range results {
		fmt.Fprintf(&b, "- `%s`: %s. %s.\n", r.fault.name, r.fault.what, r.notes)
	}
	b.WriteString(clockSkewText)
	fmt.Fprintf(&b, invariantsText, opt.window, opt.policyWithin, opt.readyWithin, opt.budget, opt.slack, opt.budget+opt.slack, opt.timeout)
	b.WriteString("\n## Violations\n")
	if totalViolations(results) == 0 {
		b.WriteString("\nNone.\n")
	}
	for _, r := range results {
		names, groups := byInvariant(r.violations)
		for _, n := range names {
			fmt.Fprintf(&b, "\n### %s: %s (%d)\n\n", r.fault.name, n, len(groups[n]))
			for _, v := range groups[n] {
				fmt.Fprintf(&b, "- %s\n", v.Detail)
			}
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

const topologyText = `Topology: one machine, a network namespace per host, each with its own address on 10.231.0.0/24 (a veth pair
to a bridge that itself lives in a namespace, so that nothing is added to the machine's own network):
PostgreSQL (.10), Hydra v2.3.0 on that PostgreSQL (.11), the sandbox directory and TPP JWKS (.12), obdcr
replicas r1, r2, r3 on that PostgreSQL (.21-.23), the load client (.30) and the harness, which only watches
(.40). Partitions are nftables drop rules in the cut replica's namespace, both ways.
`

const clockSkewText = `
Not run: **clock skew of one replica.** obdcr has no clock-offset setting and reads the wall clock. The usual tools
cannot skew one Go process honestly: libfaketime works by LD_PRELOAD on libc, and Go reads the clock through the
vDSO without libc; Linux time namespaces offset only the monotonic and boot clocks, not the wall clock. Changing
the machine's clock would skew every part at once, which is no skew at all. It needs a clock obdcr reads in tests
(or an offset setting), which is not in this change.
`

const invariantsText = `
## Invariants

Checked after each fault against Hydra's admin API (the client list), obdcr's tables in PostgreSQL
(obdcr_replay, obdcr_audit, obdcr_profiles) and each replica's admin listener (its readiness and the policy it
serves); never obdcr's logs. Hydra's list is read once at the end, after the compensation window (%s) has
passed for every fault and every TPP that could not register has retried once.

- ` + "`no-orphan`" + `: every client obdcr made at Hydra is one its TPP was answered 201 for (and has not deleted), or is
  gone. A client whose create had no definite answer (5xx, no answer, a dropped connection), and whose TPP's
  retry after the window did not get it, is an orphan; so is one whose DELETE was answered 404. A client whose
  last DELETE had no definite answer is still its TPP's (the TPP sends the DELETE again, with a new token and
  backing off, until it is answered 204 or 404, and again after the window), unless its request_jti at Hydra is
  that of a registration sent afterwards with no definite answer: then that registration made it, an orphan.
- ` + "`one-client-per-software`" + `: at most one Hydra client per software_id (UK's multiple_registrations is off).
- ` + "`audit-for-every-201`" + `: every 201 has an approved registration entry in obdcr_audit with the request's
  X-Request-Id and the client_id answered.
- ` + "`jti-accepted-once`" + `: no jti was accepted (201, or 200 to PUT) twice, the replay of each deleted
  registration's request included; every accepted jti is in obdcr_replay.
- ` + "`policy-within-5s`" + `: from the heal, every replica serves (GET /admin/policies) the uk version PostgreSQL holds
  at the heal within %s.
- ` + "`ready-after-heal`" + `: every replica's admin /health/ready answers 200 within %s of the heal.
- ` + "`answer-shape`" + `: every answer is a 201 with a client_id, a 200 or 204 where management gives one, a 4xx with
  its ` + "`error`" + `, or a 5xx; a connection that ends without an answer is a violation too. And no 201 (or later
  200) whose client is missing at Hydra at the end.
- ` + "`answered-within-budget`" + `: obdcr's budget is %s (its Hydra and store calls' own timeouts); the bound checked
  is that plus %s for the client's side (connection, TLS, two cores shared by every part): %s. A request
  that had no answer within the client's timeout (%s) is a violation.
- ` + "`deleted-stays-deleted`" + `: a client whose last definite answer was a 204 to DELETE is not at Hydra at the end.

Requests to a replica cut from the load client (the split, the kills) are excused from the two answer checks
while that path was cut: no answer is then the network's doing.
`
