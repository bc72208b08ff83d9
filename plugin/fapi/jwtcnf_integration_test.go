package fapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/plugin"
	"github.com/obdcr/obdcr/plugin/fapi"
	"github.com/obdcr/obdcr/policy"
)

const hookToken = "token-hook-secret-0123456789"

// startJWTHydra starts a sandbox and a Hydra that issues JWT access tokens and
// calls obdcr's token hook at 127.0.0.1:adminPort, as README's FAPI edge
// section configures it.
func startJWTHydra(t *testing.T) (*testenv.Env, int) {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	hook := fmt.Sprintf(`{"url":"http://127.0.0.1:%d%s","auth":{"type":"api_key","config":{"in":"header","name":"Authorization","value":"Bearer %s"}}}`,
		port, fapi.TokenHookPath, hookToken)
	e, err := testenv.StartEdge(t.TempDir(), "STRATEGIES_ACCESS_TOKEN=jwt", "OAUTH2_ALLOWED_TOP_LEVEL_CLAIMS=cnf", "OAUTH2_TOKEN_HOOK="+hook)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e, port
}

// cnfOf verifies a JWT access token with the published JWKS (Hydra's keys)
// and gives its cnf.x5t#S256.
func cnfOf(t *testing.T, doc *edgeDoc, token string) string {
	t.Helper()
	tok, err := jwt.Parse([]byte(token), jwt.WithKeySet(doc.keys), jwt.WithIssuer(doc.Issuer))
	if err != nil {
		t.Fatalf("the access token is not a JWT verified by the published JWKS: %v (%.40s…)", err, token)
	}
	cnf, _ := tok.Get("cnf")
	m, _ := cnf.(map[string]any)
	s, _ := m["x5t#S256"].(string)
	return s
}

