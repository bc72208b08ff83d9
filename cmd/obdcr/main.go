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
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `obdcr: Open Banking Dynamic Client Registration for Ory Hydra

Usage:
  obdcr serve            run the TPP listener (mTLS, /register) and the admin listener
  obdcr version          print the version
  obdcr --help           this text; obdcr serve --help lists every variable

All configuration is environment variables (obdcr serve --help).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
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
	srv, err := plugin.New(ctx, cfg, plugin.Deps{Logger: log})
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
