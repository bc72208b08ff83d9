package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// options say what a run does; flags set them (main.go).
type options struct {
	faults       []string
	duration     time.Duration // how long each fault is in force
	warm, after  time.Duration // load before the fault, and after its heal
	window       time.Duration // the compensation window: half-made registrations are gone or completed by then
	budget       time.Duration // obdcr's own request budget
	slack        time.Duration // the load client's share of a request's time (TLS, scheduling), on top of the budget
	readyWithin  time.Duration
	policyWithin time.Duration
	workers      int
	tppsEach     int // TPPs per worker: a worker moves on to the next when one is stuck
	timeout      time.Duration
	work, bin    string
	hydraBin     string
	results      string // RESULTS.md to write ("" for none)
	title        string
}

// faultResult is one fault's run, observations and verdicts.
type faultResult struct {
	fault      fault
	run        faultRun
	obs        []Obs
	recs       []recovery
	notes      string
	violations []Violation
	err        error
}

type harness struct {
	opt     options
	c       *cluster
	results []*faultResult
	out     io.Writer
}

func (h *harness) say(format string, args ...any) {
	fmt.Fprintf(h.out, "faults: "+format+"\n", args...)
}

func (h *harness) chosen() ([]fault, error) {
	all := catalogue()
	var out []fault
	for _, name := range h.opt.faults {
		found := false
		for _, f := range all {
			if f.name == name {
				out, found = append(out, f), true
			}
		}
		if !found {
			var names []string
			for _, f := range all {
				names = append(names, f.name)
			}
			return nil, fmt.Errorf("no fault %q; the faults are %s", name, strings.Join(names, ", "))
		}
	}
	return out, nil
}

// run brings the cluster up, runs each fault under load, waits out the
// compensation window, has the stuck TPPs retry, and checks Hydra's state.
func (h *harness) run(ctx context.Context) error {
	faults, err := h.chosen()
	if err != nil {
		return err
	}
	tpps := map[string]int{}
	for _, f := range faults {
		tpps[f.name] = h.opt.workers * h.opt.tppsEach
	}
	began := time.Now()
	h.say("starting PostgreSQL, Hydra, the sandbox and 3 obdcr replicas, each on its own network namespace (%s)", subnet)
	if h.c, err = startCluster(ctx, h.opt.work, h.opt.bin, h.opt.hydraBin, tpps); err != nil {
		return err
	}
	defer h.c.stop()
	h.say("up in %s", time.Since(began).Round(time.Second))
	var lastHeal time.Time
	for _, f := range faults {
		r := h.runFault(ctx, f)
		h.results = append(h.results, r)
		if r.err != nil {
			return fmt.Errorf("%s: %w", f.name, r.err)
		}
		lastHeal = r.run.Heal
		h.say("%-16s %d requests, %d violations", f.name, countObdcr(r.obs), len(r.violations))
		if err := h.allReady(ctx); err != nil {
			return fmt.Errorf("after %s: %w", f.name, err)
		}
	}
	if wait := time.Until(lastHeal.Add(h.opt.window)); wait > 0 {
		h.say("waiting %s: the compensation window (%s) after the last heal", wait.Round(time.Second), h.opt.window)
		sleepCtx(ctx, wait)
	}
	return h.settle(ctx)
}

// allReady waits for every replica to be ready before the next fault, so that
// one fault's tail is not counted in the next.
func (h *harness) allReady(ctx context.Context) error {
	for i := range replicas {
		if err := h.c.waitOK(ctx, adminURL(i)+"/health/ready", 60*time.Second, h.c.replicas[i]); err != nil {
			return err
		}
	}
	return nil
}

// runFault runs the load, injects the fault after warm, heals it, probes the
// recovery, and checks what the load saw and what the store holds.
func (h *harness) runFault(ctx context.Context, f fault) *faultResult {
	r := &faultResult{fault: f, run: faultRun{Name: f.name, Target: f.target, ClientPath: f.clientPath}}
	var names []string
	for i := 0; i < h.opt.workers*h.opt.tppsEach; i++ {
		names = append(names, fmt.Sprintf("%s-%d", f.name, i))
	}
	cfg := loadConfig{Fault: f.name, SandboxDir: h.c.sandboxDir, TPPs: names, Workers: h.opt.workers,
		Duration: h.opt.warm + h.opt.duration + h.opt.after, Timeout: h.opt.timeout, PolicyEvery: 1500 * time.Millisecond,
		Out: filepath.Join(h.opt.work, f.name+".jsonl")}
	load, err := h.startLoad(cfg)
	if err != nil {
		r.err = err
		return r
	}
	sleepCtx(ctx, h.opt.warm)
	r.run.Start = time.Now()
	r.run.Heal, r.notes, r.err = f.run(ctx, h.c, h.opt.duration)
	if r.err != nil {
		load.kill()
		return r
	}
	r.recs = h.c.probeRecovery(ctx, r.run.Heal, 30*time.Second)
	<-load.exited()
	if r.obs, r.err = readObs(cfg.Out); r.err != nil {
		return r
	}
	if f.clientPath {
		cutShort := 0
		for _, o := range r.obs {
			if o.Kind == kindDropped && o.Replica == f.target {
				cutShort++
			}
		}
		r.notes += fmt.Sprintf("; %d requests to r%d lost their connection mid-request", cutShort, f.target+1)
	}
	r.violations = checkAnswers(r.run, r.obs, h.opt.budget+h.opt.slack)
	r.violations = append(r.violations, checkRecovery(f.name, r.recs, h.opt.readyWithin, h.opt.policyWithin)...)
	r.err = h.checkStore(ctx, f.name, f.name+"-", r.obs, &r.violations)
	return r
}

