// Command obdcr is Open Banking Dynamic Client Registration for Ory Hydra.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/obdcr/obdcr/plugin"
	"github.com/obdcr/obdcr/policy/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `obdcr: Open Banking Dynamic Client Registration for Ory Hydra

Usage:
  obdcr serve                                run the TPP listener (mTLS, /register) and the admin listener
  obdcr migrate                              apply the store's migrations to OBDCR_DSN and exit
  obdcr policy list                          profiles, whether enabled, and their settings
  obdcr policy enable|disable PROFILE        switch a profile on or off on every replica
  obdcr policy set PROFILE FILE              change settings (a JSON object; - reads stdin)
  obdcr registrations [--software-id ID] [--org-id ID]
  obdcr registrations delete CLIENT_ID       remove a registration and its tokens
  obdcr audit [--limit N] [--software-id ID] [--profile P] [--kind K]
  obdcr check FILE                           every rule's verdict for a request JWT, nothing created
  obdcr check --offline --directory-jwks F --software-jwks F --issuer AUD FILE   the same without a server
  obdcr doctor [--json] [--fix]              check the Hydra obdcr fronts; --fix adds an allowed ID-token key
  obdcr version                              print the version
  obdcr --help                               this text; obdcr serve --help lists every variable

The admin commands call the admin API at OBDCR_ADMIN_URL (default http://127.0.0.1:8444)
with OBDCR_ADMIN_TOKEN, and print tables; add --json for JSON.
All of the server's configuration is environment variables (obdcr serve --help).
`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version":
		fmt.Fprintln(stdout, "obdcr", version)
		return 0
	case "serve":
		if len(args) > 1 && (args[1] == "--help" || args[1] == "-h") {
			fmt.Fprint(stdout, "obdcr serve: run obdcr until SIGTERM or SIGINT, then drain in-flight requests.\n\n", plugin.Help())
			return 0
		}
		return serve(stderr)
	case "migrate":
		return migrate(getenv, stdout, stderr)
	case "doctor":
		ok, err := doctorCmd(getenv, args[1:], stdout)
		if err != nil {
			fmt.Fprintln(stderr, "obdcr doctor: "+err.Error())
			return 1
		}
		if !ok {
			return 1
		}
		return 0
	case "check":
		if err := checkCmd(getenv, args[1:], stdout); err != nil {
			fmt.Fprintln(stderr, "obdcr check: "+err.Error())
			return 1
		}
		return 0
	case "policy", "registrations", "audit":
		a, err := newAdminClient(getenv)
		if err == nil {
			cmd := map[string]func(*adminClient, []string, io.Writer) error{"policy": policyCmd, "registrations": registrationsCmd, "audit": auditCmd}[args[0]]
			err = cmd(a, args[1:], stdout)
		}
		if err != nil {
			fmt.Fprintln(stderr, "obdcr "+args[0]+": "+err.Error())
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "obdcr: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func serve(stderr io.Writer) int {
	cfg, err := plugin.LoadConfig(nil)
	if err != nil {
		fmt.Fprintln(stderr, "obdcr: "+err.Error())
		return 1
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := plugin.New(ctx, cfg, plugin.Deps{Logger: log, Version: version})
	if err != nil {
		fmt.Fprintln(stderr, "obdcr: "+err.Error())
		return 1
	}
	if err := srv.ListenAndServe(ctx); err != nil {
		log.Error("obdcr stopped", "error", err.Error())
		return 1
	}
	log.Info("obdcr stopped")
	return 0
}

func migrate(getenv func(string) string, stdout, stderr io.Writer) int {
	dsn := getenv("OBDCR_DSN")
	if dsn == "" {
		dsn = "memory"
	}
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		fmt.Fprintln(stderr, "obdcr migrate: "+err.Error())
		return 1
	}
	defer st.Close()
	fmt.Fprintf(stdout, "store at schema version %d\n", store.SchemaVersion())
	return 0
}
