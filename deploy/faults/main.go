// Command faults is obdcr's multi-node fault harness: PostgreSQL, Hydra, the
// sandbox, three obdcr replicas and a load client, each on a network namespace
// of its own on one machine, and faults between them (partitions, kills,
// pauses, restarts) while a closed-loop registration, management and policy
// load runs. After each fault it checks invariants against Hydra's and
// PostgreSQL's own state, and prints a table (make faults; make test runs a
// short form). It needs root and ip(8) and nft(8); without them it says so in
// one line and does nothing.
//
//	faults all [flags]   set the network up, run (inside the harness's own namespace), tear it down
//	faults down          remove whatever a run left (namespaces, links, their processes)
//	faults run [flags]   the run itself; all starts it inside the namespace it watches from
//	faults load FILE     the load client; run starts it inside the load client's namespace
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// exitViolations is the exit code of a run that found violations, apart from
// 1 (the harness itself failed), so the caller decides what they mean.
const exitViolations = 3

// exitSkipped: namespaces cannot be made here; nothing ran.
const exitSkipped = 4

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: faults all|down|run [flags], faults load FILE")
		return 2
	}
	switch args[0] {
	case "all":
		return all(ctx, args[1:])
	case "down":
		for _, p := range netDown(context.Background()) {
			fmt.Fprintln(os.Stderr, "faults: teardown:", p)
		}
		return 0
	case "run":
		return runCmd(ctx, args[1:])
	case "load":
		return loadCmd(ctx, args[1:])
	}
	fmt.Fprintf(os.Stderr, "faults: unknown command %q\n", args[0])
	return 2
}

// all makes the network, runs the harness inside its watching namespace, and
// tears everything down, also when interrupted. A run that crashed before
// leaves namespaces behind; they are removed first.
func all(ctx context.Context, args []string) int {
	if why := canNamespace(); why != "" {
		fmt.Printf("faults: skipped: network namespaces cannot be made here (%s); nothing was run\n", why)
		return exitSkipped
	}
	opt, err := parseOptions(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 2
	}
	down := func() {
		for _, p := range netDown(context.Background()) {
			fmt.Fprintln(os.Stderr, "faults: teardown:", p)
		}
	}
	down()
	defer down()
	if err := os.RemoveAll(opt.work); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	if err := os.MkdirAll(opt.work, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	if err := netUp(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "faults: making the network:", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", hostObs.NS(), self, "run"}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	err = cmd.Run()
	// The database is the bulk of the scratch folder; the logs and the load's
	// observations stay until the next run, for whoever reads a violation.
	_ = os.RemoveAll(filepath.Join(opt.work, "pg"))
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
}

// parseOptions reads a run's flags.
func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("faults", flag.ContinueOnError)
	var all []string
	for _, f := range catalogue() {
		all = append(all, f.name)
	}
	names := fs.String("faults", strings.Join(all, ","), "the faults to run, in order")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long each fault is in force")
	fs.DurationVar(&o.warm, "warm", 4*time.Second, "load before each fault")
	fs.DurationVar(&o.after, "after", 8*time.Second, "load after each heal")
	fs.DurationVar(&o.window, "window", 60*time.Second, "the compensation window: a half-made registration is gone or completed by then")
	fs.DurationVar(&o.budget, "budget", 10*time.Second, "obdcr's request budget")
	fs.DurationVar(&o.slack, "slack", time.Second, "the client's share of a request's time, on top of the budget")
	fs.DurationVar(&o.readyWithin, "ready-within", 15*time.Second, "every replica ready this long after a heal")
	fs.DurationVar(&o.policyWithin, "policy-within", 5*time.Second, "every replica serving the last policy this long after a heal")
	fs.IntVar(&o.workers, "workers", 6, "closed-loop TPPs at once")
	fs.IntVar(&o.tppsEach, "tpps-each", 4, "TPPs each worker has, moving on when one is stuck")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long a request waits for its answer")
	fs.StringVar(&o.work, "work", filepath.Join(os.TempDir(), "obdcr-faults"), "scratch folder (removed at the start)")
	fs.StringVar(&o.bin, "bin", "bin", "folder of obdcr, obdcr-sandbox and faults")
	fs.StringVar(&o.hydraBin, "hydra", os.Getenv("OBDCR_HYDRA_BIN"), "Hydra v2.3.0 binary")
	fs.StringVar(&o.results, "results", "", "RESULTS.md to write (none if empty)")
	fs.StringVar(&o.title, "title", "obdcr under multi-node faults", "RESULTS.md's title")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.faults = strings.Split(*names, ",")
	if o.hydraBin == "" {
		return nil, errors.New("--hydra (or OBDCR_HYDRA_BIN): the Hydra v2.3.0 binary")
	}
	return o, nil
}

// runCmd is the run itself, inside the namespace the harness watches from.
func runCmd(ctx context.Context, args []string) int {
	opt, err := parseOptions(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 2
	}
	if opt.bin, err = filepath.Abs(opt.bin); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	h := &harness{opt: *opt, out: os.Stdout}
	began := time.Now()
	err = h.run(ctx)
	results := opt.results
	if results == "" {
		results = filepath.Join(opt.work, "RESULTS.md")
	}
	if len(h.results) > 0 {
		printReport(os.Stdout, h.results, results)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: the harness failed: %v (logs in %s)\n", err, opt.work)
		return 1
	}
	if err := writeResults(results, *opt, h.results, time.Since(began)); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	if totalViolations(h.results) > 0 {
		return exitViolations
	}
	return 0
}

// loadCmd is the load client, reading its configuration from a file.
func loadCmd(ctx context.Context, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: faults load FILE")
		return 2
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults load:", err)
		return 1
	}
	var cfg loadConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "faults load:", err)
		return 1
	}
	if err := runLoad(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "faults load:", err)
		return 1
	}
	return 0
}
