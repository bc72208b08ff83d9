package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"sort"
	"strings"
	"testing"
)

func find(t *testing.T, name string) subcommand {
	t.Helper()
	for _, s := range subcommands() {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("no subcommand %q", name)
	return subcommand{}
}

// parse declares a subcommand's flags on a fresh FlagSet and parses args, as
// execute does, without running it: no server starts, no file is touched.
func parse(s subcommand, args []string) (*flag.FlagSet, error) {
	fs := flag.NewFlagSet(s.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s.define(fs, &cmdEnv{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard})
	return fs, fs.Parse(args)
}

// Every way the scripts, the README, docker-compose.yml and compose-tls.sh run the
// sandbox still parses, with the positional arguments it had.
func TestCallSitesStillParse(t *testing.T) {
	cases := []struct {
		where, cmd string
		args       []string
		rest       []string
	}{
		{"lib.sh start_sandbox", "init", []string{"--listen", "127.0.0.1:8600"}, nil},
		{"compose-tls.sh", "init", []string{"--dir", "d", "--listen", "sandbox:8600"}, nil},
		{"lib.sh start_sandbox", "serve", []string{"--listen", "127.0.0.1:8600", "--hydra-admin", "http://127.0.0.1:4445"}, nil},
		{"docker-compose.yml", "serve", []string{"--dir", "/sandbox", "--listen", "0.0.0.0:8600", "--hydra-admin", "http://hydra:4445"}, nil},
		{"lib.sh wait_ready, docker-compose.yml healthcheck", "wait", []string{"http://127.0.0.1:8444/health/ready"}, []string{"http://127.0.0.1:8444/health/ready"}},
		{"demo.sh, compose-tls.sh", "tpp add", []string{"--dir", "d", "--profile", "au", "--name", "Koala"}, nil},
		{"README", "tpp list", []string{"--dir", "d"}, nil},
		{"demo.sh", "discovery", []string{"--tpp", "Acme", "--obdcr", "https://127.0.0.1:8443"}, nil},
		{"demo.sh show_client", "hydra-client", []string{"--client-id", "id", "http://127.0.0.1:4445"}, []string{"http://127.0.0.1:4445"}},
		{"demo.sh, docker-compose.yml", "register", []string{"--dir", "d", "--tpp", "Acme", "--obdcr", "https://127.0.0.1:8443", "--aud", "http://127.0.0.1:4444"}, nil},
		{"demo.sh", "register", []string{"--tpp", "Acme", "--aud", "a", "--print-jwt", "--set", `redirect_uris=["https://evil.example/cb"]`, "--set", "token_endpoint_auth_method=tls_client_auth"}, nil},
		{"README dry run", "register", []string{"--tpp", "Acme", "--aud", "a", "--dry-run", "--admin-url", "http://127.0.0.1:8444"}, nil},
		{"demo.sh", "flow", []string{"--tpp", "Acme", "--obdcr", "https://127.0.0.1:8443", "--client-id", "id"}, nil},
		{"demo.sh", "get", []string{"--tpp", "Acme", "--obdcr", "o", "--token-url", "http://127.0.0.1:4444/oauth2/token", "--client-id", "id"}, nil},
		{"README", "delete", []string{"--tpp", "Acme", "--obdcr", "o", "--client-id", "id"}, nil},
		{"README", "token", []string{"--tpp", "Acme", "--client-id", "id"}, nil},
		{"README", "update", []string{"--tpp", "Acme", "--obdcr", "o", "--aud", "a", "--client-id", "id", "--set", "client_name=x"}, nil},
		{"README", "status", []string{"--id", "p", "--status", "REMOVED"}, nil},
		{"usage", "register-down", []string{"--dir", "d", "true"}, []string{"true"}},
		{"bench.sh load", "load", []string{"--obdcr", "o", "--aud", "a", "--admin-url", "u", "--hydra-admin", "h", "--concurrency", "16", "--count", "500", "--open-loop", "10"}, nil},
		{"README load", "load", []string{"--tpps", "8"}, nil},
		{"bench.sh growth", "growth", []string{"--obdcr", "o", "--aud", "a", "--admin-url", "u", "--hydra-admin", "h", "--growth-tpps", "10,1000", "--prefill", "50000", "--count", "2500", "--settle", "30s", "--concurrency", "16",
			"--reference-obdcr", "r", "--reference-admin-url", "ra"}, nil},
		{"floods.sh", "flood", []string{"--obdcr", "o", "--admin-url", "u", "--mode", "all", "--count", "3000", "--concurrency", "8", "--max-rss-mib", "60"}, nil},
	}
	for _, c := range cases {
		t.Run(c.cmd+" ("+c.where+")", func(t *testing.T) {
			fs, err := parse(find(t, c.cmd), c.args)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(fs.Args(), " ") != strings.Join(c.rest, " ") {
				t.Fatalf("positional arguments %q, want %q", fs.Args(), c.rest)
			}
		})
	}
}

// Each subcommand refuses every flag that only other subcommands declare; the
// named cases are ones every command accepted before, silently ignoring them.
func TestSubcommandsRefuseOthersFlags(t *testing.T) {
	cases := []struct{ cmd, flag string }{
		{"init", "hydra-admin"}, {"init", "tpp"}, {"tpp list", "profile"}, {"tpp add", "aud"},
		{"register", "token-url"}, {"register", "client-id"}, {"token", "obdcr"}, {"token", "aud"},
		{"get", "set"}, {"update", "dry-run"}, {"flow", "token-url"}, {"discovery", "client-id"},
		{"hydra-client", "dir"}, {"wait", "dir"}, {"status", "tpp"}, {"register-down", "listen"},
		{"load", "mode"}, {"growth", "open-loop"}, {"flood", "aud"}, {"serve", "count"},
	}
	for _, c := range cases {
		if _, err := parse(find(t, c.cmd), []string{"--" + c.flag, "x"}); err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -"+c.flag) {
			t.Errorf("%s --%s: %v, want it refused", c.cmd, c.flag, err)
		}
	}
	declared := map[string]map[string]bool{}
	all := map[string]bool{}
	for _, s := range subcommands() {
		fs, _ := parse(s, nil)
		declared[s.name] = map[string]bool{}
		fs.VisitAll(func(f *flag.Flag) { declared[s.name][f.Name], all[f.Name] = true, true })
	}
	for _, s := range subcommands() {
		var foreign []string
		for name := range all {
			if !declared[s.name][name] {
				foreign = append(foreign, name)
			}
		}
		sort.Strings(foreign)
		for _, name := range foreign {
			if _, err := parse(s, []string{"--" + name + "=x"}); err == nil || !strings.Contains(err.Error(), "not defined") {
				t.Errorf("%s accepts --%s, a flag it does not use: %v", s.name, name, err)
			}
		}
	}
}

func runSandbox(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &cmdEnv{getenv: func(string) string { return "" }, stdout: &out, stderr: &errOut})
	return out.String(), errOut.String(), code
}

