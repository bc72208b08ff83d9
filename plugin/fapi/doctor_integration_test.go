package fapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/plugin"
)

// aroundTheEdge is a client_credentials grant at Hydra's own token endpoint,
// authenticated with the TPP's own key: what the edge must make impossible.
func aroundTheEdge(t *testing.T, tpp *sandbox.TPP, clientID, issuer string) (int, string) {
	t.Helper()
	now := time.Now()
	assertion, _ := tpp.Signing.Sign(map[string]any{"iss": clientID, "sub": clientID, "aud": issuer + "/oauth2/token",
		"jti": uuid.NewString(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}, nil)
	res, err := http.PostForm(env.Hydra.TokenURL(), url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// doctorFor is obdcr doctor's setup as the command builds it: the environment,
// and the assertion key read from the running obdcr's GET /admin/edge.
func doctorFor(t *testing.T, environ map[string]string, o *testenv.Obdcr) plugin.Setup {
	t.Helper()
	setup, err := plugin.NewDoctor(environ, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, o.AdminURL+"/admin/edge", nil)
	req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
	var info plugin.EdgeInfo
	res, err := http.DefaultClient.Do(req)
	if err == nil {
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /admin/edge: %d", res.StatusCode)
		}
		err = json.NewDecoder(res.Body).Decode(&info)
	}
	setup.Edge = plugin.ParseEdgeInfo(environ["OBDCR_EDGE_PUBLIC_URL"], info, err)
	return setup
}

func finding(fs []plugin.Finding, check string) plugin.Finding {
	for _, f := range fs {
		if f.Check == check {
			return f
		}
	}
	return plugin.Finding{}
}

// TestDoctorMovesPreEdgeRegistrations: a registration made with the edge off
// lets its client use Hydra directly with its own key. With the edge switched
// on, obdcr doctor reports it; --fix says what it will do, then moves it; after
// that the client completes a flow through the edge, its own key is refused at
// Hydra's token endpoint, and the doctor finds nothing more.
func TestDoctorMovesPreEdgeRegistrations(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "obdcr.db")
	ctx := context.Background()

	// The edge off: a registration as before it.
	offEnv := env.Environ()
	offEnv["OBDCR_DSN"] = dsn
	off := startObdcr(t, offEnv)
	tpp, c, clientID := register(t, off, sandbox.UK)
	_ = off.Stop()
	if status, body := aroundTheEdge(t, tpp, clientID, env.Issuer()); status != http.StatusOK {
		t.Fatalf("before the edge the client uses Hydra directly, yet got %d %s", status, body)
	}

	// The edge on, on the same store.
	o := startEdge(t, func(e map[string]string) { e["OBDCR_DSN"] = dsn })
	environ, _ := env.EdgeEnviron()
	doc := readDoc(t)
	// Still around the edge: a flow straight on Hydra (its continuations come
	// back through the edge's proxy), the code redeemed with the TPP's own key.
	direct := sandbox.AuthorizeRequest{AuthURL: env.Hydra.PublicURL + "/oauth2/auth", Issuer: doc.Issuer, ClientID: clientID,
		RedirectURI: tpp.RedirectURIs[0], ResponseType: "code id_token", Scope: "openid accounts offline_access"}
	a, err := c.Authorize(ctx, direct, env.Sandbox.PKI().Pool())
	if err != nil || a.Code == "" {
		t.Fatalf("a flow straight on Hydra before the move: %v %+v", err, a)
	}
	before, err := c.ExchangeCode(ctx, doc.Issuer+"/oauth2/token", clientID, direct.RedirectURI, a)
	if err != nil || before.RefreshToken == "" {
		t.Fatalf("the code at Hydra with the TPP's own key before the move: %v %+v", err, before)
	}

	setup := doctorFor(t, environ, o)
	findings := setup.Run(ctx)
	if f := finding(findings, plugin.CheckEdgeIssuer); f.Severity != plugin.SeverityOK {
		t.Errorf("edge.issuer: %+v", f)
	}
	f := finding(findings, plugin.CheckEdgeRegistrations)
	if f.Severity != plugin.SeverityError || !strings.Contains(f.Message, clientID) || !strings.Contains(f.Message, "redirects to URIs other than the edge's callback") {
		t.Fatalf("the pre-edge registration is not reported: %+v", f)
	}
	plan := setup.Plan(findings)
	if len(plan) == 0 || !strings.Contains(strings.Join(plan, "\n"), "nothing is revoked") {
		t.Fatalf("--fix does not say what it will do: %q", plan)
	}
	done, err := setup.Fix(ctx, findings)
	if err != nil || !strings.Contains(strings.Join(done, "\n"), "moved registration "+clientID) {
		t.Fatalf("--fix: %q %v", done, err)
	}
	if f := finding(setup.Run(ctx), plugin.CheckEdgeRegistrations); f.Severity != plugin.SeverityOK {
		t.Errorf("after --fix: %+v", f)
	}

	// Tokens issued before the move: the access token still active, the
	// refresh token redeemed at the edge.
	if tok, err := setup.Admin.Introspect(ctx, before.AccessToken); err != nil || !tok.Active {
		t.Errorf("an access token issued before the move is no longer active: %+v %v", tok, err)
	}
	if _, err := c.Refresh(ctx, doc.Token, clientID, before.RefreshToken); err != nil {
		t.Errorf("a refresh token issued before the move, at the edge: %v", err)
	}

	// The moved client through the edge; its own key refused at Hydra.
	ar := sandbox.AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: clientID,
		RedirectURI: tpp.RedirectURIs[0], ResponseType: "code id_token", Scope: "openid accounts"}
	a, err = c.Authorize(ctx, ar, env.Sandbox.PKI().Pool())
	if err != nil || a.Error != "" || a.Code == "" || a.Params.Get("iss") != doc.Issuer {
		t.Fatalf("the moved client's authorization through the edge: %v %+v", err, a)
	}
	if _, err := c.ExchangeCode(ctx, doc.Token, clientID, ar.RedirectURI, a); err != nil {
		t.Errorf("the moved client's code at the edge: %v", err)
	}
	if _, _, err := c.Token(ctx, doc.Token, clientID, "accounts"); err != nil {
		t.Errorf("the moved client's client_credentials at the edge: %v", err)
	}
	if status, body := aroundTheEdge(t, tpp, clientID, env.Issuer()); status == http.StatusOK {
		t.Errorf("after the move the client's own key still works at Hydra: %d %s", status, body)
	}
}
