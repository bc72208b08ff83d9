package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	dir, _ := os.MkdirTemp("", "obdcr-cli-")
	var err error
	env, err = testenv.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	env.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

func cli(t *testing.T, admin string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		return map[string]string{"OBDCR_ADMIN_URL": admin, "OBDCR_ADMIN_TOKEN": testenv.AdminToken}[k]
	}
	code := run(args, getenv, &out, &errOut)
	return out.String() + errOut.String(), code
}

func register(t *testing.T, o *testenv.Obdcr, profile string) *sandbox.Response {
	t.Helper()
	tpp, err := env.Sandbox.AddTPP(profile, fmt.Sprintf("C%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := sandbox.NewClient(tpp, env.Sandbox.PKI().Pool())
	now := time.Now()
	ssa, _ := env.Sandbox.Authority(profile).SSA(tpp, now, nil)
	jwt, _ := tpp.Request(ssa, env.Issuer(), now, nil)
	res, err := c.Register(context.Background(), o.URL, jwt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// The acceptance: an admin switches AU off from the CLI and sees UK still
// registering and AU refused on both replicas, then reads why in the audit, all
// on PostgreSQL.
func TestCLISwitchesAUOffOnBothReplicas(t *testing.T) {
	dsn, _ := testenv.PostgresDatabase(t)
	var replicas []*testenv.Obdcr
	for i := 0; i < 2; i++ {
		cfg := env.Config()
		cfg.DSN = dsn
		o, err := env.StartObdcr(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Stop()
		replicas = append(replicas, o)
	}
	a, b := replicas[0], replicas[1]

	out, code := cli(t, a.AdminURL, "policy", "disable", "au")
	if code != 0 || !strings.Contains(out, "au: enabled=false") {
		t.Fatalf("policy disable au: %d %s", code, out)
	}
	time.Sleep(1500 * time.Millisecond) // B polls the shared version every second
	for i, o := range replicas {
		if res := register(t, o, sandbox.UK); res.Status != 201 {
			t.Errorf("replica %d: UK %d %s", i, res.Status, res.Body)
		}
		res := register(t, o, sandbox.AU)
		if res.Status != 400 || !strings.Contains(string(res.Body), "switched off") {
			t.Errorf("replica %d: AU %d %s", i, res.Status, res.Body)
		}
	}
	out, code = cli(t, b.AdminURL, "audit", "--profile", "au")
	if code != 0 || strings.Count(out, "unapproved_software_statement") != 2 || !strings.Contains(out, "switched off") || !strings.Contains(out, "policy") {
		t.Fatalf("audit on replica B:\n%s", out)
	}
	out, _ = cli(t, b.AdminURL, "policy", "list", "--json")
	var rows []struct {
		Profile string `json:"profile"`
		Enabled bool   `json:"enabled"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 2 || rows[0].Enabled != true || rows[1].Profile != "au" || rows[1].Enabled {
		t.Fatalf("policy list on replica B: %s", out)
	}
}

func TestCLICommands(t *testing.T) {
	o, err := env.StartObdcr(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()
	res := register(t, o, sandbox.UK)
	var created map[string]any
	_ = json.Unmarshal(res.Body, &created)
	clientID, _ := created["client_id"].(string)
	softwareID, _ := created["software_id"].(string)

	settings := filepath.Join(t.TempDir(), "uk.json")
	_ = os.WriteFile(settings, []byte(`{"clock_skew":"20s","allow_delete":false}`), 0o600)
	bad := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(bad, []byte(`{"signing_algs":["none"]}`), 0o600)

	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"policy", "list"}, 0, "PROFILE"},
		{[]string{"policy", "list", "--json"}, 0, `"profile": "uk"`},
		{[]string{"policy", "set", "uk", settings}, 0, `"clock_skew":"20s"`},
		{[]string{"policy", "set", "uk", bad}, 1, "signing_algs"},
		{[]string{"policy", "enable", "br"}, 1, "404"},
		{[]string{"registrations", "--software-id", softwareID}, 0, clientID},
		{[]string{"registrations", "--software-id", softwareID, "--json"}, 0, `"client_id": "` + clientID},
		{[]string{"registrations", "--software-id", softwareID, "--json"}, 0, `"cert_thumbprint": "`},
		{[]string{"audit", "--kind", "policy"}, 0, "admin"},
		{[]string{"audit", "--software-id", softwareID, "--json"}, 0, `"outcome": "approved"`},
		{[]string{"registrations", "delete", clientID}, 0, "deleted"},
		{[]string{"registrations", "--software-id", softwareID, "--json"}, 0, "[]"},
		{[]string{"nonsense"}, 2, "unknown command"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out, code := cli(t, o.AdminURL, c.args...)
			if code != c.code || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d (want %d), output:\n%s\nwant it to contain %q", code, c.code, out, c.want)
			}
		})
	}
	t.Run("no token", func(t *testing.T) {
		var out bytes.Buffer
		code := run([]string{"policy", "list"}, func(string) string { return "" }, &out, &out)
		if code != 1 || !strings.Contains(out.String(), "OBDCR_ADMIN_TOKEN") {
			t.Fatalf("%d %s", code, out.String())
		}
	})
}

func TestCLICheck(t *testing.T) {
	o, err := env.StartObdcr(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()
	tpp, _ := env.Sandbox.AddTPP(sandbox.UK, fmt.Sprintf("K%d", time.Now().UnixNano()))
	now := time.Now()
	ssa, _ := env.Sandbox.Directory.SSA(tpp, now, nil)
	bad, _ := tpp.Request(ssa, env.Issuer(), now, func(m map[string]any) {
		m["redirect_uris"] = []string{"https://evil.example/cb"}
		m["token_endpoint_auth_method"] = "tls_client_auth"
	})
	good, _ := tpp.Request(ssa, env.Issuer(), now, nil)
	dir := t.TempDir()
	write := func(name string, v any) string {
		p := filepath.Join(dir, name)
		b, _ := json.Marshal(v)
		_ = os.WriteFile(p, b, 0o600)
		return p
	}
	badFile, goodFile := filepath.Join(dir, "bad.jwt"), filepath.Join(dir, "good.jwt")
	_ = os.WriteFile(badFile, []byte(bad), 0o600)
	_ = os.WriteFile(goodFile, []byte(good), 0o600)
	tppSet, _ := tpp.JWKS()
	dirJWKS, swJWKS := write("dir.jwks", env.Sandbox.Directory.JWKS()), write("sw.jwks", tppSet)
	offline := []string{"--offline", "--directory-jwks", dirJWKS, "--software-jwks", swJWKS, "--issuer", env.Issuer()}

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"online, faulty", []string{"check", badFile}, []string{"redirect_uris", "fail", "token_endpoint_auth_method", "refused (profile uk): invalid_redirect_uri"}},
		{"online, good", []string{"check", goodFile}, []string{"approved (profile uk)", "hydra.create"}},
		{"offline, faulty", append(append([]string{"check"}, offline...), badFile), []string{"refused (profile uk): invalid_redirect_uri", "Hydra cannot"}},
		{"offline, good, json", append(append([]string{"check", "--json"}, offline...), goodFile), []string{`"outcome": "approved"`, `"verdict": "skipped"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code := cli(t, o.AdminURL, c.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	// The good request was only checked: it still registers.
	if res := registerJWT(t, o, tpp, good); res.Status != 201 {
		t.Fatalf("after the checks: %d %s", res.Status, res.Body)
	}
}

func registerJWT(t *testing.T, o *testenv.Obdcr, tpp *sandbox.TPP, jwt string) *sandbox.Response {
	t.Helper()
	c, _ := sandbox.NewClient(tpp, env.Sandbox.PKI().Pool())
	res, err := c.Register(context.Background(), o.URL, jwt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A refused request whose SSA names its software with a newline, a tab and an
// ANSI sequence cannot forge a row of `obdcr audit`.
func TestCLIAuditEscapesForgedRows(t *testing.T) {
	o, err := env.StartObdcr(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()
	tpp, err := env.Sandbox.AddTPP(sandbox.UK, fmt.Sprintf("F%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := sandbox.NewClient(tpp, env.Sandbox.PKI().Pool())
	forged := "x\n2026-01-01T00:00:00Z\tregistration\tuk\tvictim\tapproved\t\x1b[2K\x1b[1A"
	now := time.Now()
	ssa, _ := env.Sandbox.Authority(sandbox.UK).SSA(tpp, now, func(m map[string]any) { m["software_id"] = forged })
	jwt, _ := tpp.Request(ssa, env.Issuer(), now, nil)
	res, err := c.Register(context.Background(), o.URL, jwt)
	if err != nil || res.Status != 400 {
		t.Fatalf("%v %d %s", err, res.Status, res.Body)
	}
	out, code := cli(t, o.AdminURL, "audit", "--kind", "registration")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if strings.Contains(out, "\x1b") || strings.Contains(out, "\tvictim") {
		t.Fatalf("raw control characters reached the terminal:\n%q", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `x\n2026-01-01T00:00:00Z\tregistration`) {
		t.Fatalf("want the header and one escaped row, got:\n%s", out)
	}
}

// obdcr doctor fails on Hydra as it comes, --fix mends what it says it will,
// and a Hydra set up as the demo sets it up passes.
func TestDoctor(t *testing.T) {
	doctor := func(t *testing.T, h *testenv.Hydra, publicURL string, args ...string) (doctorReport, int) {
		t.Helper()
		vars := map[string]string{"HYDRA_ADMIN_URL": h.AdminURL, "HYDRA_PUBLIC_URL": h.PublicURL, "OBDCR_ISSUER": h.PublicURL,
			"OBDCR_PUBLIC_URL": publicURL, "OBDCR_ADMIN_URL": "http://127.0.0.1:1"} // no obdcr: the profiles' defaults
		var out, errOut bytes.Buffer
		code := run(append([]string{"doctor", "--json"}, args...), func(k string) string { return vars[k] }, &out, &errOut)
		var rep doctorReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
		}
		return rep, code
	}
	severity := func(rep doctorReport, check string) string {
		for _, f := range rep.Findings {
			if f.Check == check {
				return f.Severity
			}
		}
		return "absent"
	}
	t.Run("Hydra as it comes", func(t *testing.T) {
		h, err := testenv.StartDefaultHydra("", "OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED=true")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Stop()
		rep, code := doctor(t, h, "https://obdcr.example")
		if code != 1 || severity(rep, "hydra.id_token_alg") != "error" || severity(rep, "hydra.registration_endpoint") != "error" ||
			severity(rep, "hydra.discovery") != "error" || severity(rep, "hydra.issuer") != "ok" {
			t.Fatalf("exit %d: %+v", code, rep)
		}
		rep, code = doctor(t, h, "https://obdcr.example", "--fix")
		if code != 1 || len(rep.Fixed) != 1 || severity(rep, "hydra.id_token_alg") != "ok" || severity(rep, "hydra.registration_endpoint") != "error" {
			t.Fatalf("after --fix, exit %d: %+v", code, rep)
		}
		// It said, before acting, that the new alg reaches every Hydra client.
		if len(rep.Plan) != 1 || !strings.Contains(rep.Plan[0], "ALL its clients") || !strings.Contains(rep.Plan[0], "obdcr did not register") {
			t.Fatalf("--fix did not say that every Hydra client is affected: %q", rep.Plan)
		}
		// --fix mends only the key; a second run has nothing to do.
		if rep, _ = doctor(t, h, "https://obdcr.example", "--fix"); len(rep.Fixed) != 0 {
			t.Fatalf("a second --fix changed Hydra again: %v", rep.Fixed)
		}
	})
	t.Run("Hydra set up as the demo sets it up", func(t *testing.T) {
		h, err := testenv.StartHydra("", "WEBFINGER_OIDC_DISCOVERY_CLIENT_REGISTRATION_URL=https://obdcr.example/register")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Stop()
		if rep, code := doctor(t, h, "https://obdcr.example"); code != 0 || rep.Problems != 0 {
			t.Fatalf("exit %d: %+v", code, rep)
		}
		// and the checks that need a mismatch to show
		if rep, code := doctor(t, h, "https://elsewhere.example"); code != 1 || severity(rep, "hydra.discovery") != "error" {
			t.Fatalf("registration_endpoint elsewhere: exit %d %+v", code, rep)
		}
	})
	// A running obdcr's live profiles are the measure: the Hydra that passes on
	// the defaults fails once the admins allow only ES256 ID tokens.
	t.Run("judged by the running obdcr's profiles", func(t *testing.T) {
		o, err := env.StartObdcr(env.Config())
		if err != nil {
			t.Fatal(err)
		}
		defer o.Stop()
		vars := map[string]string{"HYDRA_ADMIN_URL": env.Hydra.AdminURL, "HYDRA_PUBLIC_URL": env.Hydra.PublicURL, "OBDCR_ISSUER": env.Issuer(),
			"OBDCR_ADMIN_URL": o.AdminURL, "OBDCR_ADMIN_TOKEN": testenv.AdminToken}
		check := func() doctorReport {
			var out, errOut bytes.Buffer
			run([]string{"doctor", "--json"}, func(k string) string { return vars[k] }, &out, &errOut)
			var rep doctorReport
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("%s %s", out.String(), errOut.String())
			}
			if !strings.HasPrefix(rep.Policy, "the running obdcr's") {
				t.Fatalf("judged by %q, not the running obdcr", rep.Policy)
			}
			return rep
		}
		if rep := check(); severity(rep, "hydra.id_token_alg") != "ok" {
			t.Fatalf("Hydra's PS256 key with the profiles as they come: %+v", rep)
		}
		es256 := filepath.Join(t.TempDir(), "es256.json")
		_ = os.WriteFile(es256, []byte(`{"signing_algs":["ES256"]}`), 0o600)
		for _, args := range [][]string{{"policy", "set", "uk", es256}, {"policy", "disable", "au"}} {
			if out, code := cli(t, o.AdminURL, args...); code != 0 {
				t.Fatalf("%v: exit %d %s", args, code, out)
			}
		}
		if rep := check(); severity(rep, "hydra.id_token_alg") != "error" {
			t.Fatalf("UK allows only ES256, AU is off, Hydra signs ID tokens with PS256: %+v", rep)
		}
	})
	t.Run("Hydra unreachable", func(t *testing.T) {
		h := &testenv.Hydra{AdminURL: "http://127.0.0.1:1", PublicURL: "http://127.0.0.1:1"}
		if rep, code := doctor(t, h, ""); code != 1 || severity(rep, "hydra.admin") != "error" || severity(rep, "hydra.public") != "error" {
			t.Fatalf("exit %d: %+v", code, rep)
		}
	})
}
