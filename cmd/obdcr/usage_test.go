package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/plugin"
)

// runBare runs obdcr with no environment at all: asking for usage needs neither
// an admin token nor a server.
func runBare(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = run(args, func(string) string { return "" }, &out, &errOut)
	return out.String(), errOut.String(), code
}

// --help, -h and help COMMAND print that command's usage and every flag it takes
// to stdout and exit 0, on every command, as Go's own tools do.
func TestHelpOnEveryCommand(t *testing.T) {
	for _, cmd := range commands() {
		fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
		cmd.define(fs, &cmdEnv{getenv: func(string) string { return "" }})
		for _, args := range [][]string{{cmd.name, "--help"}, {cmd.name, "-h"}, {"help", cmd.name}, {cmd.name, "list", "-help"}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				out, errOut, code := runBare(args...)
				firstLine, _, _ := strings.Cut(cmd.usage, "\n")
				if code != 0 || errOut != "" || !strings.HasPrefix(out, firstLine) {
					t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and stdout starting %q", code, out, errOut, firstLine)
				}
				fs.VisitAll(func(f *flag.Flag) {
					if !strings.Contains(out, "-"+f.Name+"\n") && !strings.Contains(out, "-"+f.Name+" ") {
						t.Errorf("usage lacks -%s:\n%s", f.Name, out)
					}
				})
			})
		}
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		if out, errOut, code := runBare(args...); code != 0 || errOut != "" || out != usage {
			t.Errorf("%v: exit %d, stderr %q, stdout is not the usage:\n%s", args, code, errOut, out)
		}
	}
}

// serve --help lists every variable with its default, from the Config struct.
func TestServeHelpListsEveryVariable(t *testing.T) {
	out, _, code := runBare("serve", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			lines[f[0]] = l
		}
	}
	for _, v := range plugin.Variables() {
		if l, ok := lines[v.Name]; !ok || !strings.Contains(l, " "+v.Default+" ") {
			t.Errorf("serve --help lacks %s with its default %q: %q", v.Name, v.Default, l)
		}
	}
}

// A flag a command does not take, or arguments it cannot run with, print what is
// wrong and the command's usage to stderr and exit 2, which a script tells apart
// from doctor's 1 (problems found) and any command's 1 (it ran and failed).
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"doctor", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"doctor", "extra"}, `unexpected arguments "extra"`},
		{[]string{"registrations", "--limit", "5"}, "flag provided but not defined: -limit"},
		{[]string{"registrations", "delete"}, "delete takes one CLIENT_ID"},
		{[]string{"registrations", "list"}, `unexpected arguments "list"`},
		{[]string{"audit", "--org-id", "x"}, "flag provided but not defined: -org-id"},
		{[]string{"audit", "--limit", "many"}, `invalid value "many" for flag -limit`},
		{[]string{"policy"}, "want list, enable, disable or set"},
		{[]string{"policy", "frobnicate"}, `unknown verb "frobnicate"`},
		{[]string{"policy", "enable"}, "policy enable takes 1 argument(s)"},
		{[]string{"policy", "set", "uk"}, "policy set takes 2 argument(s)"},
		{[]string{"policy", "list", "--fix"}, "flag provided but not defined: -fix"},
		{[]string{"check"}, "want one FILE"},
		{[]string{"check", "--offline", "request.jwt"}, "--offline needs --directory-jwks, --software-jwks and --issuer"},
		{[]string{"check", "--directory-jwks"}, "flag needs an argument: -directory-jwks"},
		{[]string{"serve", "--json"}, "flag provided but not defined: -json"},
		{[]string{"migrate", "now"}, `unexpected arguments "now"`},
		{[]string{"version", "--short"}, "flag provided but not defined: -short"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out, errOut, code := runBare(c.args...)
			prefix := "obdcr " + c.args[0] + ": " + c.want
			if code != 2 || out != "" || !strings.HasPrefix(errOut, prefix) || !strings.Contains(errOut, "\n\nusage: obdcr "+c.args[0]) {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant 2, nothing on stdout, and stderr starting %q then the usage", code, out, errOut, prefix)
			}
		})
	}
	for _, args := range [][]string{{}, {"nonsense"}, {"help", "nonsense"}} {
		if out, errOut, code := runBare(args...); code != 2 || out != "" || !strings.Contains(errOut, "obdcr serve ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and the command list on stderr", args, code, out, errOut)
		}
	}
}
