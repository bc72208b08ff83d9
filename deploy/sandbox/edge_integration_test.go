package sandbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
)

// startEdge runs Hydra behind an obdcr with its FAPI edge on, for one test.
func startEdge(t *testing.T, change func(map[string]string)) (*testenv.Env, *testenv.Obdcr) {
	t.Helper()
	env, err := testenv.StartEdge(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	o, err := env.StartEdgeObdcr(change)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Stop() })
	return env, o
}

// An AU data recipient's PAR flow as a person's browser runs it: the TPP pushes
// its request object over mutual TLS, real Chromium follows the authorization
// URL through obdcr's edge into Hydra, the person signs in and allows on the
// sandbox bank's pages, and the browser lands at the TPP's redirect URI with a
// JARM response that verifies with the published JWKS; the TPP redeems its code.
func TestEdgePARFlowInChromium(t *testing.T) {
	env, o := startEdge(t, nil)
	ctx := context.Background()

	tpp, err := env.Sandbox.AddTPP(sandbox.AU, "Wombat")
	if err != nil {
		t.Fatal(err)
	}
	c, err := sandbox.NewClient(tpp, env.Sandbox.PKI().Pool())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ssa, err := env.Sandbox.Authority(sandbox.AU).SSA(tpp, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	reqJWT, err := tpp.Request(ssa, env.Issuer(), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Register(ctx, o.URL, reqJWT)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("register: %v %+v", err, res)
	}
	clientID := res.JSON()["client_id"].(string)
	res, err = c.Discovery(ctx, o.URL)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
		Auth   string `json:"authorization_endpoint"`
		PAR    string `json:"pushed_authorization_request_endpoint"`
		Token  string `json:"token_endpoint"`
		JWKS   string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(res.Body, &doc); err != nil || doc.PAR == "" {
		t.Fatalf("discovery: %v %s", err, res.Body)
	}

	// The TPP's redirect URI, https://<its host>/callback, is served here: Chromium
	// resolves the TPP's host to this server, which tells what reached it.
	landed := make(chan url.Values, 1)
	tppSite := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" {
			select {
			case landed <- r.URL.Query():
			default:
			}
		}
		fmt.Fprint(w, `<!doctype html><title>TPP</title><h1 id="landed">Back at the TPP</h1>`)
	}))
	defer tppSite.Close()
	redirect, _ := url.Parse(tpp.RedirectURIs[0])

	// The TPP pushes its request (PAR over mTLS); the browser carries only client_id and request_uri.
	a, authURL, err := c.AuthorizationURL(ctx, sandbox.AuthorizeRequest{AuthURL: doc.Auth, Issuer: doc.Issuer,
		ClientID: clientID, RedirectURI: redirect.String(), ResponseType: "code", Scope: "openid bank:accounts.basic:read",
		ResponseMode: "jwt", PARURL: doc.PAR})
	if err != nil {
		t.Fatal(err)
	}
	if a.Pushed == nil || a.Pushed.Status != http.StatusCreated || !strings.Contains(authURL, "request_uri=") || strings.Contains(authURL, "request=") {
		t.Fatalf("PAR: %+v, the browser's URL %s", a.Pushed, authURL)
	}

	// Chromium: the edge and the TPP's site use certificates it does not know
	// (the sandbox CA's, httptest's), so it is told to accept them.
	chromium, err := testenv.Chromium()
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("headless", "new"), chromedp.Flag("disable-gpu", true), chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("host-resolver-rules", fmt.Sprintf("MAP %s %s", redirect.Hostname(), tppSite.Listener.Addr())))
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	// Each step has a minute (the tab lives on bctx, so a step's deadline does not close it).
	step := func(actions ...chromedp.Action[chromedp.Void]) error {
		sctx, cancel := context.WithTimeout(bctx, time.Minute)
		defer cancel()
		return chromedp.Do(sctx, actions...)
	}

	// The person: the sign-in page, their name typed, Sign in; the consent page
	// lists what the TPP asks for; Allow.
	if err := step(chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.CSS("#username"))); err != nil {
		t.Fatalf("the sign-in page: %v", err)
	}
	if u, _ := chromedp.Run(bctx, chromedp.Location()); !strings.HasPrefix(u, env.Sandbox.BaseURL+"/hydra/login?") {
		t.Fatalf("the edge sent the browser to %s, not the bank's sign-in", u)
	}
	if err := step(chromedp.Clear(chromedp.CSS("#username")), chromedp.SendKeys(chromedp.CSS("#username"), "wombat-customer"),
		chromedp.Click(chromedp.CSS("#submit")), chromedp.WaitVisible(chromedp.CSS("#scopes"))); err != nil {
		t.Fatalf("signing in: %v; the browser is at %s", err, where(bctx))
	}
	scopes, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#scopes")))
	if err != nil || !strings.Contains(scopes, "bank:accounts.basic:read") {
		t.Fatalf("the consent page lists %q (%v)", scopes, err)
	}
	if err := step(chromedp.Click(chromedp.CSS("#submit")), chromedp.WaitVisible(chromedp.CSS("#landed"))); err != nil {
		t.Fatalf("allowing: %v; the browser is at %s", err, where(bctx))
	}
	at, _ := chromedp.Run(bctx, chromedp.Location())
	if !strings.HasPrefix(at, redirect.String()+"?response=") {
		t.Fatalf("the browser landed at %s, not the redirect URI with a JARM response", at)
	}

	// The TPP: the JARM response verifies with the published JWKS, holds its state
	// and a code (nothing outside it), and the code redeems.
	got := <-landed
	if got.Get("code") != "" || got.Get("state") != "" || got.Get("response") == "" {
		t.Fatalf("at the redirect URI: %v", got)
	}
	keys, err := jwk.Fetch(ctx, doc.JWKS, jwk.WithHTTPClient(c.HTTP))
	if err != nil {
		t.Fatal(err)
	}
	p, err := sandbox.OpenJARM(got.Get("response"), keys, doc.Issuer, clientID)
	if err != nil {
		t.Fatalf("the JARM response does not verify with the published JWKS: %v", err)
	}
	if p.Get("state") != a.SentState || p.Get("code") == "" || p.Get("error") != "" {
		t.Fatalf("JARM response: %v, sent state %s", p, a.SentState)
	}
	a.Code = p.Get("code")
	tokens, err := c.ExchangeCode(ctx, doc.Token, clientID, redirect.String(), a)
	if err != nil {
		t.Fatalf("redeeming the code: %v", err)
	}
	id, err := jwt.Parse([]byte(tokens.IDToken), jwt.WithKeySet(keys), jwt.WithIssuer(doc.Issuer), jwt.WithAudience(clientID))
	if err != nil || !strings.Contains(tokens.Scope, "bank:accounts.basic:read") {
		t.Fatalf("tokens: scope %q, ID token: %v", tokens.Scope, err)
	}
	if id.Subject() != "wombat-customer" {
		t.Fatalf("the ID token's sub is %q, not the customer who signed in", id.Subject())
	}
}

