package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/obdcr/obdcr/cmd/internal/cmdline"
	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy/store"
)

// adminClient calls the admin API for the CLI (OBDCR_ADMIN_URL, OBDCR_ADMIN_TOKEN).
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

func newAdminClient(getenv func(string) string) (*adminClient, error) {
	base := getenv("OBDCR_ADMIN_URL")
	if base == "" {
		base = "http://127.0.0.1:8444"
	}
	tok := getenv("OBDCR_ADMIN_TOKEN")
	if tok == "" {
		return nil, errors.New("OBDCR_ADMIN_TOKEN: required but not set")
	}
	// With several name:token pairs configured, the first one speaks.
	first := strings.TrimSpace(strings.Split(tok, ",")[0])
	if _, t, ok := strings.Cut(first, ":"); ok {
		first = t
	}
	return &adminClient{base: strings.TrimRight(base, "/"), token: first, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// call sends a request and decodes a JSON answer into out; an error answer
// becomes an error carrying the server's description.
func (a *adminClient) call(method, path, contentType string, body []byte, out any) error {
	req, err := http.NewRequest(method, a.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w (set OBDCR_ADMIN_URL)", a.base, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if res.StatusCode >= 300 {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("HTTP %d %s: %s", res.StatusCode, e.Error, e.Description)
		}
		return fmt.Errorf("HTTP %d: %s", res.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// adminList reads a list from the admin API into rows and prints it: as JSON,
// or as a table of header and the rows printRows writes once they are read.
func (c *cmdEnv) adminList(path string, asJSON bool, rows any, header string, printRows func(tw io.Writer)) error {
	a, err := newAdminClient(c.getenv)
	if err != nil {
		return err
	}
	if err := a.call(http.MethodGet, path, "", nil, rows); err != nil {
		return err
	}
	if asJSON {
		return printJSON(c.stdout, rows)
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	printRows(tw)
	return tw.Flush()
}

const policyUsage = `usage: obdcr policy list [--json]
       obdcr policy enable|disable PROFILE [--json]
       obdcr policy set PROFILE FILE [--json]
Lists the profiles, switches one on or off on every replica, or changes its
settings (FILE is a JSON object of settings; - reads stdin), through the admin API.
`

func policyCmd(fs *flag.FlagSet, c *cmdEnv) func([]string) error {
	asJSON := jsonFlag(fs)
	return func(args []string) error {
		if len(args) == 0 {
			return cmdline.UsageError("want list, enable, disable or set")
		}
		verb, args := args[0], args[1:]
		want := map[string]int{"list": 0, "enable": 1, "disable": 1, "set": 2}
		if n, ok := want[verb]; !ok {
			return cmdline.UsageError(fmt.Sprintf("unknown verb %q (list, enable, disable, set)", verb))
		} else if len(args) != n {
			return cmdline.UsageError(fmt.Sprintf("policy %s takes %d argument(s)", verb, n))
		}
		if verb == "list" {
			var rows []view.Policy
			return c.adminList("/admin/policies", *asJSON, &rows, "PROFILE\tENABLED\tSSA ISSUER\tRULES\tSETTINGS", func(tw io.Writer) {
				for _, r := range rows {
					s, _ := json.Marshal(r.Settings)
					fmt.Fprintf(tw, "%s\t%v\t%s\t%d\t%s\n", r.Profile, r.Enabled, r.Issuer, len(r.Rules), s)
				}
			})
		}
		a, err := newAdminClient(c.getenv)
		if err != nil {
			return err
		}
		var row view.Policy
		switch verb {
		case "enable", "disable":
			body := fmt.Sprintf(`{"enabled":%v}`, verb == "enable")
			if err := a.call(http.MethodPut, "/admin/policies/"+url.PathEscape(args[0]), "application/json", []byte(body), &row); err != nil {
				return err
			}
		case "set":
			settings, err := readArg(args[1])
			if err != nil {
				return err
			}
			body, _ := json.Marshal(map[string]json.RawMessage{"settings": bytes.TrimSpace(settings)})
			if err := a.call(http.MethodPut, "/admin/policies/"+url.PathEscape(args[0]), "application/json", body, &row); err != nil {
				return err
			}
		}
		if *asJSON {
			return printJSON(c.stdout, row)
		}
		s, _ := json.Marshal(row.Settings)
		fmt.Fprintf(c.stdout, "%s: enabled=%v settings=%s\n", row.Profile, row.Enabled, s)
		return nil
	}
}

func readArg(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

// reorder moves flags before positional arguments, so that `obdcr policy list
// --json` and `obdcr policy --json list` both work with the flag package. A flag
// that takes a value keeps its value with it.
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil && i+1 < len(args) {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				flags = append(flags, args[i+1])
				i++
			}
		}
	}
	return append(flags, rest...)
}

const registrationsUsage = `usage: obdcr registrations [--software-id ID] [--org-id ID] [--json]
       obdcr registrations delete CLIENT_ID
Lists the registrations, or removes one and its tokens, through the admin API.
`

func registrationsCmd(fs *flag.FlagSet, c *cmdEnv) func([]string) error {
	sw := fs.String("software-id", "", "only this software_id")
	org := fs.String("org-id", "", "only this organisation id")
	asJSON := jsonFlag(fs)
	return func(args []string) error {
		if len(args) > 0 && args[0] == "delete" {
			if len(args) != 2 {
				return cmdline.UsageError("delete takes one CLIENT_ID")
			}
			a, err := newAdminClient(c.getenv)
			if err != nil {
				return err
			}
			if err := a.call(http.MethodDelete, "/admin/registrations/"+url.PathEscape(args[1]), "", nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "deleted %s and its tokens\n", args[1])
			return nil
		}
		if err := noArgs(args); err != nil {
			return err
		}
		q := url.Values{}
		if *sw != "" {
			q.Set("software_id", *sw)
		}
		if *org != "" {
			q.Set("org_id", *org)
		}
		var rows []view.Registration
		return c.adminList("/admin/registrations?"+q.Encode(), *asJSON, &rows, "CLIENT_ID\tPROFILE\tSOFTWARE_ID\tORG_ID\tNAME\tISSUED\tREDIRECT_URIS", func(tw io.Writer) {
			for _, r := range rows {
				row(tw, r.ClientID, r.Profile, r.SoftwareID, r.OrgID, r.ClientName, r.IssuedAt.Format(time.RFC3339), strings.Join(r.RedirectURIs, " "))
			}
		})
	}
}

const auditUsage = `usage: obdcr audit [--limit N] [--software-id ID] [--profile P] [--kind K] [--json]
The audit, newest first, through the admin API.
`

func auditCmd(fs *flag.FlagSet, c *cmdEnv) func([]string) error {
	limit := fs.Int("limit", 50, "entries, newest first")
	sw := fs.String("software-id", "", "only this software_id")
	profile := fs.String("profile", "", "only this profile")
	kind := fs.String("kind", "", "registration, management, policy or dry_run")
	asJSON := jsonFlag(fs)
	return func(args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		q := url.Values{"limit": {fmt.Sprint(*limit)}}
		for k, v := range map[string]string{"software_id": *sw, "profile": *profile, "kind": *kind} {
			if v != "" {
				q.Set(k, v)
			}
		}
		var entries []view.AuditEntry
		return c.adminList("/admin/audit?"+q.Encode(), *asJSON, &entries, "TIME\tKIND\tPROFILE\tSOFTWARE_ID\tOUTCOME\tERROR\tRULE\tWHO\tDETAIL", func(tw io.Writer) {
			for _, e := range entries {
				row(tw, e.Time.Format(time.RFC3339), e.Kind, e.Profile, auditSoftware(e), e.Outcome, e.Error, e.Rule, auditWho(e), truncate(e.Description, 100))
			}
		})
	}
}

// auditWho is who acted: the admin, else the client, else the client a refused
// request claimed to be.
func auditWho(e view.AuditEntry) string {
	switch {
	case e.Actor != "":
		return e.Actor
	case e.ClientID != "":
		return e.ClientID
	case e.ClaimedClientID != "":
		return "claimed " + e.ClaimedClientID
	}
	return ""
}

func auditSoftware(e view.AuditEntry) string {
	if e.SoftwareID == "" && e.ClaimedSoftwareID != "" {
		return "claimed " + e.ClaimedSoftwareID
	}
	return e.SoftwareID
}

// row prints one table row. Every cell is cleaned: values a TPP chose reach this
// terminal, and a newline, tab or escape sequence in one must not forge a row.
func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		cells[i] = store.Clean(c, store.MaxCallerValue)
	}
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
