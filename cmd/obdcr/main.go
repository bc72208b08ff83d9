// Command obdcr is Open Banking Dynamic Client Registration for Ory Hydra.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/obdcr/obdcr/cmd/internal/cmdline"
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
  obdcr help COMMAND, obdcr COMMAND --help   a command's usage and flags

The admin commands call the admin API at OBDCR_ADMIN_URL (default http://127.0.0.1:8444)
with OBDCR_ADMIN_TOKEN, and print tables; add --json for JSON.
All of the server's configuration is environment variables (obdcr serve --help).
`

// cmdEnv is what a command reads and writes.
type cmdEnv struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

// command is one of obdcr's commands. define declares its flags on fs and
// returns what runs once they are parsed, with the positional arguments; so a
// command's usage and flags are known without running it (help COMMAND).
type command struct {
	name, usage string
	define      func(fs *flag.FlagSet, c *cmdEnv) func(args []string) error
}

func commands() []command {
	return []command{
		{"serve", serveUsage + plugin.Help(), serveCmd},
		{"migrate", "usage: obdcr migrate\nApplies the store's migrations to OBDCR_DSN (default memory) and exits.\n", migrateCmd},
		{"policy", policyUsage, policyCmd},
		{"registrations", registrationsUsage, registrationsCmd},
		{"audit", auditUsage, auditCmd},
		{"check", checkUsage, checkCmd},
		{"doctor", doctorUsage, doctorCmd},
		{"version", "usage: obdcr version\nPrints the version.\n", versionCmd},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	name, rest := args[0], args[1:]
	if cmdline.IsHelp(args) {
		if len(rest) == 0 {
			fmt.Fprint(stdout, usage)
			return 0
		}
		name, rest = rest[0], []string{"--help"}
	}
	if name == "--version" {
		name = "version"
	}
	for _, cmd := range commands() {
		if cmd.name == name {
			fs := cmdline.NewFlagSet("obdcr " + cmd.name)
			act := cmd.define(fs, &cmdEnv{getenv: getenv, stdout: stdout, stderr: stderr})
			// Flags may stand anywhere among the arguments: policy list --json.
			return cmdline.Run(fs, reorder(fs, rest), cmd.usage, act, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "obdcr: unknown command %q\n\n%s", name, usage)
	return 2
}

// jsonFlag is --json, which every command that prints a table has.
func jsonFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("json", false, "print JSON instead of a table")
}

// noArgs refuses positional arguments a command does not take.
func noArgs(args []string) error {
	if len(args) != 0 {
		return cmdline.UsageError(fmt.Sprintf("unexpected arguments %q", strings.Join(args, " ")))
	}
	return nil
}

const serveUsage = "usage: obdcr serve\nRuns obdcr until SIGTERM or SIGINT, then drains in-flight requests.\n\n"

func serveCmd(_ *flag.FlagSet, c *cmdEnv) func([]string) error {
	return func(args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		cfg, err := plugin.LoadConfig(nil)
		if err != nil {
			return err
		}
		var level slog.Level
		_ = level.UnmarshalText([]byte(cfg.LogLevel))
		log := slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: level}))
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		srv, err := plugin.New(ctx, cfg, plugin.Deps{Logger: log, Version: version})
		if err != nil {
			return err
		}
		if err := srv.ListenAndServe(ctx); err != nil {
			log.Error("obdcr stopped", "error", err.Error())
			return cmdline.ErrReported
		}
		log.Info("obdcr stopped")
		return nil
	}
}

func migrateCmd(_ *flag.FlagSet, c *cmdEnv) func([]string) error {
	return func(args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		dsn := c.getenv("OBDCR_DSN")
		if dsn == "" {
			dsn = "memory"
		}
		st, err := store.Open(context.Background(), dsn)
		if err != nil {
			return err
		}
		defer st.Close()
		fmt.Fprintf(c.stdout, "store at schema version %d\n", store.SchemaVersion())
		return nil
	}
}

func versionCmd(_ *flag.FlagSet, c *cmdEnv) func([]string) error {
	return func(args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, "obdcr", version)
		return nil
	}
}
