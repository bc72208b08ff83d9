package plugin_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
)

func withRegister(c *serverConfig) {
	c.AU.RegisterURL = env.Sandbox.BaseURL
	c.AU.StatusPollInterval = time.Second
}

func TestAUBesideUK(t *testing.T) {
	o := startObdcr(t, withRegister)
	ctx := context.Background()
	for _, profile := range []string{sandbox.UK, sandbox.AU} {
		tpp, c := newTPP(t, profile)
		res, err := c.Register(ctx, o.URL, request(t, tpp, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusCreated {
			t.Fatalf("%s: %d %s", profile, res.Status, res.Body)
		}
		id, _ := res.JSON()["client_id"].(string)
		hc, err := hydraAdmin(t).Get(ctx, id)
		if err != nil {
			t.Fatalf("%s client not in Hydra: %v", profile, err)
		}
		if profile == sandbox.AU {
			if !strings.Contains(hc.Scope, "cdr:registration") || strings.Join(hc.ResponseTypes, " ") != "code" {
				t.Errorf("AU client: scope %q response_types %v", hc.Scope, hc.ResponseTypes)
			}
			for _, k := range []string{"software_roles", "org_name", "client_description", "recipient_base_uri", "legal_entity_id"} {
				if res.JSON()[k] == nil {
					t.Errorf("AU response lacks %s", k)
				}
			}
			// the data recipient can get a registration token from Hydra
			if _, tres, err := c.Token(ctx, env.Hydra.TokenURL(), id, "cdr:registration"); err != nil {
				t.Errorf("AU client_credentials: %v %v", err, tres)
			}
		}
	}
}

func TestAURemovedSoftwareProductLosesItsClient(t *testing.T) {
	o := startObdcr(t, withRegister)
	ctx := context.Background()
	tpp, c := newTPP(t, sandbox.AU)
	res, _ := c.Register(ctx, o.URL, request(t, tpp, nil, nil))
	if res.Status != http.StatusCreated {
		t.Fatalf("%d %s", res.Status, res.Body)
	}
	id := res.JSON()["client_id"].(string)
	tok, _, err := c.Token(ctx, env.Hydra.TokenURL(), id, "cdr:registration")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Sandbox.SetStatus(tpp.SoftwareID, "REMOVED"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := hydraAdmin(t).Get(ctx, id)
		if err == hydra.ErrNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client of a REMOVED software product is still in Hydra: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if it, err := hydraAdmin(t).Introspect(ctx, tok); err != nil || it.Active {
		t.Errorf("its token is still active: %+v %v", it, err)
	}
	// and it cannot register again while REMOVED
	res, _ = c.Register(ctx, o.URL, request(t, tpp, nil, nil))
	if res.Status != http.StatusBadRequest || res.JSON()["error"] != "unapproved_software_statement" {
		t.Fatalf("REMOVED product re-registered: %d %s", res.Status, res.Body)
	}
}

func TestAURegisterDownKeepsStatuses(t *testing.T) {
	o := startObdcr(t, withRegister)
	ctx := context.Background()
	active, ca := newTPP(t, sandbox.AU)
	inactive, ci := newTPP(t, sandbox.AU)
	if err := env.Sandbox.SetStatus(inactive.SoftwareID, "INACTIVE"); err != nil {
		t.Fatal(err)
	}
	waitForPolls(t, o, "ok", 2) // a whole poll has seen both
	if err := env.Sandbox.SetRegisterDown(true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Sandbox.SetRegisterDown(false) })
	if err := env.Sandbox.SetStatus(inactive.SoftwareID, "ACTIVE"); err != nil { // unseen while down
		t.Fatal(err)
	}
	waitForPolls(t, o, "error", 2) // and a whole poll has failed since
	if res, _ := ca.Register(ctx, o.URL, request(t, active, nil, nil)); res.Status != http.StatusCreated {
		t.Fatalf("an ACTIVE product was refused while the Register is down: %d %s", res.Status, res.Body)
	}
	res, _ := ci.Register(ctx, o.URL, request(t, inactive, nil, nil))
	if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), "INACTIVE") {
		t.Fatalf("the last known INACTIVE was not kept: %d %s", res.Status, res.Body)
	}
	if _, err := hydraAdmin(t).Get(ctx, policy.ClientIDFor("au", active.SoftwareID)); err != nil {
		t.Fatalf("a Register outage removed a client: %v", err)
	}
}

// waitForPolls waits until obdcr has finished n more CDR Register polls with
// result than it had when called; with n = 2, one of them began after the call.
// A fixed sleep would race the poll interval on a loaded machine.
func waitForPolls(t *testing.T, o *testenv.Obdcr, result string, n int) {
	t.Helper()
	count := func() float64 {
		v, err := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_cdr_register_polls_total", map[string]string{"result": result})
		if err != nil && !errors.Is(err, sandbox.ErrNoMetric) {
			t.Fatal(err)
		}
		return v
	}
	want := count() + float64(n)
	deadline := time.Now().Add(20 * time.Second)
	for count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("obdcr did not finish %d more %s polls of the CDR Register in 20 s", n, result)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
