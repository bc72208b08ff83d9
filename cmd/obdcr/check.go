package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"text/tabwriter"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/obdcr/obdcr/cmd/internal/cmdline"
	"github.com/obdcr/obdcr/plugin"
	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy"
)

const checkUsage = `usage: obdcr check [--json] FILE
       obdcr check --offline --directory-jwks FILE --software-jwks FILE --issuer AUD [--json] FILE
FILE is a registration request JWT (- reads stdin). Every rule's verdict is shown;
nothing is registered and the jti stays unused.
`

func checkCmd(fs *flag.FlagSet, c *cmdEnv) func([]string) error {
	asJSON := jsonFlag(fs)
	offline := fs.Bool("offline", false, "check here, with local JWKS files, not through the admin API")
	dirJWKS := fs.String("directory-jwks", "", "offline: the directory's (or CDR Register's) JWKS file")
	swJWKS := fs.String("software-jwks", "", "offline: the software's JWKS file")
	issuer := fs.String("issuer", c.getenv("OBDCR_ISSUER"), "offline: the aud this server accepts (OBDCR_ISSUER)")
	return func(args []string) error {
		if len(args) != 1 {
			return cmdline.UsageError("want one FILE")
		}
		if *offline && (*dirJWKS == "" || *swJWKS == "" || *issuer == "") {
			return cmdline.UsageError("--offline needs --directory-jwks, --software-jwks and --issuer")
		}
		jwt, err := readArg(args[0])
		if err != nil {
			return err
		}
		var rep view.DryRun
		if *offline {
			rep, err = checkOffline(jwt, *dirJWKS, *swJWKS, *issuer)
		} else {
			var a *adminClient
			if a, err = newAdminClient(c.getenv); err == nil {
				err = a.call(http.MethodPost, "/admin/dry-run", "application/jwt", jwt, &rep)
			}
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(c.stdout, rep)
		}
		tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RULE\tVERDICT\tMESSAGE")
		for _, r := range rep.Rules {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Rule, r.Verdict, r.Message)
		}
		_ = tw.Flush()
		if rep.Error != nil {
			fmt.Fprintf(c.stdout, "\nrefused (profile %s): %s: %s\n", orNone(rep.Profile), rep.Error.Error, rep.Error.Description)
		} else {
			fmt.Fprintf(c.stdout, "\napproved (profile %s)\n", rep.Profile)
		}
		return nil
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// fileKeys answers the directory's JWKS URL from one file and any other (the
// software's, as its SSA names it) from another.
type fileKeys struct{ directory, software *policy.KeySet }

func (f fileKeys) Set(_ context.Context, u string) (*policy.KeySet, error) {
	if u == plugin.OfflineDirectoryJWKS {
		return f.directory, nil
	}
	return f.software, nil
}

func (f fileKeys) Key(ctx context.Context, u, kid string) (*policy.PublicKey, error) {
	set, _ := f.Set(ctx, u)
	if k, ok := set.Lookup(kid); ok {
		return k, nil
	}
	return nil, policy.ErrUnknownKey
}

// checkOffline produces what POST /admin/dry-run answers, with local JWKS files.
func checkOffline(jwt []byte, dirFile, swFile, issuer string) (view.DryRun, error) {
	var sets [2]*policy.KeySet
	for i, f := range []string{dirFile, swFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			return view.DryRun{}, err
		}
		set, err := jwk.Parse(b)
		if err != nil {
			return view.DryRun{}, fmt.Errorf("%s is not a JWKS: %v", f, err)
		}
		sets[i] = policy.NewKeySet(set)
	}
	reg := plugin.OfflineRegistrar(issuer, fileKeys{directory: sets[0], software: sets[1]})
	rep, _, err := reg.DryRun(context.Background(), policy.Submission{JWT: jwt})
	if err != nil {
		return view.DryRun{}, err
	}
	return view.NewDryRun(rep), nil
}
