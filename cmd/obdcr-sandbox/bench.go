package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/obdcr/obdcr/cmd/internal/cmdline"
	"github.com/obdcr/obdcr/deploy/sandbox"
)

// The measurements make bench runs: load, growth and the attackers' floods.

// benchFlags are what every measurement takes: the sandbox, obdcr's two
// listeners, and how many requests, how many at once.
type benchFlags struct {
	dir, obdcrURL, adminURL *string
	concurrency, count      *int
}

func newBenchFlags(fs *flag.FlagSet, e *cmdEnv) benchFlags {
	return benchFlags{dir: dirFlag(fs, e), obdcrURL: obdcrFlag(fs), adminURL: adminURLFlag(fs),
		concurrency: fs.Int("concurrency", 16, "requests in flight"), count: fs.Int("count", 1000, "requests")}
}

func hydraAdminFlag(fs *flag.FlagSet, help string) *string {
	return fs.String("hydra-admin", "http://127.0.0.1:4445", help)
}

func loadCmd(fs *flag.FlagSet, e *cmdEnv) action {
	b := newBenchFlags(fs, e)
	aud := audFlag(fs)
	hydraAdmin := hydraAdminFlag(fs, "Hydra's admin API, driven alone for comparison")
	tppCount := fs.Int("tpps", 8, "distinct TPPs")
	openLoop := fs.Float64("open-loop", 0, "seconds of open-loop runs at a fixed rate (half of Hydra's capacity, then the knee); 0 skips them")
	return func(ctx context.Context, _ []string) error {
		sb, err := sandbox.Load(*b.dir)
		if err != nil {
			return err
		}
		res, err := sandbox.RunLoad(ctx, sb, sandbox.LoadConfig{
			ObdcrURL: *b.obdcrURL, AdminURL: *b.adminURL, AdminToken: e.getenv("OBDCR_ADMIN_TOKEN"), HydraAdmin: *hydraAdmin,
			Audience: *aud, Concurrency: *b.concurrency, Count: *b.count, TPPs: *tppCount, OpenLoopSeconds: *openLoop,
		}, e.stderr)
		if err != nil {
			return err
		}
		out := e.stdout
		fmt.Fprintf(out, "concurrency %d, %d each:\n", res.Concurrency, res.Obdcr.Count)
		fmt.Fprintf(out, "  obdcr + Hydra  %8.1f registrations/s  p50 %6.1f ms  p99 %6.1f ms  errors %d\n", res.Obdcr.PerSecond, res.Obdcr.P50ms, res.Obdcr.P99ms, res.Obdcr.Errors)
		fmt.Fprintf(out, "  Hydra alone    %8.1f creates/s        p50 %6.1f ms  p99 %6.1f ms  errors %d\n", res.Hydra.PerSecond, res.Hydra.P50ms, res.Hydra.P99ms, res.Hydra.Errors)
		fmt.Fprintf(out, "  ratio %.2f; JWKS fetches per registration %.3f\n", res.ObdcrOverHydra, res.JWKSFetchesPerRegistration)
		fmt.Fprintf(out, "  CPU ms per operation  obdcr %.2f  Hydra %.2f  load tool %.2f  (obdcr + Hydra)\n", res.Obdcr.CPU.Obdcr, res.Obdcr.CPU.Hydra, res.Obdcr.CPU.Load)
		fmt.Fprintf(out, "                        obdcr %.2f  Hydra %.2f  load tool %.2f  (Hydra alone)\n", res.Hydra.CPU.Obdcr, res.Hydra.CPU.Hydra, res.Hydra.CPU.Load)
		if ol := res.OpenLoop; ol != nil {
			fmt.Fprintf(out, "  open loop at %.0f/s: obdcr + Hydra p50 %.1f p99 %.1f p99.9 %.1f ms; Hydra alone p50 %.1f p99 %.1f p99.9 %.1f ms; p99 ratio %.2f; knee %.0f/s\n",
				ol.HalfCapacity, ol.Obdcr.P50ms, ol.Obdcr.P99ms, ol.Obdcr.P999ms, ol.Hydra.P50ms, ol.Hydra.P99ms, ol.Hydra.P999ms, ol.P99Ratio, ol.Knee)
			fmt.Fprintf(out, "openloop p99_ms_at_half_capacity=%.1f p99_ratio_at_half_capacity=%.2f knee_per_s=%.0f\n", ol.Obdcr.P99ms, ol.P99Ratio, ol.Knee)
		}
		j, _ := json.Marshal(res)
		fmt.Fprintln(out, string(j))
		if res.Obdcr.Errors > 0 || res.Hydra.Errors > 0 {
			return fmt.Errorf("%d registrations and %d creates failed", res.Obdcr.Errors, res.Hydra.Errors)
		}
		return nil
	}
}