// TestJWTAccessTokensCarryCnf: with Hydra's JWT strategy and its token hook at
// obdcr, every access token the edge issues (code, refresh, client_credentials)
// carries top-level cnf.x5t#S256 of the certificate of its own token request,
// verified with the published JWKS; concurrent requests of one client over two
// certificates each get their own; a refresh over a rotated certificate gets
// the new one; the hook admits only Hydra's token and refuses a request that
// did not come through the edge; and a replica that sends no nonce (the hook
// off there) gets no token at all, never one without cnf.
func TestJWTAccessTokensCarryCnf(t *testing.T) {
	e, port := startJWTHydra(t)
	environ, err := e.EdgeEnviron()
	if err != nil {
		t.Fatal(err)
	}
	environ["OBDCR_ADMIN_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", port)
	environ["OBDCR_TOKEN_HOOK_TOKEN"] = hookToken
	environ["OBDCR_DSN"] = "sqlite://" + filepath.Join(t.TempDir(), "obdcr.db")
	o := startIn(t, e, environ)
	ctx := context.Background()
	doc := readDocOf(t, e)
	tpp, c, clientID := registerIn(t, e, o, sandbox.UK)
	mine, _ := tpp.Transport()
	rotated, err := e.Sandbox.PKI().Client(mine.TLS.Leaf.Subject, nil)
	if err != nil {
		t.Fatal(err)
	}
	renewed := sandbox.NewClientWithCert(tpp, e.Sandbox.PKI().Pool(), &rotated.TLS)

	ar := sandbox.AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: clientID, PARURL: doc.PAR,
		RedirectURI: tpp.RedirectURIs[0], ResponseType: "code id_token", Scope: "openid accounts offline_access"}
	a, err := c.Authorize(ctx, ar, e.Sandbox.PKI().Pool())
	if err != nil || a.Code == "" {
		t.Fatalf("authorize: %v %+v", err, a)
	}
	tokens, err := c.ExchangeCode(ctx, doc.Token, clientID, ar.RedirectURI, a)
	if err != nil {
		t.Fatalf("code: %v", err)
	}
	if got := cnfOf(t, doc, tokens.AccessToken); got != policy.Thumbprint(mine.TLS.Leaf) {
		t.Fatalf("code grant: cnf x5t#S256 %q, want %s", got, policy.Thumbprint(mine.TLS.Leaf))
	}
	if st, body := userinfo(t, c, o.URL, tokens.AccessToken); st != http.StatusOK {
		t.Fatalf("userinfo with the bound JWT: %d %s", st, body)
	}
	fresh, err := renewed.Refresh(ctx, doc.Token, clientID, tokens.RefreshToken)
	if err != nil {
		t.Fatalf("refresh over the rotated certificate: %v", err)
	}
	if got := cnfOf(t, doc, fresh.AccessToken); got != policy.Thumbprint(rotated.TLS.Leaf) {
		t.Fatalf("refresh grant: cnf x5t#S256 %q, want the rotated certificate's %s", got, policy.Thumbprint(rotated.TLS.Leaf))
	}

	// One client, two certificates, token requests at once: each its own cnf.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		cl, leaf := c, mine
		if i%2 == 1 {
			cl, leaf = renewed, rotated
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, r, err := cl.Token(ctx, doc.Token, clientID, "accounts")
			// Hydra's in-memory SQLite (this test's Hydra, not a bank's) fails some
			// concurrent token writes with a bare 500 ("The error is unrecognizable",
			// its database's serialization error; RESULTS.md). Such a request made
			// no token and is sent again; a refusal by the hook reads otherwise
			// (Hydra's server_error naming the token hook) and is never retried.
			for try := 0; try < 3 && hydraBusy(r); try++ {
				tok, r, err = cl.Token(ctx, doc.Token, clientID, "accounts")
			}
			if err != nil {
				errs <- fmt.Errorf("client_credentials %d: %v %+v", i, err, r)
				return
			}
			if got := cnfOf(t, doc, tok); got != policy.Thumbprint(leaf.TLS.Leaf) {
				errs <- fmt.Errorf("client_credentials %d: cnf %q, want %s", i, got, policy.Thumbprint(leaf.TLS.Leaf))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// The hook itself: Hydra's token only, and only the edge's requests; its
	// answers as plugin/openapi.yaml says.
	rec := &testenv.Recorder{RT: http.DefaultTransport}
	hc := &http.Client{Transport: rec}
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"an admin token", "Bearer " + environ["OBDCR_ADMIN_TOKEN"], http.StatusUnauthorized},
		{"not through the edge", "Bearer " + hookToken, http.StatusForbidden},
	} {
		req, _ := http.NewRequest(http.MethodPost, o.AdminURL+fapi.TokenHookPath, strings.NewReader(
			`{"session":{"extra":{}},"request":{"client_id":"`+clientID+`","payload":{"grant_type":["client_credentials"]}}}`))
		req.Header.Set("Content-Type", "application/json")
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("hook, %s: %d %s, want %d", tc.name, res.StatusCode, b, tc.want)
		}
	}
	rep, err := testenv.CheckOpenAPI(ctx, plugin.OpenAPI, rec.All())
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range rep.Errors {
		t.Error(err)
	}
	if !rep.Routes["POST "+fapi.TokenHookPath] {
		t.Errorf("openapi.yaml has no POST %s", fapi.TokenHookPath)
	}

	// A replica on the same store without OBDCR_TOKEN_HOOK_TOKEN sends Hydra
	// no nonce: the hook refuses, and Hydra issues nothing rather than a token
	// without cnf.
	other, err := e.EdgeEnviron()
	if err != nil {
		t.Fatal(err)
	}
	other["OBDCR_DSN"] = environ["OBDCR_DSN"]
	edgePort, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	other["OBDCR_EDGE_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", edgePort)
	b := startIn(t, e, other)
	if tok, r, err := c.Token(ctx, b.URL+"/oauth2/token", clientID, "accounts"); err == nil || tok != "" || r == nil || r.Status/100 == 2 {
		t.Fatalf("a token request the hook cannot see: %q %+v %v, want no token", tok, r, err)
	}
}

// hydraBusy: Hydra answered a token request with its bare 500, which its
// in-memory SQLite gives when concurrent writes collide.
func hydraBusy(r *sandbox.Response) bool {
	return r != nil && r.Status == http.StatusInternalServerError && strings.Contains(string(r.Body), "The error is unrecognizable")
}
