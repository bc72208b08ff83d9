package fapi_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/obdcr/obdcr/deploy/sandbox"
)

// TestEdgeRefusals: each rule of the authorization endpoint refuses with its
// error where it must go: a 400 page when the client or redirect URI cannot be
// trusted, otherwise a redirect to the client with error, state and iss, inside
// a JARM response when the client asked for one.
func TestEdgeRefusals(t *testing.T) {
	o := startEdge(t, nil)
	doc := readDoc(t)
	ctx := context.Background()
	ukTPP, uk, ukID := register(t, o, sandbox.UK)
	auTPP, au, auID := register(t, o, sandbox.AU)
	ukReq := sandbox.AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: ukID,
		RedirectURI: ukTPP.RedirectURIs[0], ResponseType: "code id_token", Scope: "openid accounts"}
	auReq := sandbox.AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: auID, PARURL: doc.PAR,
		RedirectURI: auTPP.RedirectURIs[0], ResponseType: "code", Scope: "openid bank:accounts.basic:read", ResponseMode: "jwt"}
	claims := func(f func(map[string]any)) func(*sandbox.AuthorizeRequest) {
		return func(r *sandbox.AuthorizeRequest) { r.Claims = f }
	}
	now := time.Now()
	tests := []struct {
		name   string
		au     bool
		change func(*sandbox.AuthorizeRequest)
		// page: a 400 page and no redirect; else the error at the redirect URI.
		page bool
		err  string
	}{
		{name: "unknown client", change: func(r *sandbox.AuthorizeRequest) { r.Query = func(q url.Values) { q.Set("client_id", "nobody") } }, page: true},
		{name: "redirect_uri not registered", change: claims(func(m map[string]any) { m["redirect_uri"] = "https://evil.example/cb" }), page: true},
		{name: "no request object", change: func(r *sandbox.AuthorizeRequest) { r.Query = func(q url.Values) { q.Del("request") } }, page: true},
		{name: "alg not registered", change: func(r *sandbox.AuthorizeRequest) { r.RequestAlg = "RS256" }, err: "invalid_request_object"},
		{name: "aud not the issuer", change: claims(func(m map[string]any) { m["aud"] = "https://elsewhere.example" }), err: "invalid_request_object"},
		{name: "iss not the client", change: claims(func(m map[string]any) { m["iss"] = "someone-else" }), err: "invalid_request_object"},
		{name: "no exp", change: claims(func(m map[string]any) { delete(m, "exp") }), err: "invalid_request_object"},
		{name: "no nbf", change: claims(func(m map[string]any) { delete(m, "nbf") }), err: "invalid_request_object"},
		{name: "exp over 60 minutes after nbf", change: claims(func(m map[string]any) {
			m["nbf"], m["exp"] = now.Add(-time.Minute).Unix(), now.Add(61*time.Minute).Unix()
		}), err: "invalid_request_object"},
		{name: "nbf in the future", change: claims(func(m map[string]any) { m["nbf"] = now.Add(5 * time.Minute).Unix() }), err: "invalid_request_object"},
		{name: "expired", change: claims(func(m map[string]any) { m["exp"] = now.Add(-time.Minute).Unix() }), err: "invalid_request_object"},
		{name: "no openid", change: claims(func(m map[string]any) { m["scope"] = "accounts" }), err: "invalid_scope"},
		{name: "hybrid without nonce", change: claims(func(m map[string]any) { delete(m, "nonce") }), err: "invalid_request"},
		{name: "response_type not registered", change: claims(func(m map[string]any) { m["response_type"] = "code token" }), err: "unsupported_response_type"},
		{name: "outer response_type disagrees", change: func(r *sandbox.AuthorizeRequest) {
			r.Query = func(q url.Values) { q.Set("response_type", "code") }
		}, err: "invalid_request"},
		{name: "outer scope disagrees", change: func(r *sandbox.AuthorizeRequest) {
			r.Query = func(q url.Values) { q.Set("scope", "openid payments") }
		}, err: "invalid_request"},
		{name: "AU by value, PAR required", au: true, change: func(r *sandbox.AuthorizeRequest) { r.PARURL = "" }, err: "invalid_request"},
		{name: "AU unknown request_uri", au: true, change: func(r *sandbox.AuthorizeRequest) {
			r.Query = func(q url.Values) { q.Set("request_uri", "urn:ietf:params:oauth:request_uri:forged") }
		}, page: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, c, clientID := ukReq, uk, ukID
			if tc.au {
				r, c, clientID = auReq, au, auID
			}
			tc.change(&r)
			a, err := c.Authorize(ctx, r, env.Sandbox.PKI().Pool())
			if err != nil {
				t.Fatal(err)
			}
			if tc.page {
				if a.PageStatus != http.StatusBadRequest || a.Params != nil {
					t.Fatalf("want a 400 page and no redirect; got page %d, params %v", a.PageStatus, a.Params)
				}
				return
			}
			p := a.Params
			if r.ResponseMode == "jwt" {
				if a.Response == "" || p.Get("error") != "" {
					t.Fatalf("want the error inside a JARM response; got %v", p)
				}
				if p, err = sandbox.OpenJARM(a.Response, doc.keys, doc.Issuer, clientID); err != nil {
					t.Fatalf("the JARM error does not verify: %v", err)
				}
			} else if p.Get("iss") != doc.Issuer {
				t.Errorf("iss %q, want %s", p.Get("iss"), doc.Issuer)
			}
			if p.Get("error") != tc.err || p.Get("state") != a.SentState || p.Get("error_description") == "" || p.Get("code") != "" {
				t.Fatalf("want %s with state and a description, no code; got %v", tc.err, p)
			}
			t.Logf("%s: %s", p.Get("error"), p.Get("error_description"))
		})
	}
}