func edgeLoadCmd(fs *flag.FlagSet, e *cmdEnv) action {
	b := newBenchFlags(fs, e)
	hydraAdmin := hydraAdminFlag(fs, "Hydra's admin API: its CPU, and a client for the comparison")
	hydraPublic := fs.String("hydra-public", "http://127.0.0.1:4444", "Hydra's public API, whose token endpoint is driven alone for comparison")
	flows := fs.Int("flows", 200, "whole flows timed for obdcr's CPU")
	openLoop := fs.Float64("open-loop", 10, "seconds of the open-loop token comparison at half of Hydra's capacity")
	return func(ctx context.Context, _ []string) error {
		sb, err := sandbox.Load(*b.dir)
		if err != nil {
			return err
		}
		res, err := sandbox.RunEdgeBench(ctx, sb, sandbox.EdgeBenchConfig{ObdcrURL: *b.obdcrURL, AdminURL: *b.adminURL,
			HydraAdmin: *hydraAdmin, HydraPublic: *hydraPublic, Flows: *flows, Concurrency: *b.concurrency, Count: *b.count,
			OpenLoopSeconds: *openLoop}, e.stderr)
		if err != nil {
			return err
		}
		out := e.stdout
		fmt.Fprintf(out, "  %d flows, %.1f/s, %d errors: obdcr CPU %.2f ms a flow (%.2f TLS handshakes at the edge), Hydra %.2f ms\n",
			res.Flows, res.FlowsPerSecond, res.FlowErrors, res.FlowCPUms, res.HandshakesPerFlow, res.FlowHydraCPUms)
		fmt.Fprintf(out, "  token at %.0f/s (half of Hydra's %.0f/s): through the edge p50 %.1f p99 %.1f ms (%d errors, %d new TLS connections); Hydra alone p50 %.1f p99 %.1f ms (%d errors)\n",
			res.HalfCapacity, res.HydraCapacity, res.Edge.P50ms, res.Edge.P99ms, res.Edge.Errors, res.OpenLoopHandshakes, res.Hydra.P50ms, res.Hydra.P99ms, res.Hydra.Errors)
		for _, side := range []struct{ name, err string }{{"a flow or the capacity run", res.FirstError},
			{"through the edge", res.Edge.FirstError}, {"Hydra alone", res.Hydra.FirstError}} {
			if side.err != "" {
				fmt.Fprintf(out, "  first error %s: %s\n", side.name, side.err)
			}
		}
		fmt.Fprintf(out, "edge edge_flow_cpu_ms=%.2f edge_token_p99_ratio=%.2f\n", res.FlowCPUms, res.TokenP99Ratio)
		j, _ := json.Marshal(res)
		fmt.Fprintln(out, string(j))
		if res.FlowErrors > 0 {
			return fmt.Errorf("%d of %d flows failed: %s", res.FlowErrors, res.Flows, res.FirstError)
		}
		return nil
	}
}

