package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/obdcr/obdcr/cmd/internal/cmdline"
	"github.com/obdcr/obdcr/deploy/sandbox"
)

// The sandbox itself: its files, its server, its Register's state, and the
// demo's probes of Hydra and readiness.

func listenFlag(fs *flag.FlagSet) *string {
	return fs.String("listen", "127.0.0.1:8600", "address to serve on")
}

func initCmd(fs *flag.FlagSet, e *cmdEnv) action {
	dir := dirFlag(fs, e)
	listen := listenFlag(fs)
	return func(context.Context, []string) error {
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
		fmt.Fprintf(e.stdout, "sandbox made in %s, to be served at %s\n", *dir, sb.BaseURL)
		fmt.Fprintf(e.stdout, "  UK directory JWKS:  %s/uk/directory/jwks\n  CDR Register JWKS:  %s/cdr-register/v1/jwks\n", sb.BaseURL, sb.BaseURL)
		return nil
	}
}

func serveCmd(fs *flag.FlagSet, e *cmdEnv) action {
	dir := dirFlag(fs, e)
	listen := listenFlag(fs)
	hydraAdmin := fs.String("hydra-admin", "", "Hydra's admin API, where the login and consent app accepts (kept in the sandbox once given)")
	return func(ctx context.Context, _ []string) error {
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return err
		}
		if *hydraAdmin != "" {
			if err := sb.SetHydraAdmin(*hydraAdmin); err != nil {
				return err
			}
		}
		files, err := sandbox.WriteFiles(sb, *dir)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", *listen)
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
		fmt.Fprintf(e.stdout, "sandbox serving %s on https://%s\n", *dir, ln.Addr())
		err = srv.Serve(tls.NewListener(ln, files.SandboxTLS))
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

func statusCmd(fs *flag.FlagSet, e *cmdEnv) action {
	dir := dirFlag(fs, e)
	id := fs.String("id", "", "software product or legal entity id")
	status := fs.String("status", "", "new status")
	return func(context.Context, []string) error {
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return err
		}
		if err := sb.SetStatus(*id, *status); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s is now %s at the sandbox Register\n", *id, *status)
		return nil
	}
}

func registerDownCmd(fs *flag.FlagSet, e *cmdEnv) action {
	dir := dirFlag(fs, e)
	return func(_ context.Context, args []string) error {
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return err
		}
		return sb.SetRegisterDown(len(args) > 0 && args[0] == "true")
	}
}

// hydraClientCmd shows a client as Hydra's admin API has it (the demo uses it).
func hydraClientCmd(fs *flag.FlagSet, e *cmdEnv) action {
	clientID := clientIDFlag(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 || *clientID == "" {
			return cmdline.UsageError("want --client-id ID and HYDRA_ADMIN_URL")
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(args[0], "/")+"/admin/clients/"+*clientID, nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return show(e.stdout, &sandbox.Response{Status: res.StatusCode, Body: body}, nil)
	}
}

// waitCmd waits until a URL answers 200, with any certificate: readiness only.
func waitCmd(*flag.FlagSet, *cmdEnv) action {
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return cmdline.UsageError("want one URL")
		}
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // readiness probe
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if res, err := client.Get(args[0]); err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return nil
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("%s did not answer 200 within 60s", args[0])
	}
}
