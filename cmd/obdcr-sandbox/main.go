// Command obdcr-sandbox is a local UK Open Banking Directory, AU CDR Register and
// TPP simulator, for demos, tests and TPP developers trying their flows.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/obdcr/obdcr/cmd/internal/cmdline"
	"github.com/obdcr/obdcr/deploy/sandbox"
)

const usageHead = `obdcr-sandbox: a local directory (UK), CDR Register (AU) and TPP simulator

Usage:
`

const usageTail = `  obdcr-sandbox help COMMAND, obdcr-sandbox COMMAND --help   a command's usage and flags

--dir defaults to $OBDCR_SANDBOX_DIR, else .sandbox. Files in it: ca.pem (trust it, and
give it to obdcr as OBDCR_TLS_CLIENT_CA_FILE), obdcr-cert.pem and obdcr-key.pem (obdcr's
server certificate), edge-signing-key.pem (OBDCR_EDGE_SIGNING_KEY_FILE), sandbox.json (all keys: for local use only).
`

// cmdEnv is what a subcommand reads and writes.
type cmdEnv struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

// action runs a subcommand once its flags are parsed, with its positional arguments.
type action func(ctx context.Context, args []string) error

// subcommand is one of the sandbox's commands. define declares on fs only the
// flags it uses, so any other is refused, and returns what runs once they are
// parsed. synopsis follows the name in the usage; a line of it that starts with
// a tab continues the one before.
type subcommand struct {
	name, synopsis string
	define         func(fs *flag.FlagSet, e *cmdEnv) action
}

func subcommands() []subcommand {
	return []subcommand{
		{"init", "[--dir D] [--listen ADDR]      make keys, a CA and certificates for obdcr", initCmd},
		{"serve", "[--dir D] [--listen ADDR] [--hydra-admin URL]   serve the directory, Register and TPP JWKS over HTTPS,\n\tand be Hydra's login and consent app", serveCmd},
		{"tpp add", "[--dir D] --profile uk|au --name NAME", tppAddCmd},
		{"tpp list", "[--dir D]", tppListCmd},
		{"register", "[--dir D] --tpp NAME --obdcr URL --aud AUD [--set claim=json ...] [--print-jwt]\n\t[--dry-run --admin-url URL]   every rule's verdict, nothing registered (OBDCR_ADMIN_TOKEN)", registerCmd},
		{"token", "[--dir D] --tpp NAME --token-url URL --client-id ID [--scope S]", tokenCmd},
		{"get", "[--dir D] --tpp NAME --obdcr URL --token-url URL --client-id ID [--scope S]", getCmd},
		{"delete", "[--dir D] --tpp NAME --obdcr URL --token-url URL --client-id ID [--scope S]", deleteCmd},
		{"update", "[--dir D] --tpp NAME --obdcr URL --token-url URL --client-id ID [--scope S] --aud AUD\n\t[--set claim=json ...] [--print-jwt]", updateCmd},
		{"status", "[--dir D] --id SOFTWARE_OR_LEGAL_ENTITY_ID --status ACTIVE|INACTIVE|REMOVED|SUSPENDED|REVOKED|SURRENDERED", statusCmd},
		{"register-down", "[--dir D] true|false", registerDownCmd},
		{"load", "[--dir D] --obdcr URL --aud AUD [--admin-url URL] [--hydra-admin URL] [--concurrency 16] [--count 1000]\n\t[--tpps 8] [--open-loop S]   registrations through obdcr, then Hydra creates alone, compared (OBDCR_ADMIN_TOKEN)", loadCmd},
		{"edge-load", "[--dir D] --obdcr URL [--admin-url URL] [--hydra-admin URL] [--hydra-public URL] [--flows 200]\n\t[--count 1000] [--concurrency 16] [--open-loop 10]   obdcr's FAPI edge: its CPU for whole PAR flows, and\n\tits token endpoint beside Hydra's alone at half of Hydra's capacity", edgeLoadCmd},
		{"growth", "[--dir D] --obdcr URL --aud AUD [--admin-url URL] [--hydra-admin URL] [--growth-tpps 10,1000,10000]\n\t[--prefill N] [--count 1000] [--concurrency 16] [--settle 1m]\n\t[--reference-obdcr URL --reference-admin-url URL]   cost as the TPPs grow: registrations/s,\n\tobdcr CPU each, RSS, JWKS held and background fetches", growthCmd},
		{"flood", "[--dir D] --obdcr URL [--admin-url URL] [--mode methods|management|refusals|claims|sign-in|all]\n\t[--count 1000] [--concurrency 16] [--max-rss-mib N]   attacker floods; obdcr's memory, series and audit\n\tbefore and after, one JSON line each; fails past --max-rss-mib or on any growth", floodCmd},
		{"flow", "[--dir D] --tpp NAME --obdcr URL --client-id ID   the registered client's flows, each step printed:\n\tcode flow with a signed request object (AU at obdcr's FAPI edge: pushed, answered in JARM),\n\tprivate_key_jwt, refresh, client_credentials", flowCmd},
		{"discovery", "[--dir D] --tpp NAME --obdcr URL   the bank's discovery document, as obdcr publishes it", discoveryCmd},
		{"hydra-client", "--client-id ID HYDRA_ADMIN_URL   show a client as Hydra has it", hydraClientCmd},
		{"wait", "URL   wait up to 60s for URL to answer 200 (readiness: any certificate)", waitCmd},
	}
}

