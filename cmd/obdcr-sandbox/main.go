// Command obdcr-sandbox is a local UK Open Banking Directory, AU CDR Register and
// TPP simulator, for demos, tests and TPP developers trying their flows.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
)

const usage = `obdcr-sandbox: a local directory (UK), CDR Register (AU) and TPP simulator

Usage:
  obdcr-sandbox init     [--dir D] [--listen ADDR]      make keys, a CA and certificates for obdcr
  obdcr-sandbox serve    [--dir D] [--listen ADDR]      serve the directory, Register and TPP JWKS over HTTPS
  obdcr-sandbox tpp add  [--dir D] --profile uk|au --name NAME
  obdcr-sandbox tpp list [--dir D]
  obdcr-sandbox register [--dir D] --tpp NAME --obdcr URL --aud AUD [--set claim=json ...] [--print-jwt]
                         [--dry-run --admin-url URL]   every rule's verdict, nothing registered (OBDCR_ADMIN_TOKEN)
  obdcr-sandbox token    [--dir D] --tpp NAME --token-url URL --client-id ID [--scope S]
  obdcr-sandbox get|delete [--dir D] --tpp NAME --obdcr URL --token-url URL --client-id ID
  obdcr-sandbox update   [--dir D] --tpp NAME --obdcr URL --token-url URL --client-id ID --aud AUD [--set claim=json ...]
  obdcr-sandbox status   [--dir D] --id SOFTWARE_OR_LEGAL_ENTITY_ID --status ACTIVE|INACTIVE|REMOVED|SUSPENDED|REVOKED|SURRENDERED
  obdcr-sandbox register-down [--dir D] true|false
  obdcr-sandbox load     [--dir D] --obdcr URL --aud AUD [--admin-url URL] [--hydra-admin URL] [--concurrency 16] [--count 1000] [--open-loop S]
                         registrations through obdcr, then Hydra creates alone, compared (OBDCR_ADMIN_TOKEN)
  obdcr-sandbox growth   [--dir D] --obdcr URL --aud AUD [--growth-tpps 10,1000,10000] [--prefill N] [--count 1000] [--settle 1m]
                         cost as the TPPs grow: registrations/s, obdcr CPU each, RSS, JWKS held and background fetches
  obdcr-sandbox flood    [--dir D] --obdcr URL [--admin-url URL] [--mode methods|management|refusals|claims|sign-in|all]
                         [--count 2000] [--max-rss-mib N]   attacker floods; obdcr's memory, series and audit
                         before and after, one JSON line each; fails past --max-rss-mib or on any growth
  obdcr-sandbox flow     [--dir D] --tpp NAME --obdcr URL --client-id ID   the registered client's flows on Hydra:
                         code flow with a signed request object, private_key_jwt, refresh, client_credentials
  obdcr-sandbox discovery [--dir D] --tpp NAME --obdcr URL   the bank's discovery document, as obdcr publishes it
  obdcr-sandbox hydra-client --client-id ID HYDRA_ADMIN_URL   show a client as Hydra has it

--dir defaults to $OBDCR_SANDBOX_DIR, else .sandbox. Files in it: ca.pem (trust it, and
give it to obdcr as OBDCR_TLS_CLIENT_CA_FILE), obdcr-cert.pem and obdcr-key.pem (obdcr's
server certificate), sandbox.json (all keys: for local use only).
`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "obdcr-sandbox:", err)
		os.Exit(1)
	}
}

type setFlags map[string]any