func growthCmd(fs *flag.FlagSet, e *cmdEnv) action {
	b := newBenchFlags(fs, e)
	aud := audFlag(fs)
	hydraAdmin := hydraAdminFlag(fs, "Hydra's admin API, which --prefill fills")
	growthTPPs := fs.String("growth-tpps", "10,1000,10000", "the counts of distinct TPPs, in turn")
	prefill := fs.Int("prefill", 0, "clients put in Hydra first")
	settle := fs.Duration("settle", time.Minute, "how long after each step background JWKS fetches are counted")
	profileDir := fs.String("profile-dir", "", "where to write obdcr's CPU and heap profiles of each step (cpu-N.pprof, heap-N.pprof), taken after its figures")
	profileSeconds := fs.Int("profile-seconds", 15, "how long each step's CPU profile runs")
	refURL := fs.String("reference-obdcr", "", "a second obdcr, fresh: after the steps, the first step's TPPs register there in blocks alternating with the last step's (the CPU comparison that machine drift does not move)")
	refAdmin := fs.String("reference-admin-url", "", "the reference obdcr's admin API (with --reference-obdcr)")
	return func(ctx context.Context, _ []string) error {
		if (*refURL == "") != (*refAdmin == "") {
			return cmdline.UsageError("--reference-obdcr and --reference-admin-url go together")
		}
		var counts []int
		for _, f := range strings.Split(*growthTPPs, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return cmdline.UsageError(fmt.Sprintf("--growth-tpps: %q is not a count", f))
			}
			counts = append(counts, n)
		}
		sb, err := sandbox.Load(*b.dir)
		if err != nil {
			return err
		}
		res, err := sandbox.RunGrowth(ctx, sb, sandbox.GrowthConfig{ObdcrURL: *b.obdcrURL, AdminURL: *b.adminURL,
			AdminToken: e.getenv("OBDCR_ADMIN_TOKEN"), HydraAdmin: *hydraAdmin, Audience: *aud, TPPs: counts,
			Count: *b.count, Concurrency: *b.concurrency, Prefill: *prefill, Settle: *settle,
			ProfileDir: *profileDir, ProfileSeconds: *profileSeconds, ReferenceURL: *refURL, ReferenceAdminURL: *refAdmin}, e.stderr)
		if err != nil {
			return err
		}
		for _, st := range res.Steps {
			fmt.Fprintf(e.stdout, "growth tpps=%d registrations_per_s=%.1f cpu_ms_per_registration=%.2f peak_rss_mib=%.1f jwks_cached=%.0f background_fetches_per_min=%.2f register_polls_per_min=%.2f errors=%d\n",
				st.TPPs, st.PerSecond, st.CPUMsPerRegistration, st.PeakRSSMiB, st.JWKSCached, st.BackgroundFetchesPerMin, st.RegisterPollsPerMin, st.Errors)
		}
		if p := res.Paired; p != nil {
			fmt.Fprintf(e.stdout, "growth paired small_tpps=%d large_tpps=%d cpu_ms_small=%.2f cpu_ms_large=%.2f cpu_large_over_small=%.2f errors=%d\n",
				p.SmallTPPs, p.LargeTPPs, p.CPUMsSmall, p.CPUMsLarge, p.Ratio, p.Errors)
		}
		fmt.Fprintf(e.stdout, "growth admin_lookup_org_id_ms=%.1f admin_lookup_software_id_ms=%.1f hydra_clients=%d\n", res.OrgLookupMs, res.SoftwareLookup, res.Prefilled)
		j, _ := json.Marshal(res)
		fmt.Fprintln(e.stdout, string(j))
		return nil
	}
}

func floodCmd(fs *flag.FlagSet, e *cmdEnv) action {
	b := newBenchFlags(fs, e)
	mode := fs.String("mode", "all", "methods, management, refusals, claims, sign-in (ten 30 MiB console sign-ins, whatever --count) or all")
	maxRSS := fs.Float64("max-rss-mib", 0, "fail if obdcr's resident memory passes this (0: report only)")
	return func(ctx context.Context, _ []string) error {
		sb, err := sandbox.Load(*b.dir)
		if err != nil {
			return err
		}
		modes := []string{*mode}
		if *mode == "all" {
			modes = sandbox.FloodModes
		}
		var failed []string
		for _, m := range modes {
			res, err := sandbox.RunFlood(ctx, sb, sandbox.FloodConfig{ObdcrURL: *b.obdcrURL, AdminURL: *b.adminURL,
				AdminToken: e.getenv("OBDCR_ADMIN_TOKEN"), Mode: m, Count: *b.count, Concurrency: *b.concurrency})
			if err != nil {
				return err
			}
			j, _ := json.Marshal(res)
			fmt.Fprintln(e.stdout, string(j))
			switch {
			case *maxRSS > 0 && res.RSSPeakMiB > *maxRSS:
				failed = append(failed, fmt.Sprintf("%s: obdcr reached %.1f MiB, over %.0f", m, res.RSSPeakMiB, *maxRSS))
			case res.SeriesAfter != res.SeriesBefore:
				failed = append(failed, fmt.Sprintf("%s: request series %d -> %d", m, res.SeriesBefore, res.SeriesAfter))
			case res.AuditAfter > res.AuditBefore+1:
				failed = append(failed, fmt.Sprintf("%s: audit %d -> %d entries", m, res.AuditBefore, res.AuditAfter))
			}
		}
		if len(failed) > 0 {
			return errors.New(strings.Join(failed, "; "))
		}
		return nil
	}
}