// usage is a subcommand's usage line(s), after prefix.
func (s subcommand) usage(prefix string) string {
	return fmt.Sprintf("%s%-8s %s\n", prefix, s.name, strings.ReplaceAll(s.synopsis, "\n\t", "\n"+strings.Repeat(" ", len(prefix)+9)))
}

func usage(cmds []subcommand) string {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, s := range cmds {
		b.WriteString(s.usage("  obdcr-sandbox "))
	}
	return b.String() + usageTail
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &cmdEnv{getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, e *cmdEnv) int {
	cmds := subcommands()
	if len(args) == 0 || cmdline.IsHelp(args) {
		if len(args) < 2 {
			fmt.Fprint(e.stdout, usage(cmds))
			return 0
		}
		args = append(append([]string{}, args[1:]...), "--help")
	}
	name, args := args[0], args[1:]
	if name == "tpp" && len(args) > 0 {
		name, args = "tpp "+args[0], args[1:]
	}
	for _, s := range cmds {
		if s.name == name {
			fs := cmdline.NewFlagSet("obdcr-sandbox " + s.name)
			act := s.define(fs, e)
			return cmdline.Run(fs, args, s.usage("usage: obdcr-sandbox "), func(args []string) error { return act(ctx, args) }, e.stdout, e.stderr)
		}
	}
	fmt.Fprintf(e.stderr, "obdcr-sandbox: unknown command %q\n\n%s", name, usage(cmds))
	return 2
}

// dirFlag is --dir, the sandbox folder every command but hydra-client and wait reads.
func dirFlag(fs *flag.FlagSet, e *cmdEnv) *string {
	def := e.getenv("OBDCR_SANDBOX_DIR")
	if def == "" {
		def = ".sandbox"
	}
	return fs.String("dir", def, "sandbox folder ($OBDCR_SANDBOX_DIR)")
}

func obdcrFlag(fs *flag.FlagSet) *string {
	return fs.String("obdcr", "https://127.0.0.1:8443", "obdcr's TPP listener")
}

func adminURLFlag(fs *flag.FlagSet) *string {
	return fs.String("admin-url", "http://127.0.0.1:8444", "obdcr's admin listener (OBDCR_ADMIN_TOKEN)")
}

func audFlag(fs *flag.FlagSet) *string {
	return fs.String("aud", "", "request JWT aud (obdcr's OBDCR_ISSUER)")
}

func clientIDFlag(fs *flag.FlagSet) *string {
	return fs.String("client-id", "", "registered client_id")
}

// tppFlags are --dir and --tpp; the answer loads that TPP and its mTLS client.
func tppFlags(fs *flag.FlagSet, e *cmdEnv) func() (*sandbox.Sandbox, *sandbox.TPP, *sandbox.Client, error) {
	dir := dirFlag(fs, e)
	name := fs.String("tpp", "", "TPP name")
	return func() (*sandbox.Sandbox, *sandbox.TPP, *sandbox.Client, error) {
		sb, err := sandbox.Load(*dir)
		if err != nil {
			return nil, nil, nil, err
		}
		if *name == "" {
			return nil, nil, nil, cmdline.UsageError("--tpp is required")
		}
		t, err := sb.TPP(*name)
		if err != nil {
			return nil, nil, nil, err
		}
		c, err := sandbox.NewClient(t, sb.PKI().Pool())
		return sb, t, c, err
	}
}

// tokenFlags are --token-url, --client-id and --scope; the answer gets the
// client a client_credentials token from Hydra.
func tokenFlags(fs *flag.FlagSet) (clientID *string, token func(ctx context.Context, c *sandbox.Client, t *sandbox.TPP) (string, error)) {
	tokenURL := fs.String("token-url", "http://127.0.0.1:4444/oauth2/token", "Hydra's token endpoint")
	clientID = clientIDFlag(fs)
	scope := fs.String("scope", "", "token scope (AU: cdr:registration when empty)")
	return clientID, func(ctx context.Context, c *sandbox.Client, t *sandbox.TPP) (string, error) {
		if *clientID == "" {
			return "", cmdline.UsageError("--client-id is required")
		}
		s := *scope
		if s == "" && t.Profile == sandbox.AU {
			s = "cdr:registration"
		}
		tok, _, err := c.Token(ctx, *tokenURL, *clientID, s)
		return tok, err
	}
}

// tppTokenFlags are tppFlags and tokenFlags: the answer loads the TPP's client
// and gets it a token.
func tppTokenFlags(fs *flag.FlagSet, e *cmdEnv) (clientID *string, token func(ctx context.Context) (*sandbox.Client, string, error)) {
	load := tppFlags(fs, e)
	clientID, get := tokenFlags(fs)
	return clientID, func(ctx context.Context) (*sandbox.Client, string, error) {
		_, t, c, err := load()
		if err != nil {
			return nil, "", err
		}
		tok, err := get(ctx, c, t)
		return c, tok, err
	}
}

// setFlags is --set claim=json, repeatable.
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