// TestUKCodeNeedsJARM: a UK client that registered response_type code, and no
// JARM alg, still gets code only in a JWT response mode (FAPI 1.0 Advanced
// §5.2.2-2): a plain code by fragment is refused, a JARM one answered.
func TestUKCodeNeedsJARM(t *testing.T) {
	o := startEdge(t, nil)
	doc := readDoc(t)
	ctx := context.Background()
	tpp, c, clientID := registerWith(t, env, o, sandbox.UK, func(m map[string]any) {
		m["response_types"] = []string{"code id_token", "code"}
		delete(m, "authorization_signed_response_alg")
	})
	for _, tc := range []struct{ mode, err string }{{"fragment", "invalid_request"}, {"jwt", ""}} {
		a, err := c.Authorize(ctx, sandbox.AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: clientID,
			RedirectURI: tpp.RedirectURIs[0], ResponseType: "code", Scope: "openid accounts", ResponseMode: tc.mode}, env.Sandbox.PKI().Pool())
		if err != nil {
			t.Fatal(err)
		}
		p := a.Params
		if a.Response != "" {
			if p, err = sandbox.OpenJARM(a.Response, doc.keys, doc.Issuer, clientID); err != nil {
				t.Fatalf("%s: the JARM response does not verify: %v", tc.mode, err)
			}
		}
		if p.Get("error") != tc.err || (tc.err == "") != (p.Get("code") != "") {
			t.Errorf("response_type code by %s: %v; want error %q", tc.mode, p, tc.err)
		}
	}
}

// TestPARRefusals: PAR answers JSON errors, the edge takes one client
// authentication method a request, and a request_uri is single-use
// and belongs to the client it was pushed by.
func TestPARRefusals(t *testing.T) {
	o := startEdge(t, nil)
	doc := readDoc(t)
	ctx := context.Background()
	auTPP, au, auID := register(t, o, sandbox.AU)
	_, other, otherID := register(t, o, sandbox.AU)
	base := sandbox.AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: auID, PARURL: doc.PAR,
		RedirectURI: auTPP.RedirectURIs[0], ResponseType: "code", Scope: "openid bank:accounts.basic:read", ResponseMode: "jwt"}

	t.Run("without PKCE", func(t *testing.T) {
		r := base
		r.Claims = func(m map[string]any) { delete(m, "code_challenge"); delete(m, "code_challenge_method") }
		a, err := au.Authorize(ctx, r, env.Sandbox.PKI().Pool())
		if err != nil {
			t.Fatal(err)
		}
		if a.Pushed.Status != http.StatusBadRequest || a.Pushed.JSON()["error"] != "invalid_request" {
			t.Fatalf("PAR without PKCE: %d %s", a.Pushed.Status, a.Pushed.Body)
		}
	})
	t.Run("another client's assertion", func(t *testing.T) {
		res, err := other.Push(ctx, doc.PAR, auID, "x.y.z")
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusUnauthorized || res.JSON()["error"] != "invalid_client" {
			t.Fatalf("a client signing as another: %d %s", res.Status, res.Body)
		}
	})
	t.Run("two authentication methods", func(t *testing.T) {
		for name, second := range map[string]func(*http.Request, url.Values){
			"client_secret": func(_ *http.Request, f url.Values) { f.Set("client_secret", "s") },
			"HTTP Basic":    func(r *http.Request, _ url.Values) { r.SetBasicAuth(auID, "s") },
		} {
			now := time.Now()
			assertion, _ := auTPP.Signing.Sign(map[string]any{"iss": auID, "sub": auID, "aud": doc.Issuer, "jti": uuid.NewString(),
				"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}, nil)
			form := url.Values{"client_id": {auID}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion": {assertion}, "grant_type": {"client_credentials"}, "scope": {"cdr:registration"}}
			req, _ := http.NewRequest(http.MethodPost, doc.Token, nil)
			second(req, form)
			req.Body = io.NopCloser(strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			res, err := au.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			// RFC 6749 §2.3: one method per request; §5.2: invalid_request.
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"invalid_request"`) {
				t.Errorf("an assertion and %s: %d %s", name, res.StatusCode, body)
			}
		}
	})
	t.Run("replayed and foreign request_uri", func(t *testing.T) {
		var uri string
		r := base
		r.Query = func(q url.Values) { uri = q.Get("request_uri") }
		a, err := au.Authorize(ctx, r, env.Sandbox.PKI().Pool())
		if err != nil || a.Response == "" {
			t.Fatalf("the first use: %v %+v", err, a)
		}
		again := sandbox.AuthorizeRequest{AuthURL: doc.Authorization, ClientID: auID, RedirectURI: base.RedirectURI,
			Query: func(q url.Values) { q.Del("request"); q.Set("request_uri", uri) }}
		b, err := au.Authorize(ctx, again, env.Sandbox.PKI().Pool())
		if err != nil || b.PageStatus != http.StatusBadRequest {
			t.Fatalf("a request_uri used twice: %v %+v", err, b)
		}
		// Pushed by one client, presented with another's client_id.
		var fresh string
		r.Query = func(q url.Values) { fresh = q.Get("request_uri"); q.Set("client_id", otherID) }
		c, err := au.Authorize(ctx, r, env.Sandbox.PKI().Pool())
		if err != nil || c.PageStatus != http.StatusBadRequest || fresh == "" {
			t.Fatalf("a request_uri under another client_id: %v %+v", err, c)
		}
	})
}
