package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/obdcr/obdcr/cmd/internal/cmdline"
	"github.com/obdcr/obdcr/deploy/sandbox"
)

// The TPP's side: its registration requests, tokens and flows.

func tppAddCmd(fs *flag.FlagSet, e *cmdEnv) action {
	dir := dirFlag(fs, e)
	profile := fs.String("profile", "uk", "uk or au")
	name := fs.String("name", "", "TPP name")
	return func(context.Context, []string) error {
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return err
		}
		if *name == "" {
			return cmdline.UsageError("--name is required")
		}
		t, err := sb.AddTPP(*profile, *name)
		if err != nil {
			return err
		}
		return printJSON(e.stdout, map[string]any{"name": t.Name, "profile": t.Profile, "org_id": t.OrgID, "software_id": t.SoftwareID, "jwks_url": t.JWKSURL, "redirect_uris": t.RedirectURIs})
	}
}

func tppListCmd(fs *flag.FlagSet, e *cmdEnv) action {
	dir := dirFlag(fs, e)
	return func(context.Context, []string) error {
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return err
		}
		for _, t := range sb.TPPs {
			fmt.Fprintf(e.stdout, "%-12s %-3s org_id=%s software_id=%s\n", t.Name, t.Profile, t.OrgID, t.SoftwareID)
		}
		return nil
	}
}

// requestFlags are what a registration request is made of: the TPP, --aud, --set
// and --print-jwt. The answer signs one; it returns an empty JWT when
// --print-jwt printed it instead of it being sent.
func requestFlags(fs *flag.FlagSet, e *cmdEnv) func() (*sandbox.TPP, *sandbox.Client, string, error) {
	load := tppFlags(fs, e)
	aud := audFlag(fs)
	printJWT := fs.Bool("print-jwt", false, "print the signed request instead of sending it")
	sets := setFlags{}
	fs.Var(sets, "set", "override a request claim: claim=json (repeatable)")
	return func() (*sandbox.TPP, *sandbox.Client, string, error) {
		sb, t, c, err := load()
		if err != nil {
			return nil, nil, "", err
		}
		if *aud == "" {
			return nil, nil, "", cmdline.UsageError("--aud is required: obdcr's OBDCR_ISSUER")
		}
		now := time.Now()
		ssa, err := sb.Authority(t.Profile).SSA(t, now, nil)
		if err != nil {
			return nil, nil, "", err
		}
		jwt, err := t.Request(ssa, *aud, now, func(m map[string]any) {
			for k, v := range sets {
				m[k] = v
			}
		})
		if err != nil || !*printJWT {
			return t, c, jwt, err
		}
		fmt.Fprintln(e.stdout, jwt)
		return t, c, "", nil
	}
}

func registerCmd(fs *flag.FlagSet, e *cmdEnv) action {
	request := requestFlags(fs, e)
	obdcrURL := obdcrFlag(fs)
	dryRun := fs.Bool("dry-run", false, "ask obdcr's dry run for every rule's verdict instead (needs --admin-url and OBDCR_ADMIN_TOKEN)")
	adminURL := adminURLFlag(fs)
	return func(ctx context.Context, _ []string) error {
		_, c, jwt, err := request()
		if err != nil || jwt == "" {
			return err
		}
		if *dryRun {
			res, err := c.DryRun(ctx, *adminURL, e.getenv("OBDCR_ADMIN_TOKEN"), jwt)
			return show(e.stdout, res, err)
		}
		res, err := c.Register(ctx, *obdcrURL, jwt)
		return show(e.stdout, res, err)
	}
}

func updateCmd(fs *flag.FlagSet, e *cmdEnv) action {
	request := requestFlags(fs, e)
	obdcrURL := obdcrFlag(fs)
	clientID, token := tokenFlags(fs)
	return func(ctx context.Context, _ []string) error {
		t, c, jwt, err := request()
		if err != nil || jwt == "" {
			return err
		}
		tok, err := token(ctx, c, t)
		if err != nil {
			return err
		}
		res, err := c.Update(ctx, *obdcrURL, *clientID, tok, jwt)
		return show(e.stdout, res, err)
	}
}

func tokenCmd(fs *flag.FlagSet, e *cmdEnv) action {
	_, token := tppTokenFlags(fs, e)
	return func(ctx context.Context, _ []string) error {
		_, tok, err := token(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, tok)
		return nil
	}
}

func getCmd(fs *flag.FlagSet, e *cmdEnv) action    { return manageCmd(fs, e, (*sandbox.Client).Get) }
func deleteCmd(fs *flag.FlagSet, e *cmdEnv) action { return manageCmd(fs, e, (*sandbox.Client).Delete) }

// manageCmd reads or deletes a registration with a client_credentials token.
func manageCmd(fs *flag.FlagSet, e *cmdEnv, call func(*sandbox.Client, context.Context, string, string, string) (*sandbox.Response, error)) action {
	clientID, token := tppTokenFlags(fs, e)
	obdcrURL := obdcrFlag(fs)
	return func(ctx context.Context, _ []string) error {
		c, tok, err := token(ctx)
		if err != nil {
			return err
		}
		res, err := call(c, ctx, *obdcrURL, *clientID, tok)
		return show(e.stdout, res, err)
	}
}

func flowCmd(fs *flag.FlagSet, e *cmdEnv) action {
	load := tppFlags(fs, e)
	obdcrURL := obdcrFlag(fs)
	clientID := clientIDFlag(fs)
	return func(ctx context.Context, _ []string) error {
		sb, _, c, err := load()
		if err != nil {
			return err
		}
		if *clientID == "" {
			return cmdline.UsageError("--client-id is required")
		}
		rep, err := c.RunFlow(ctx, *obdcrURL, *clientID, sb.PKI().Pool(), e.stdout)
		if err != nil {
			return err
		}
		return printJSON(e.stdout, rep)
	}
}

func discoveryCmd(fs *flag.FlagSet, e *cmdEnv) action {
	load := tppFlags(fs, e)
	obdcrURL := obdcrFlag(fs)
	return func(ctx context.Context, _ []string) error {
		_, _, c, err := load()
		if err != nil {
			return err
		}
		res, err := c.Discovery(ctx, *obdcrURL)
		return show(e.stdout, res, err)
	}
}