func (s setFlags) String() string { return "" }
func (s setFlags) Set(v string) error {
	k, raw, ok := strings.Cut(v, "=")
	if !ok {
		return errors.New("want claim=json")
	}
	var val any
	if err := json.Unmarshal([]byte(raw), &val); err != nil {
		val = raw // a bare word is a string
	}
	s[k] = val
	return nil
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(out, usage)
		return nil
	}
	cmd := args[0]
	if cmd == "tpp" && len(args) > 1 {
		cmd, args = "tpp "+args[1], args[1:]
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	def := os.Getenv("OBDCR_SANDBOX_DIR")
	if def == "" {
		def = ".sandbox"
	}
	dir := fs.String("dir", def, "sandbox folder")
	listen := fs.String("listen", "127.0.0.1:8600", "address to serve on")
	profile := fs.String("profile", "uk", "uk or au")
	name := fs.String("name", "", "TPP name")
	tppName := fs.String("tpp", "", "TPP name")
	obdcrURL := fs.String("obdcr", "https://127.0.0.1:8443", "obdcr TPP listener")
	aud := fs.String("aud", "", "request JWT aud (obdcr's OBDCR_ISSUER)")
	tokenURL := fs.String("token-url", "http://127.0.0.1:4444/oauth2/token", "Hydra token endpoint")
	clientID := fs.String("client-id", "", "registered client_id")
	scope := fs.String("scope", "", "token scope")
	id := fs.String("id", "", "software product or legal entity id")
	status := fs.String("status", "", "new status")
	printJWT := fs.Bool("print-jwt", false, "print the signed request instead of sending it")
	dryRun := fs.Bool("dry-run", false, "register: ask obdcr's dry run for every rule's verdict instead (needs --admin-url and OBDCR_ADMIN_TOKEN)")
	adminURL := fs.String("admin-url", "http://127.0.0.1:8444", "obdcr admin listener, for --dry-run and load")
	hydraAdmin := fs.String("hydra-admin", "http://127.0.0.1:4445", "load: Hydra's admin API, driven alone for comparison; serve: where the login and consent app accepts")
	concurrency := fs.Int("concurrency", 16, "load: requests in flight")
	count := fs.Int("count", 1000, "load: registrations, and as many Hydra creates")
	tppCount := fs.Int("tpps", 8, "load: distinct TPPs")
	openLoop := fs.Float64("open-loop", 0, "load: seconds of open-loop runs at a fixed rate (half of Hydra's capacity, then the knee); 0 skips them")
	growthTPPs := fs.String("growth-tpps", "10,1000,10000", "growth: the counts of distinct TPPs, in turn")
	prefill := fs.Int("prefill", 0, "growth: clients put in Hydra first")
	settle := fs.Duration("settle", time.Minute, "growth: how long after each step background JWKS fetches are counted")
	mode := fs.String("mode", "all", "flood: methods, management, refusals, claims, sign-in (ten 30 MiB console sign-ins, whatever --count) or all")
	maxRSS := fs.Float64("max-rss-mib", 0, "flood: fail if obdcr's resident memory passes this (0: report only)")
	sets := setFlags{}
	fs.Var(sets, "set", "override a request claim: claim=json (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "init":
		sb, err := sandbox.New("https://" + *listen)
		if err != nil {
			return err
		}
		if err := sb.SaveTo(*dir); err != nil {
			return err
		}
		if _, err := sandbox.WriteFiles(sb, *dir); err != nil {
			return err
		}
		fmt.Fprintf(out, "sandbox made in %s, to be served at %s\n", *dir, sb.BaseURL)
		fmt.Fprintf(out, "  UK directory JWKS:  %s/uk/directory/jwks\n  CDR Register JWKS:  %s/cdr-register/v1/jwks\n", sb.BaseURL, sb.BaseURL)
		return nil
	case "serve":
		if hydraAdminSet(fs) {
			sb, err := sandbox.Load(*dir)
			if err != nil {
				return err
			}
			if err := sb.SetHydraAdmin(*hydraAdmin); err != nil {
				return err
			}
		}
		return serve(ctx, *dir, *listen, out)
	case "flow":
		sb, _, c, err := tppClient(*dir, *tppName)
		if err != nil {
			return err
		}
		if *clientID == "" {
			return errors.New("--client-id is required")
		}
		rep, err := c.RunFlow(ctx, *obdcrURL, *clientID, sb.PKI().Pool())
		if err != nil {
			return err
		}
		return printJSON(out, rep)
	case "discovery":
		_, _, c, err := tppClient(*dir, *tppName)
		if err != nil {
			return err
		}
		res, err := c.Discovery(ctx, *obdcrURL)
		return show(out, res, err)
	case "tpp add":
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return err
		}
		if *name == "" {
			return errors.New("--name is required")
		}
		t, err := sb.AddTPP(*profile, *name)
		if err != nil {
			return err
		}
		return printJSON(out, map[string]any{"name": t.Name, "profile": t.Profile, "org_id": t.OrgID, "software_id": t.SoftwareID, "jwks_url": t.JWKSURL, "redirect_uris": t.RedirectURIs})
	case "tpp list":
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return err
		}
		for _, t := range sb.TPPs {
			fmt.Fprintf(out, "%-12s %-3s org_id=%s software_id=%s\n", t.Name, t.Profile, t.OrgID, t.SoftwareID)
		}
		return nil
	case "register", "update":
		sb, t, c, err := tppClient(*dir, *tppName)
		if err != nil {
			return err
		}
		if *aud == "" {
			return errors.New("--aud is required: obdcr's OBDCR_ISSUER")
		}
		now := time.Now()
		ssa, err := sb.Authority(t.Profile).SSA(t, now, nil)
		if err != nil {
			return err
		}
		jwt, err := t.Request(ssa, *aud, now, func(m map[string]any) {
			for k, v := range sets {
				m[k] = v
			}
		})
		if err != nil {
			return err
		}
		if *printJWT {
			fmt.Fprintln(out, jwt)
			return nil
		}
		var res *sandbox.Response
		if cmd == "register" && *dryRun {
			res, err = c.DryRun(ctx, *adminURL, os.Getenv("OBDCR_ADMIN_TOKEN"), jwt)
			return show(out, res, err)
		}
		if cmd == "register" {
			res, err = c.Register(ctx, *obdcrURL, jwt)
		} else {
			tok, terr := token(ctx, c, t, *tokenURL, *clientID, *scope)
			if terr != nil {
				return terr
			}
			res, err = c.Update(ctx, *obdcrURL, *clientID, tok, jwt)
		}
		return show(out, res, err)
	case "token":
		_, t, c, err := tppClient(*dir, *tppName)
		if err != nil {
			return err
		}
		tok, err := token(ctx, c, t, *tokenURL, *clientID, *scope)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, tok)
		return nil
	case "get", "delete":
		_, t, c, err := tppClient(*dir, *tppName)
		if err != nil {
			return err
		}
		tok, err := token(ctx, c, t, *tokenURL, *clientID, *scope)
		if err != nil {
			return err
		}
		var res *sandbox.Response
		if cmd == "get" {
			res, err = c.Get(ctx, *obdcrURL, *clientID, tok)
		} else {
			res, err = c.Delete(ctx, *obdcrURL, *clientID, tok)
		}
		return show(out, res, err)
	case "status":
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return err
		}
		if err := sb.SetStatus(*id, *status); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s is now %s at the sandbox Register\n", *id, *status)
		return nil
	case "hydra-client":
		// Shows a client as Hydra's admin API has it (the demo uses it).
		admin := fs.Arg(0)
		if admin == "" || *clientID == "" {
			return errors.New("usage: obdcr-sandbox hydra-client --client-id ID HYDRA_ADMIN_URL")
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(admin, "/")+"/admin/clients/"+*clientID, nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return show(out, &sandbox.Response{Status: res.StatusCode, Body: body}, nil)
	case "wait":
		// Waits until a URL answers 200 (any certificate: readiness only).
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // readiness probe
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if res, err := client.Get(fs.Arg(0)); err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return nil
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("%s did not answer 200 within 60s", fs.Arg(0))
	case "load":
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return err
		}
		res, err := sandbox.RunLoad(ctx, sb, sandbox.LoadConfig{
			ObdcrURL: *obdcrURL, AdminURL: *adminURL, AdminToken: os.Getenv("OBDCR_ADMIN_TOKEN"), HydraAdmin: *hydraAdmin,
			Audience: *aud, Concurrency: *concurrency, Count: *count, TPPs: *tppCount, OpenLoopSeconds: *openLoop,
		}, os.Stderr)
		if err != nil {
			return err
		}
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
		b, _ := json.Marshal(res)
		fmt.Fprintln(out, string(b))
		if res.Obdcr.Errors > 0 || res.Hydra.Errors > 0 {
			return fmt.Errorf("%d registrations and %d creates failed", res.Obdcr.Errors, res.Hydra.Errors)
		}
		return nil
	case "growth":
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return err
		}
		var counts []int
		for _, f := range strings.Split(*growthTPPs, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("--growth-tpps: %q is not a count", f)
			}
			counts = append(counts, n)
		}
		res, err := sandbox.RunGrowth(ctx, sb, sandbox.GrowthConfig{ObdcrURL: *obdcrURL, AdminURL: *adminURL,
			AdminToken: os.Getenv("OBDCR_ADMIN_TOKEN"), HydraAdmin: *hydraAdmin, Audience: *aud, TPPs: counts,
			Count: *count, Concurrency: *concurrency, Prefill: *prefill, Settle: *settle}, os.Stderr)
		if err != nil {
			return err
		}
		for _, st := range res.Steps {
			fmt.Fprintf(out, "growth tpps=%d registrations_per_s=%.1f cpu_ms_per_registration=%.2f peak_rss_mib=%.1f jwks_cached=%.0f background_fetches_per_min=%.2f register_polls_per_min=%.2f errors=%d\n",
				st.TPPs, st.PerSecond, st.CPUMsPerRegistration, st.PeakRSSMiB, st.JWKSCached, st.BackgroundFetchesPerMin, st.RegisterPollsPerMin, st.Errors)
		}
		fmt.Fprintf(out, "growth admin_lookup_org_id_ms=%.1f admin_lookup_software_id_ms=%.1f hydra_clients=%d\n", res.OrgLookupMs, res.SoftwareLookup, res.Prefilled)
		b, _ := json.Marshal(res)
		fmt.Fprintln(out, string(b))
		return nil
	case "flood":
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return err
		}
		modes := []string{*mode}
		if *mode == "all" {
			modes = sandbox.FloodModes
		}
		var failed []string
		for _, m := range modes {
			res, err := sandbox.RunFlood(ctx, sb, sandbox.FloodConfig{ObdcrURL: *obdcrURL, AdminURL: *adminURL,
				AdminToken: os.Getenv("OBDCR_ADMIN_TOKEN"), Mode: m, Count: *count, Concurrency: *concurrency})
			if err != nil {
				return err
			}
			b, _ := json.Marshal(res)
			fmt.Fprintln(out, string(b))
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
	case "register-down":
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return err
		}
		return sb.SetRegisterDown(fs.Arg(0) == "true")
	}
	return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
}