// checkStore holds the load's accepted requests to PostgreSQL: the jtis in the
// replay cache, the 201s in the audit.
// Their audit entries are those whose request id starts with idPrefix.
func (h *harness) checkStore(ctx context.Context, fault, idPrefix string, obs []Obs, v *[]Violation) error {
	held, err := h.c.replayHeld(ctx, obs)
	if err != nil {
		return err
	}
	*v = append(*v, checkJTI(fault, obs, held)...)
	audit, err := h.c.approvedRegistrations(ctx, idPrefix)
	if err != nil {
		return err
	}
	*v = append(*v, checkAudit(fault, obs, audit)...)
	return nil
}

func (h *harness) startLoad(cfg loadConfig) (*proc, error) {
	path := strings.TrimSuffix(cfg.Out, ".jsonl") + ".load.json"
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return nil, err
	}
	p := &proc{name: "load " + cfg.Fault, host: hostLoad, log: filepath.Join(h.opt.work, "load.log"),
		argv: []string{filepath.Join(h.opt.bin, "faults"), "load", path}}
	return p, p.start()
}

func readObs(path string) ([]Obs, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Obs
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var o Obs
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, o)
	}
	return out, sc.Err()
}

// settle has every stuck TPP retry once, then holds Hydra's clients to what
// every TPP was told, fault by fault.
func (h *harness) settle(ctx context.Context) error {
	faultOf := map[string]string{} // TPP name or software_id -> fault
	for _, r := range h.results {
		for i := 0; i < h.opt.workers*h.opt.tppsEach; i++ {
			name := fmt.Sprintf("%s-%d", r.fault.name, i)
			if t, err := h.c.sb.TPP(name); err == nil {
				faultOf[name], faultOf[t.SoftwareID] = r.fault.name, r.fault.name
			}
		}
	}
	var all []Obs
	for _, r := range h.results {
		all = append(all, r.obs...)
	}
	var retry, deleting []string
	stuckTPPs, deletingTPPs := stuck(all)
	for name := range stuckTPPs {
		retry = append(retry, name)
	}
	for name := range deletingTPPs {
		deleting = append(deleting, name)
	}
	if len(retry) > 0 {
		h.say("%d TPPs could not register (no definite answer, or told a registration exists that they were never given; %d of them with a DELETE whose outcome is unknown, sent again first); each retries once",
			len(retry), len(deleting))
		cfg := loadConfig{Fault: "retry", SandboxDir: h.c.sandboxDir, TPPs: retry, Deleting: deleting, Timeout: h.opt.timeout, Retry: true,
			Out: filepath.Join(h.opt.work, "retry.jsonl")}
		p, err := h.startLoad(cfg)
		if err != nil {
			return err
		}
		<-p.exited()
		obs, err := readObs(cfg.Out)
		if err != nil {
			return err
		}
		all = append(all, obs...)
		for _, r := range h.results {
			var mine []Obs
			for _, o := range obs {
				if faultOf[o.TPP] == r.fault.name {
					mine = append(mine, o)
				}
			}
			r.obs = append(r.obs, mine...)
			r.violations = append(r.violations, checkAnswers(faultRun{Name: r.fault.name, Target: -1}, mine, h.opt.budget+h.opt.slack)...)
			if err := h.checkStore(ctx, r.fault.name, "retry-", mine, &r.violations); err != nil {
				return err
			}
		}
	}
	clients, err := h.c.hydraClients(ctx)
	if err != nil {
		return err
	}
	h.say("Hydra holds %d clients obdcr made", len(clients))
	for _, v := range checkHydra(all, clients, func(sw string) string { return faultOf[sw] }) {
		for _, r := range h.results {
			if r.fault.name == v.Fault {
				r.violations = append(r.violations, v)
			}
		}
	}
	return nil
}

func countObdcr(obs []Obs) int {
	n := 0
	for _, o := range obs {
		if o.toObdcr() {
			n++
		}
	}
	return n
}
