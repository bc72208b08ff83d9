package fapi_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/policy"
)

const introspectionToken = "introspection-secret-0123456789"

// allowTLSClientAuth lets the UK profile register tls_client_auth.
func allowTLSClientAuth(t *testing.T, o *testenv.Obdcr, environ map[string]string) {
	t.Helper()
	body := `{"settings":{"token_endpoint_auth_methods":["private_key_jwt","tls_client_auth"]}}`
	if st, b := putPolicy(t, o.AdminURL, environ["OBDCR_ADMIN_TOKEN"], "uk", body); st != http.StatusOK {
		t.Fatalf("allowing tls_client_auth: %d %s", st, b)
	}
}

// registerTLS registers a UK tls_client_auth client whose subject DN is its
// transport certificate's.
func registerTLS(t *testing.T, o *testenv.Obdcr) (*sandbox.TPP, *sandbox.Client, string, map[string]any) {
	t.Helper()
	tpp, err := env.Sandbox.AddTPP(sandbox.UK, fmt.Sprintf("M%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sandbox.NewClient(tpp, env.Sandbox.PKI().Pool())
	if err != nil {
		t.Fatal(err)
	}
	c.TLSClientAuth = true
	leaf, _ := tpp.Transport()
	dn := leaf.TLS.Leaf
	if dn == nil {
		dn, _ = x509.ParseCertificate(leaf.TLS.Certificate[0])
	}
	now := time.Now()
	ssa, err := env.Sandbox.Authority(sandbox.UK).SSA(tpp, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := tpp.Request(ssa, env.Issuer(), now, func(m map[string]any) {
		m["token_endpoint_auth_method"] = "tls_client_auth"
		m["tls_client_auth_subject_dn"] = dn.Subject.String()
		delete(m, "token_endpoint_auth_signing_alg")
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Register(context.Background(), o.URL, req)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("register with tls_client_auth: %v %d %s", err, res.Status, res.Body)
	}
	return tpp, c, res.JSON()["client_id"].(string), res.JSON()
}

// withCert is c presenting another certificate.
func withCert(c *sandbox.Client, leaf *sandbox.Leaf) *sandbox.Client {
	o := sandbox.NewClientWithCert(c.TPP, env.Sandbox.PKI().Pool(), &leaf.TLS)
	o.TLSClientAuth = c.TLSClientAuth
	return o
}

func userinfo(t *testing.T, c *sandbox.Client, base, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("WWW-Authenticate") + " " + string(b)
}

// check is the resource-server helper as an nginx auth_request calls it.
func check(t *testing.T, adminURL, token string, cert *sandbox.Leaf) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, adminURL+"/oauth2/introspect/check", nil)
	req.Header.Set("Proxy-Authorization", "Bearer "+introspectionToken)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-SSL-Client-Cert", url.QueryEscape(string(cert.CertPEM)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func introspect(t *testing.T, adminURL, bearer, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, adminURL+"/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

// TestBoundTokens runs RFC 8705 end to end on the real Hydra, over two
// replicas sharing one store: a tls_client_auth client registers (bound tokens
// said in its 201 and in discovery), runs PAR → authorize → token with no
// assertion on replica A, and uses its tokens on replica B: /userinfo, the
// management API, introspection (cnf) and the nginx check accept them over its
// certificate and refuse them (401 invalid_token) over another TPP's; after a
// certificate rotation a refresh binds the new tokens to the new certificate
// while the old ones stay bound to the old; a revoked token is inactive and
// unbound; a certificate whose DN is not the registered one is invalid_client.
func TestBoundTokens(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "obdcr.db")
	var environ map[string]string
	a := startEdge(t, func(e map[string]string) {
		e["OBDCR_DSN"] = dsn
		e["OBDCR_INTROSPECTION_TOKENS"] = "rs:" + introspectionToken
		environ = e
	})
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	b := startEdge(t, func(e map[string]string) {
		e["OBDCR_DSN"] = dsn
		e["OBDCR_EDGE_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", port)
		e["OBDCR_INTROSPECTION_TOKENS"] = "rs:" + introspectionToken
	})
	allowTLSClientAuth(t, a, environ)
	ctx := context.Background()
	doc := readDoc(t)
	methods, _ := json.Marshal(doc.raw["token_endpoint_auth_methods_supported"])
	if doc.raw["tls_client_certificate_bound_access_tokens"] != true || !strings.Contains(string(methods), "tls_client_auth") ||
		doc.raw["userinfo_endpoint"] != a.URL+"/userinfo" {
		t.Fatalf("discovery: bound %v, methods %s, userinfo %v", doc.raw["tls_client_certificate_bound_access_tokens"], methods, doc.raw["userinfo_endpoint"])
	}
	tpp, c, clientID, reg := registerTLS(t, a)
	if reg["tls_client_certificate_bound_access_tokens"] != true || reg["token_endpoint_auth_method"] != "tls_client_auth" {
		t.Fatalf("the 201: %v", reg)
	}
	ar := sandbox.AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: clientID, PARURL: a.URL + "/oauth2/par",
		RedirectURI: tpp.RedirectURIs[0], ResponseType: "code id_token", Scope: "openid accounts offline_access"}
	res, err := c.Authorize(ctx, ar, env.Sandbox.PKI().Pool())
	if err != nil || res.Pushed == nil || res.Pushed.Status != http.StatusCreated || res.Code == "" {
		t.Fatalf("PAR (no assertion) and authorize: %v %+v", err, res)
	}
	tokens, err := c.ExchangeCode(ctx, a.URL+"/oauth2/token", clientID, ar.RedirectURI, res)
	if err != nil {
		t.Fatalf("the code at A's token endpoint with no assertion: %v", err)
	}
	cc, _, err := c.Token(ctx, b.URL+"/oauth2/token", clientID, "accounts")
	if err != nil {
		t.Fatalf("client_credentials at B with no assertion: %v", err)
	}
	mine, _ := tpp.Transport()
	other, err := env.Sandbox.AddTPP(sandbox.UK, fmt.Sprintf("O%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	theirs, _ := other.Transport()
	thief := withCert(c, theirs)

	if st, body := userinfo(t, c, b.URL, tokens.AccessToken); st != http.StatusOK {
		t.Fatalf("userinfo at B over the bound certificate: %d %s", st, body)
	}
	if st, body := userinfo(t, thief, b.URL, tokens.AccessToken); st != http.StatusUnauthorized || !strings.Contains(body, `error="invalid_token"`) {
		t.Fatalf("userinfo over another TPP's certificate: %d %s", st, body)
	}
	// Hydra's userinfo at the issuer, where no certificate is asked for.
	if st, body := userinfo(t, thief, doc.Issuer, tokens.AccessToken); st != http.StatusUnauthorized || !strings.Contains(body, "certificate-bound") {
		t.Fatalf("a bound token at the issuer's userinfo: %d %s", st, body)
	}
	if r, err := c.Get(ctx, b.URL, clientID, cc); err != nil || r.Status != http.StatusOK {
		t.Fatalf("management GET over the bound certificate: %v %d %s", err, r.Status, r.Body)
	}
	if r, err := thief.Get(ctx, b.URL, clientID, cc); err != nil || r.Status != http.StatusUnauthorized {
		t.Fatalf("management GET over another certificate: %v %d %s", err, r.Status, r.Body)
	}
	for _, tok := range []string{tokens.AccessToken, cc} {
		if st := check(t, b.AdminURL, tok, mine); st != http.StatusNoContent {
			t.Fatalf("check with the bound certificate: %d", st)
		}
		if st := check(t, a.AdminURL, tok, theirs); st != http.StatusUnauthorized {
			t.Fatalf("check with another certificate: %d", st)
		}
	}
	st, in := introspect(t, a.AdminURL, introspectionToken, cc)
	if cnf, _ := in["cnf"].(map[string]any); st != 200 || in["active"] != true || in["client_id"] != clientID || cnf["x5t#S256"] != policy.Thumbprint(mine.TLS.Leaf) {
		t.Fatalf("introspection: %d %v (want cnf x5t#S256 %s)", st, in, policy.Thumbprint(mine.TLS.Leaf))
	}
	if st, _ := introspect(t, a.AdminURL, environ["OBDCR_ADMIN_TOKEN"], cc); st != http.StatusUnauthorized {
		t.Fatalf("introspection with an admin token: %d, want 401 (separate tokens)", st)
	}

	// Rotation: a new certificate for the same software; a refresh binds to it.
	rotated, err := env.Sandbox.PKI().Client(mine.TLS.Leaf.Subject, nil)
	if err != nil {
		t.Fatal(err)
	}
	renewed := withCert(c, rotated)
	fresh, err := renewed.Refresh(ctx, a.URL+"/oauth2/token", clientID, tokens.RefreshToken)
	if err != nil {
		t.Fatalf("refresh over the rotated certificate: %v", err)
	}
	// Hydra revokes the old access token when its refresh token is used, so
	// over the old certificate it passes the binding and Hydra refuses it
	// (request_unauthorized); over the new one the edge refuses it first.
	for _, tc := range []struct {
		name   string
		c      *sandbox.Client
		token  string
		want   int
		refuse string
	}{
		{"new token, new certificate", renewed, fresh.AccessToken, 200, ""},
		{"new token, old certificate", c, fresh.AccessToken, 401, `error="invalid_token"`},
		{"old token, old certificate", c, tokens.AccessToken, 401, "request_unauthorized"},
		{"old token, new certificate", renewed, tokens.AccessToken, 401, `error="invalid_token"`},
	} {
		if st, body := userinfo(t, tc.c, b.URL, tc.token); st != tc.want || !strings.Contains(body, tc.refuse) {
			t.Errorf("%s: userinfo %d, want %d %s: %s", tc.name, st, tc.want, tc.refuse, body)
		}
	}
	cc2, _, err := renewed.Token(ctx, a.URL+"/oauth2/token", clientID, "accounts")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := renewed.Get(ctx, b.URL, clientID, cc2); err != nil || r.Status != http.StatusOK {
		t.Fatalf("management over the rotated certificate with a token bound to it: %v %d %s", err, r.Status, r.Body)
	}
	if r, err := c.Get(ctx, b.URL, clientID, cc2); err != nil || r.Status != http.StatusUnauthorized {
		t.Fatalf("management over the registered certificate with a token bound to the rotated one: %v %d %s", err, r.Status, r.Body)
	}

	// Revocation (RFC 7009) by the certificate alone: Hydra forgets the token
	// and so does the binding.
	rev, err := renewed.HTTP.PostForm(a.URL+"/oauth2/revoke", url.Values{"client_id": {clientID}, "token": {cc2}})
	if err != nil {
		t.Fatal(err)
	}
	rev.Body.Close()
	if rev.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", rev.StatusCode)
	}
	if st := check(t, b.AdminURL, cc2, rotated); st != http.StatusUnauthorized {
		t.Fatalf("check of a revoked token: %d", st)
	}
	if _, in := introspect(t, b.AdminURL, introspectionToken, cc2); in["active"] != false || in["cnf"] != nil {
		t.Fatalf("introspection of a revoked token: %v", in)
	}

	// Another TPP's certificate (another DN) at the token endpoint.
	if _, r, _ := thief.Token(ctx, a.URL+"/oauth2/token", clientID, "accounts"); r == nil || r.Status != http.StatusUnauthorized || r.JSON()["error"] != "invalid_client" {
		t.Fatalf("a certificate with another DN: %+v", r)
	}
}

// TestBoundTokensBehindNginx: the README's resource-server example, on the
// real nginx (deploy/proxies/nginx-bound-tokens.conf): the resource API is
// reached with a bound token over its certificate, and not with the same token
// over another TPP's certificate, nor without a certificate, nor with no token.
func TestBoundTokensBehindNginx(t *testing.T) {
	var environ map[string]string
	o := startEdge(t, func(e map[string]string) {
		e["OBDCR_INTROSPECTION_TOKENS"] = "nginx:" + introspectionToken
		environ = e
	})
	allowTLSClientAuth(t, o, environ)
	ctx := context.Background()
	tpp, c, clientID, _ := registerTLS(t, o)
	token, _, err := c.Token(ctx, o.URL+"/oauth2/token", clientID, "accounts")
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "accounts") }))
	defer api.Close()
	dir := t.TempDir()
	server, err := env.Sandbox.PKI().Server("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "rs.pem"), filepath.Join(dir, "rs.key")
	if err := os.WriteFile(certFile, server.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, server.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	proxy, err := testenv.StartNginx("../../deploy/proxies/nginx-bound-tokens.conf", map[string]string{
		"SERVER_CERT": certFile, "SERVER_KEY": keyFile, "CLIENT_CA": env.Sandbox.CAFile,
		"API": api.URL, "OBDCR_ADMIN": o.AdminURL, "INTROSPECTION_TOKEN": introspectionToken})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Stop()
	other, err := env.Sandbox.AddTPP(sandbox.UK, fmt.Sprintf("N%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	theirs, _ := other.Transport()
	for _, tc := range []struct {
		name  string
		c     *sandbox.Client
		token string
		want  int
	}{
		{"bound token over its certificate", c, token, 200},
		{"the same token over another TPP's certificate", withCert(c, theirs), token, 401},
		{"no certificate", sandbox.NewClientWithCert(tpp, env.Sandbox.PKI().Pool(), nil), token, 401},
		{"no token", c, "", 401},
	} {
		req, _ := http.NewRequest(http.MethodGet, proxy.URL+"/accounts", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		res, err := tc.c.HTTP.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.want || (tc.want == 200 && string(body) != "accounts") {
			t.Errorf("%s: %d %s, want %d\nnginx: %s", tc.name, res.StatusCode, body, tc.want, proxy.Log())
		}
	}
}

// TestTLSClientAuthDryRun: the dry run shows the tls_client_auth rule, failing
// with a DN that names another software, passing with the certificate's own.
func TestTLSClientAuthDryRun(t *testing.T) {
	var environ map[string]string
	o := startEdge(t, func(e map[string]string) { environ = e })
	allowTLSClientAuth(t, o, environ)
	tpp, err := env.Sandbox.AddTPP(sandbox.UK, fmt.Sprintf("D%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := sandbox.NewClient(tpp, env.Sandbox.PKI().Pool())
	now := time.Now()
	ssa, err := env.Sandbox.Authority(sandbox.UK).SSA(tpp, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	for dn, want := range map[string]string{
		"CN=" + tpp.SoftwareID + ",OU=" + tpp.OrgID + ",O=OpenBanking": "pass",
		"CN=someone-else,OU=" + tpp.OrgID + ",O=OpenBanking":           "fail",
	} {
		req, _ := tpp.Request(ssa, env.Issuer(), now, func(m map[string]any) {
			m["token_endpoint_auth_method"] = "tls_client_auth"
			m["tls_client_auth_subject_dn"] = dn
			delete(m, "token_endpoint_auth_signing_alg")
		})
		res, err := c.DryRun(context.Background(), o.AdminURL, environ["OBDCR_ADMIN_TOKEN"], req)
		if err != nil || res.Status != http.StatusOK {
			t.Fatalf("dry run: %v %+v", err, res)
		}
		var out struct {
			Rules []struct{ Rule, Verdict, Message string } `json:"rules"`
		}
		_ = json.Unmarshal(res.Body, &out)
		got := ""
		for _, r := range out.Rules {
			if r.Rule == "tls_client_auth" {
				got = r.Verdict
			}
		}
		if got != want {
			t.Errorf("DN %s: rule tls_client_auth %q, want %q: %s", dn, got, want, res.Body)
		}
	}
}