// hydraAdminSet: --hydra-admin was given.
func hydraAdminSet(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "hydra-admin" })
	return set
}

func tppClient(dir, name string) (*sandbox.Sandbox, *sandbox.TPP, *sandbox.Client, error) {
	sb, err := sandbox.Load(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	if name == "" {
		return nil, nil, nil, errors.New("--tpp is required")
	}
	t, err := sb.TPP(name)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := sandbox.NewClient(t, sb.PKI().Pool())
	return sb, t, c, err
}

func token(ctx context.Context, c *sandbox.Client, t *sandbox.TPP, tokenURL, clientID, scope string) (string, error) {
	if clientID == "" {
		return "", errors.New("--client-id is required")
	}
	if scope == "" && t.Profile == sandbox.AU {
		scope = "cdr:registration"
	}
	tok, _, err := c.Token(ctx, tokenURL, clientID, scope)
	return tok, err
}

func show(out io.Writer, res *sandbox.Response, err error) error {
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "HTTP %d\n", res.Status)
	if len(res.Body) > 0 {
		var v any
		if json.Unmarshal(res.Body, &v) == nil {
			return printJSON(out, v)
		}
		fmt.Fprintln(out, string(res.Body))
	}
	if res.Status >= 400 {
		return fmt.Errorf("HTTP %d", res.Status)
	}
	return nil
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func serve(ctx context.Context, dir, listen string, out io.Writer) error {
	sb, err := sandbox.Load(dir)
	if err != nil {
		return err
	}
	files, err := sandbox.WriteFiles(sb, dir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sb.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(out, "sandbox serving %s on https://%s\n", dir, ln.Addr())
	err = srv.Serve(tls.NewListener(ln, files.SandboxTLS))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
