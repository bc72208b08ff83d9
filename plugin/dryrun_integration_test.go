package plugin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
)

type dryRunAnswer struct {
	Profile string `json:"profile"`
	Outcome string `json:"outcome"`
	Error   *struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	} `json:"error"`
	Rules []policy.RuleResult `json:"rules"`
}

func dryRun(t *testing.T, o *testenv.Obdcr, c *sandbox.Client, jwt string) dryRunAnswer {
	t.Helper()
	res, err := c.DryRun(context.Background(), o.AdminURL, testenv.AdminToken, jwt)
	if err != nil || res.Status != http.StatusOK {
		t.Fatalf("dry run: %v %d %s", err, res.Status, res.Body)
	}
	var a dryRunAnswer
	if err := json.Unmarshal(res.Body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func verdicts(a dryRunAnswer) map[string]policy.RuleResult {
	m := map[string]policy.RuleResult{}
	for _, r := range a.Rules {
		m[r.Rule] = r
	}
	return m
}

func TestDryRunReportsEveryFault(t *testing.T) {
	o := startObdcr(t, nil)
	tpp, c := newTPP(t, sandbox.UK)
	jwt := request(t, tpp, nil, func(m map[string]any) {
		m["aud"] = "https://other.example"
		m["redirect_uris"] = []string{"https://evil.example/cb"}
		m["id_token_signed_response_alg"] = "RS256"
		delete(m, "application_type")
	})
	a := dryRun(t, o, c, jwt)
	if a.Outcome != "refused" || a.Profile != "uk" || a.Error == nil || a.Error.Error != "invalid_client_metadata" || !strings.HasPrefix(a.Error.Description, "aud") {
		t.Fatalf("answer %+v", a)
	}
	var failed []string
	for _, r := range a.Rules {
		if r.Verdict == policy.Fail {
			failed = append(failed, r.Rule)
		}
	}
	if strings.Join(failed, ",") != "request.aud,redirect_uris,application_type,id_token_signed_response_alg" {
		t.Fatalf("failed rules %v, want all four faults in rule order", failed)
	}
	if len(a.Rules) != len(o.Server.Registrar().Profiles[0].Rules)+1 { // selection and the rules; no create step after a refusal
		t.Errorf("%d verdicts; every rule and the profile selection should have one", len(a.Rules))
	}
	if v := verdicts(a)[policy.RuleTransportCert]; v.Verdict != policy.Pass {
		t.Errorf("transport certificate with the certificate given: %+v", v)
	}
}

func TestDryRunSkipsWhatDependsOnAFailure(t *testing.T) {
	o := startObdcr(t, nil)
	tpp, c := newTPP(t, sandbox.UK)
	forged, _ := tpp.Signing.Sign(env.Sandbox.Directory.SSAClaims(tpp, time.Now()), nil)
	jwt, _ := tpp.Request(forged, env.Issuer(), time.Now(), nil)
	v := verdicts(dryRun(t, o, c, jwt))
	if v[policy.RuleSSASignature].Verdict != policy.Fail {
		t.Fatalf("ssa.signature: %+v", v[policy.RuleSSASignature])
	}
	for _, name := range []string{policy.RuleSSAClaims, policy.RuleReqSignature, policy.RuleRedirectURIs, "scope"} {
		if v[name].Verdict != policy.Skipped || !strings.Contains(v[name].Message, "did not pass") {
			t.Errorf("%s: %+v, want skipped", name, v[name])
		}
	}
	if v[policy.RuleReqAudience].Verdict != policy.Pass {
		t.Errorf("request.aud does not depend on the SSA: %+v", v[policy.RuleReqAudience])
	}
}

func TestDryRunCreatesNothingAndKeepsTheJTI(t *testing.T) {
	o := startObdcr(t, nil)
	tpp, c := newTPP(t, sandbox.UK)
	jwt := request(t, tpp, nil, nil)
	a := dryRun(t, o, c, jwt)
	if a.Outcome != "approved" || a.Error != nil {
		t.Fatalf("%+v", a)
	}
	for _, r := range a.Rules {
		if r.Verdict != policy.Pass {
			t.Errorf("%s: %s %s", r.Rule, r.Verdict, r.Message)
		}
	}
	if _, err := hydraAdmin(t).Get(context.Background(), policy.ClientIDFor("uk", tpp.SoftwareID)); err != hydra.ErrNotFound {
		t.Fatalf("a dry run created a client: %v", err)
	}
	if res, _ := c.Register(context.Background(), o.URL, jwt); res.Status != http.StatusCreated {
		t.Fatalf("the same request after the dry run: %d %s", res.Status, res.Body)
	}
	// now registered: a dry run says what the real endpoint would
	again := dryRun(t, o, c, request(t, tpp, nil, nil))
	if again.Outcome != "refused" || again.Error == nil || !strings.Contains(again.Error.Description, "already has a registration") {
		t.Fatalf("dry run of a registered software: %+v", again)
	}
	_, body := adminCall(t, o, http.MethodGet, "/admin/audit?kind=dry_run&software_id="+tpp.SoftwareID, "")
	if !strings.Contains(string(body), `"outcome":"approved"`) {
		t.Fatalf("the audit lacks the dry run: %s", body)
	}
	t.Run("without the certificate the certificate rule is skipped", func(t *testing.T) {
		status, body := adminCall(t, o, http.MethodPost, "/admin/dry-run", "")
		if status != http.StatusUnsupportedMediaType {
			t.Fatalf("json dry run: %d %s", status, body)
		}
		req, _ := http.NewRequest(http.MethodPost, o.AdminURL+"/admin/dry-run", strings.NewReader(request(t, tpp, nil, nil)))
		req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
		req.Header.Set("Content-Type", "application/jwt")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var a dryRunAnswer
		_ = json.NewDecoder(res.Body).Decode(&a)
		if v := verdicts(a)[policy.RuleTransportCert]; v.Verdict != policy.Skipped || !strings.Contains(v.Message, "certificate") {
			t.Fatalf("%+v", v)
		}
	})
}