// --help and help COMMAND print the subcommand's usage and flags to stdout and
// exit 0; a foreign flag prints the usage to stderr and exits 2, before the
// subcommand touches anything.
func TestSandboxHelpAndUsageErrors(t *testing.T) {
	for _, s := range subcommands() {
		words := strings.Fields(s.name)
		want := "usage: obdcr-sandbox " + s.name
		for _, args := range [][]string{append(words, "--help"), append(words, "-h"), append([]string{"help"}, words...)} {
			out, errOut, code := runSandbox(args...)
			if code != 0 || errOut != "" || !strings.HasPrefix(out, want) {
				t.Errorf("%q: exit %d, stderr %q, stdout %q; want 0 and %q", args, code, errOut, out, want)
			}
		}
		out, errOut, code := runSandbox(append(words, "--no-such-flag")...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "obdcr-sandbox "+s.name+": flag provided but not defined: -no-such-flag\n\n"+want) {
			t.Errorf("%s --no-such-flag: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", s.name, code, out, errOut)
		}
	}
	for _, args := range [][]string{{}, {"--help"}, {"help"}} {
		out, errOut, code := runSandbox(args...)
		if code != 0 || errOut != "" || !strings.Contains(out, "obdcr-sandbox tpp add") || !strings.Contains(out, "obdcr-sandbox flood") {
			t.Errorf("%q: exit %d, stderr %q; want 0 and the command list on stdout", args, code, errOut)
		}
	}
	if out, errOut, code := runSandbox("tpp"); code != 2 || out != "" || !strings.Contains(errOut, `unknown command "tpp"`) {
		t.Errorf("tpp alone: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