// where is the browser's location and the start of its page, for a failure.
func where(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	return fmt.Sprintf("%s: %.300s", u, body)
}

// make bench's edge figures: whole flows through the edge with obdcr's CPU
// read around them, and the edge's token endpoint beside Hydra's own at half
// of Hydra's capacity. Every flow and token request succeeds, and each figure
// is measured, not left at zero.
func TestRunEdgeBench(t *testing.T) {
	// The load tool is many browsers from one address, as in make bench.
	env, o := startEdge(t, func(m map[string]string) { m["OBDCR_EDGE_RATE_LIMIT"] = "0" })
	res, err := sandbox.RunEdgeBench(context.Background(), env.Sandbox.Sandbox, sandbox.EdgeBenchConfig{ObdcrURL: o.URL, AdminURL: o.AdminURL,
		HydraAdmin: env.Hydra.AdminURL, HydraPublic: env.Hydra.PublicURL, Flows: 6, Concurrency: 2, Count: 40, OpenLoopSeconds: 0.5}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Flows != 6 || res.FlowErrors != 0 || res.FlowCPUms <= 0 || res.FlowsPerSecond <= 0 {
		t.Errorf("flows: %+v", res)
	}
	// Each flow's browser makes one connection to the edge, as a browser does.
	if res.HandshakesPerFlow != 1 {
		t.Errorf("%.2f TLS handshakes at the edge a flow; want 1", res.HandshakesPerFlow)
	}
	// Hydra's in-memory SQLite refuses a concurrent token write now and then
	// (on both sides alike); more than a tenth failing is a finding.
	for name, l := range map[string]sandbox.Latency{"through the edge": res.Edge, "Hydra alone": res.Hydra} {
		if l.Sent == 0 || l.Errors > l.Sent/10 || l.P99ms <= 0 || l.P50ms > l.P99ms {
			t.Errorf("token requests %s: %+v (%s)", name, l, res.FirstError)
		}
	}
	if res.HydraCapacity <= 0 || res.HalfCapacity != res.HydraCapacity/2 || res.TokenP99Ratio != res.Edge.P99ms/res.Hydra.P99ms {
		t.Errorf("capacity %v, half %v, ratio %v", res.HydraCapacity, res.HalfCapacity, res.TokenP99Ratio)
	}
}
