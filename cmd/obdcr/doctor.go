package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/obdcr/obdcr/cmd/internal/cmdline"
	"github.com/obdcr/obdcr/plugin"
	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy"
)

const doctorUsage = `usage: obdcr doctor [--json] [--fix]
Checks the Hydra obdcr fronts: its own registration endpoint off, its ID-token key's alg
allowed by the enabled profiles, its issuer, its discovery document, reachability and
clock; and, asking the running obdcr (OBDCR_ADMIN_URL), the registrations still half-made.
With the FAPI edge on (OBDCR_EDGE_PUBLIC_URL set), also that Hydra's issuer is the edge and
that no registration's Hydra client lets its client reach Hydra around the edge.
Exit 0 only when nothing is wrong. --fix adds a PS256 (or ES256) ID-token key
when the active one is not allowed; but Hydra signs every client's ID tokens with its
newest key, so the new alg applies to ALL of Hydra's clients, the bank's own apps too.
With the edge on, --fix also moves registrations made before it behind it (their Hydra
clients reshaped; client_id, metadata and tokens kept). It changes nothing else, and
prints what it will do before it acts.
`

// doctorReport is what --json prints.
type doctorReport struct {
	Problems int              `json:"problems"`
	Policy   string           `json:"policy"`         // where the profiles' settings came from
	Plan     []string         `json:"plan,omitempty"` // what --fix set out to do, said before it acted
	Fixed    []string         `json:"fixed,omitempty"`
	Findings []plugin.Finding `json:"findings"`
}

// doctorVariables are what the check reads; unset ones take obdcr's defaults.
var doctorVariables = []string{"HYDRA_ADMIN_URL", "HYDRA_PUBLIC_URL", "OBDCR_ISSUER", "OBDCR_PUBLIC_URL", "OBDCR_PROFILES", "OBDCR_EDGE_PUBLIC_URL",
	"HYDRA_ADMIN_TOKEN", "HYDRA_ADMIN_TOKEN_FILE", "HYDRA_ADMIN_BASIC_AUTH", "HYDRA_ADMIN_BASIC_AUTH_FILE",
	"HYDRA_ADMIN_CLIENT_CERT_FILE", "HYDRA_ADMIN_CLIENT_KEY_FILE", "HYDRA_ADMIN_CA_FILE"}

// doctorCmd fails (exit 1, cmdline.ErrReported) when anything is wrong.
func doctorCmd(fs *flag.FlagSet, c *cmdEnv) func([]string) error {
	asJSON := jsonFlag(fs)
	fix := fs.Bool("fix", false, "add an allowed ID-token key to Hydra when the active one is not allowed; move registrations made before the edge behind it")
	return func(args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		rep, err := doctor(c.getenv, *fix, *asJSON, c.stdout)
		if err != nil {
			return err
		}
		if *asJSON {
			err = printJSON(c.stdout, rep)
		} else {
			printDoctor(c.stdout, rep)
		}
		if err == nil && rep.Problems > 0 {
			err = cmdline.ErrReported
		}
		return err
	}
}

// doctor runs the checks and, with fix, mends what it can, saying first what it
// will do (to stdout, unless the answer is JSON).
func doctor(getenv func(string) string, fix, asJSON bool, stdout io.Writer) (doctorReport, error) {
	environ := map[string]string{}
	for _, v := range doctorVariables {
		if val := getenv(v); val != "" {
			environ[v] = val
		}
	}
	rep := doctorReport{Policy: "the running obdcr's (OBDCR_ADMIN_URL)"}
	live, err := livePolicies(getenv)
	if err != nil {
		rep.Policy = "the profiles' defaults, enabled as OBDCR_PROFILES says (obdcr's admin API: " + err.Error() + ")"
	}
	setup, err := plugin.NewDoctor(environ, live)
	if err != nil {
		return rep, err
	}
	if edge := getenv("OBDCR_EDGE_PUBLIC_URL"); edge != "" {
		setup.Edge = edgeSetup(getenv, edge)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep.Findings = setup.Run(ctx)
	if fix {
		rep.Plan = setup.Plan(rep.Findings)
		if !asJSON {
			for _, p := range rep.Plan {
				fmt.Fprintln(stdout, "--fix will:", p)
			}
		}
		if rep.Fixed, err = setup.Fix(ctx, rep.Findings); err != nil {
			return rep, err
		}
		if len(rep.Fixed) > 0 {
			rep.Findings = setup.Run(ctx)
		}
	}
	rep.Findings = append(rep.Findings, halfMade(getenv))
	rep.Problems = plugin.Problems(rep.Findings)
	return rep, nil
}

// halfMade asks the running obdcr (OBDCR_ADMIN_URL) which registrations are
// still half-made: its store is where they are kept, and doctor needs no DSN.
func halfMade(getenv func(string) string) plugin.Finding {
	a, err := newAdminClient(getenv)
	var list []policy.CreateAttempt
	if err == nil {
		err = a.call(http.MethodGet, "/admin/half-made", "", nil, &list)
	}
	return plugin.HalfMadeFinding(list, err, time.Now())
}

// edgeSetup asks the running obdcr for the key edge registrations' Hydra
// clients must trust: it is kept in obdcr's store, and doctor needs no DSN.
func edgeSetup(getenv func(string) string, publicURL string) *plugin.EdgeSetup {
	var info plugin.EdgeInfo
	a, err := newAdminClient(getenv)
	if err == nil {
		err = a.call(http.MethodGet, "/admin/edge", "", nil, &info)
	}
	return plugin.ParseEdgeInfo(publicURL, info, err)
}

func printDoctor(stdout io.Writer, rep doctorReport) {
	for _, f := range rep.Fixed {
		fmt.Fprintln(stdout, "fixed:", f)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEVERITY\tCHECK\tFINDING")
	for _, f := range rep.Findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Severity, f.Check, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", f.Fix)
		}
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "%d problem(s); checked against %s\n", rep.Problems, rep.Policy)
}

// livePolicies reads the profiles' live states from the running obdcr.
func livePolicies(getenv func(string) string) ([]policy.State, error) {
	a, err := newAdminClient(getenv)
	if err != nil {
		return nil, err
	}
	var views []view.Policy
	if err := a.call(http.MethodGet, "/admin/policies", "", nil, &views); err != nil {
		return nil, err
	}
	out := make([]policy.State, len(views))
	for i, v := range views {
		out[i] = policy.State{Enabled: v.Enabled, Settings: v.Settings}
	}
	return out, nil
}
