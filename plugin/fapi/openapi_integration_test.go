package fapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/plugin"
)

// TestEdgeResponsesMatchOpenAPI: a tour of the edge's endpoints on the TPP
// listener (PAR, token, userinfo, revoke) and the admin listener
// (introspection and its check), answers and refusals, each answer checked
// against plugin/openapi.yaml; every one of those routes is in the tour.
func TestEdgeResponsesMatchOpenAPI(t *testing.T) {
	var environ map[string]string
	o := startEdge(t, func(e map[string]string) {
		e["OBDCR_INTROSPECTION_TOKENS"] = "rs:" + introspectionToken
		environ = e
	})
	allowTLSClientAuth(t, o, environ)
	ctx := context.Background()
	doc := readDoc(t)
	tpp, c, clientID, _ := registerTLS(t, o)
	ar := sandbox.AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: clientID, PARURL: o.URL + "/oauth2/par",
		RedirectURI: tpp.RedirectURIs[0], ResponseType: "code id_token", Scope: "openid accounts offline_access"}
	flow, err := c.Authorize(ctx, ar, env.Sandbox.PKI().Pool()) // the browser's part is not obdcr's API
	if err != nil || flow.Code == "" {
		t.Fatalf("authorize: %v %+v", err, flow)
	}
	rec := &testenv.Recorder{RT: c.HTTP.Transport}
	rc := &sandbox.Client{TPP: c.TPP, HTTP: &http.Client{Transport: rec, Timeout: 30 * time.Second}, TLSClientAuth: true}
	other, err := env.Sandbox.AddTPP(sandbox.UK, fmt.Sprintf("A%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	theirs, _ := other.Transport()
	thief := withCert(c, theirs)
	thief.HTTP = &http.Client{Transport: &testenv.Recorder{RT: thief.HTTP.Transport}, Timeout: 30 * time.Second}
	thiefRec := thief.HTTP.Transport.(*testenv.Recorder)

	// PAR: pushed (201), no request object (400), another certificate (401).
	now := time.Now()
	verifier := sha256.Sum256([]byte(uuid.NewString()))
	object, err := tpp.Signing.Sign(map[string]any{"iss": clientID, "aud": doc.Issuer, "client_id": clientID, "response_type": "code id_token",
		"redirect_uri": ar.RedirectURI, "scope": "openid accounts", "state": "s", "nonce": "n", "code_challenge_method": "S256",
		"code_challenge": base64.RawURLEncoding.EncodeToString(verifier[:]), "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(), "jti": uuid.NewString()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := rc.Push(ctx, o.URL+"/oauth2/par", clientID, object); err != nil || r.Status != http.StatusCreated {
		t.Fatalf("PAR: %v %+v", err, r)
	}
	_, _ = rc.Push(ctx, o.URL+"/oauth2/par", clientID, "")
	_, _ = thief.Push(ctx, o.URL+"/oauth2/par", clientID, object)

	// Token: the code, a refresh, client_credentials (200); an unknown grant
	// (400); another certificate (401).
	tokens, err := rc.ExchangeCode(ctx, o.URL+"/oauth2/token", clientID, ar.RedirectURI, flow)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := rc.Refresh(ctx, o.URL+"/oauth2/token", clientID, tokens.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	cc, _, err := rc.Token(ctx, o.URL+"/oauth2/token", clientID, "accounts")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = rc.HTTP.PostForm(o.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {clientID}})
	_, _, _ = thief.Token(ctx, o.URL+"/oauth2/token", clientID, "accounts")

	// Userinfo: GET and POST over the bound certificate (200), over another
	// (401), with no token (401).
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, hc := range []*http.Client{rc.HTTP, thief.HTTP} {
			req, _ := http.NewRequest(method, o.URL+"/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+fresh.AccessToken)
			if _, err := hc.Do(req); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := rc.HTTP.Get(o.URL + "/userinfo"); err != nil {
		t.Fatal(err)
	}

	// Introspection and its check, by a recorded resource server.
	adminRec := &testenv.Recorder{RT: http.DefaultTransport}
	admin := &http.Client{Transport: adminRec}
	introspectAs := func(bearer, form string) {
		req, _ := http.NewRequest(http.MethodPost, o.AdminURL+"/oauth2/introspect", strings.NewReader(form))
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if _, err := admin.Do(req); err != nil {
			t.Fatal(err)
		}
	}
	introspectAs(introspectionToken, url.Values{"token": {cc}}.Encode())
	introspectAs(introspectionToken, "")
	introspectAs("not-a-resource-server-token", url.Values{"token": {cc}}.Encode())
	mine, _ := tpp.Transport()
	for _, tc := range []struct {
		caller string
		cert   *sandbox.Leaf
	}{{introspectionToken, mine}, {introspectionToken, theirs}, {"wrong", mine}} {
		req, _ := http.NewRequest(http.MethodGet, o.AdminURL+"/oauth2/introspect/check", nil)
		req.Header.Set("Proxy-Authorization", "Bearer "+tc.caller)
		req.Header.Set("Authorization", "Bearer "+cc)
		req.Header.Set("X-SSL-Client-Cert", url.QueryEscape(string(tc.cert.CertPEM)))
		if _, err := admin.Do(req); err != nil {
			t.Fatal(err)
		}
	}

	// Revocation: revoked (200), no token (400), another certificate (401).
	for _, tc := range []struct {
		hc   *http.Client
		form url.Values
	}{
		{rc.HTTP, url.Values{"client_id": {clientID}, "token": {cc}}},
		{rc.HTTP, url.Values{"client_id": {clientID}}},
		{thief.HTTP, url.Values{"client_id": {clientID}, "token": {cc}}},
	} {
		if _, err := tc.hc.PostForm(o.URL+"/oauth2/revoke", tc.form); err != nil {
			t.Fatal(err)
		}
	}

	all := append(append(rec.All(), thiefRec.All()...), adminRec.All()...)
	rep, err := testenv.CheckOpenAPI(ctx, plugin.OpenAPI, all)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range rep.Errors {
		t.Error(err)
	}
	for _, route := range []string{"POST /oauth2/par", "POST /oauth2/token", "GET /userinfo", "POST /userinfo", "POST /oauth2/revoke",
		"POST /oauth2/introspect", "GET /oauth2/introspect/check"} {
		if !rep.Routes[route] {
			t.Errorf("the tour did not reach %s", route)
		}
	}
	for _, s := range []int{200, 201, 204, 400, 401} {
		if !rep.Statuses[s] {
			t.Errorf("the tour produced no %d answer to validate", s)
		}
	}
}
