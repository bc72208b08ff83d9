package fapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/obdcr/obdcr/policy"
)

type fakeKeys struct{ set jwk.Set }

func (f fakeKeys) Key(_ context.Context, _ string, kid string) (*policy.PublicKey, error) {
	if k, ok := policy.NewKeySet(f.set).Lookup(kid); ok {
		return k, nil
	}
	return nil, policy.ErrUnknownKey
}
func (f fakeKeys) Set(context.Context, string) (*policy.KeySet, error) {
	return policy.NewKeySet(f.set), nil
}

type fakeClients map[string]*Client

func (f fakeClients) Client(_ context.Context, id string) (*Client, error) {
	if c, ok := f[id]; ok {
		return c, nil
	}
	return nil, ErrUnknownClient
}

const issuer = "https://bank.example"

func fixture(t *testing.T) (*SigningKey, *Verifier, *Client) {
	t.Helper()
	raw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpp, err := NewSigningKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	_ = set.AddKey(tpp.Public)
	c := &Client{ID: "c1", JWKSURI: "https://tpp/jwks", RedirectURIs: []string{"https://tpp/cb"},
		ResponseTypes: []string{"code", "code id_token"}, RequestObjectAlg: "ES256"}
	return tpp, &Verifier{Issuer: issuer, Keys: fakeKeys{set}, Replay: policy.NewMemoryReplay(nil)}, c
}

func goodClaims(now time.Time) map[string]any {
	return map[string]any{"iss": "c1", "aud": issuer, "client_id": "c1", "response_type": "code id_token",
		"redirect_uri": "https://tpp/cb", "scope": "openid accounts", "state": "s", "nonce": "n",
		"code_challenge": "abc", "code_challenge_method": "S256",
		"nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
}

// TestRequestObject: each FAPI 1.0 Advanced §5.2.2 rule refuses with its code,
// and errors about the redirect URI are pages, never redirects.
func TestRequestObject(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		change func(m map[string]any)
		rules  Rules
		par    bool
		code   string
		page   bool
	}{
		{name: "valid", change: func(map[string]any) {}},
		{name: "no aud", change: func(m map[string]any) { delete(m, "aud") }, code: InvalidRequestObject},
		{name: "aud other", change: func(m map[string]any) { m["aud"] = "https://other" }, code: InvalidRequestObject},
		{name: "iss other", change: func(m map[string]any) { m["iss"] = "c2" }, code: InvalidRequestObject},
		{name: "no exp", change: func(m map[string]any) { delete(m, "exp") }, code: InvalidRequestObject},
		{name: "no nbf", change: func(m map[string]any) { delete(m, "nbf") }, code: InvalidRequestObject},
		{name: "expired", change: func(m map[string]any) { m["exp"] = now.Add(-time.Second).Unix() }, code: InvalidRequestObject},
		{name: "nbf future", change: func(m map[string]any) { m["nbf"] = now.Add(time.Minute).Unix() }, code: InvalidRequestObject},
		{name: "over 60 min", change: func(m map[string]any) {
			m["nbf"] = now.Add(-2 * time.Minute).Unix()
			m["exp"] = now.Add(59 * time.Minute).Unix()
		}, code: InvalidRequestObject},
		{name: "redirect not registered", change: func(m map[string]any) { m["redirect_uri"] = "https://tpp/cb/x" }, code: InvalidRequest, page: true},
		{name: "no redirect", change: func(m map[string]any) { delete(m, "redirect_uri") }, code: InvalidRequest, page: true},
		{name: "response_type not registered", change: func(m map[string]any) { m["response_type"] = "code token" }, code: UnsupportedResponseType},
		{name: "no openid", change: func(m map[string]any) { m["scope"] = "accounts" }, code: InvalidScope},
		{name: "hybrid without nonce", change: func(m map[string]any) { delete(m, "nonce") }, code: InvalidRequest},
		{name: "code without nonce", change: func(m map[string]any) { delete(m, "nonce"); m["response_type"] = "code" }},
		{name: "par without pkce", par: true, change: func(m map[string]any) { delete(m, "code_challenge") }, code: InvalidRequest},
		{name: "profile pkce", rules: Rules{PKCERequired: true}, change: func(m map[string]any) { delete(m, "code_challenge") }, code: InvalidRequest},
		{name: "no pkce allowed", change: func(m map[string]any) { delete(m, "code_challenge"); delete(m, "code_challenge_method") }},
		{name: "plain pkce", change: func(m map[string]any) { m["code_challenge_method"] = "plain" }, code: InvalidRequest},
		{name: "query for hybrid", change: func(m map[string]any) { m["response_mode"] = "query" }, code: InvalidRequest},
		{name: "mode not allowed", rules: Rules{ResponseModes: []string{"jwt"}}, change: func(m map[string]any) { m["response_mode"] = "fragment" }, code: InvalidRequest},
		{name: "nested request", change: func(m map[string]any) { m["request_uri"] = "x" }, code: InvalidRequestObject},
		// FAPI 1.0 Advanced §5.2.2-2: code only with a JWT response mode.
		{name: "FAPI 1.0 code by query", rules: Rules{CodeNeedsJARM: true}, change: func(m map[string]any) { m["response_type"] = "code" }, code: InvalidRequest},
		{name: "FAPI 1.0 code by fragment", rules: Rules{CodeNeedsJARM: true}, change: func(m map[string]any) {
			m["response_type"], m["response_mode"] = "code", "fragment"
		}, code: InvalidRequest},
		{name: "FAPI 1.0 code by form_post", rules: Rules{CodeNeedsJARM: true}, change: func(m map[string]any) {
			m["response_type"], m["response_mode"] = "code", "form_post"
		}, code: InvalidRequest},
		{name: "FAPI 1.0 code by JARM", rules: Rules{CodeNeedsJARM: true}, change: func(m map[string]any) {
			m["response_type"], m["response_mode"] = "code", "form_post.jwt"
		}},
		{name: "FAPI 1.0 hybrid by fragment", rules: Rules{CodeNeedsJARM: true}, change: func(m map[string]any) { m["response_mode"] = "fragment" }},
		{name: "FAPI 2.0 code by query", change: func(m map[string]any) { m["response_type"] = "code" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tpp, v, c := fixture(t)
			c.Rules = tc.rules
			m := goodClaims(now)
			tc.change(m)
			raw, err := tpp.Sign(m)
			if err != nil {
				t.Fatal(err)
			}
			r, err := v.RequestObject(context.Background(), c, raw, tc.par)
			var fe *Error
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.code == "":
				if r.ClientID != "c1" || r.RedirectURI != "https://tpp/cb" {
					t.Fatalf("request %+v", r)
				}
			case !errors.As(err, &fe) || fe.Code != tc.code || fe.Page != tc.page:
				t.Fatalf("got %v, want %s (page %v)", err, tc.code, tc.page)
			}
		})
	}
}

// TestRequestObjectSignature: another key, another alg and none are refused.
func TestRequestObjectSignature(t *testing.T) {
	tpp, v, c := fixture(t)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := NewSigningKey(other)
	_ = otherKey.Private.Set(jwk.KeyIDKey, tpp.Public.KeyID()) // claims to be the TPP's key
	raw, _ := otherKey.Sign(goodClaims(time.Now()))
	if _, err := v.RequestObject(context.Background(), c, raw, false); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("a request object signed by another key: %v", err)
	}
	c.RequestObjectAlg = "PS256"
	good, _ := tpp.Sign(goodClaims(time.Now()))
	if _, err := v.RequestObject(context.Background(), c, good, false); err == nil || !strings.Contains(err.Error(), "ES256 is not allowed") {
		t.Fatalf("a request object in an alg the client did not register: %v", err)
	}
}

// TestPrivateKeyJWT: aud may be the issuer or the endpoint; the jti is
// single-use; an assertion is not accepted before its nbf.
func TestPrivateKeyJWT(t *testing.T) {
	tpp, v, c := fixture(t)
	p := &PrivateKeyJWT{Verifier: v, Clients: fakeClients{"c1": c}, Audiences: []string{issuer, issuer + "/oauth2/token"}}
	signed := func(aud, jti string, nbf time.Time) url.Values {
		claims := map[string]any{"iss": "c1", "sub": "c1", "aud": aud, "jti": jti, "exp": time.Now().Add(time.Minute).Unix()}
		if !nbf.IsZero() {
			claims["nbf"] = nbf.Unix()
		}
		a, _ := tpp.Sign(claims)
		return url.Values{"client_assertion_type": {JWTBearer}, "client_assertion": {a}}
	}
	form := func(aud, jti string) url.Values { return signed(aud, jti, time.Time{}) }
	for _, tc := range []struct {
		name string
		f    url.Values
		ok   bool
	}{
		{"issuer", form(issuer, "1"), true},
		{"token url", form(issuer+"/oauth2/token", "2"), true},
		{"replayed", form(issuer, "1"), false},
		{"other aud", form("https://elsewhere", "3"), false},
		{"no type", url.Values{"client_assertion": form(issuer, "4")["client_assertion"]}, false},
		{"nbf now", signed(issuer, "5", time.Now()), true},
		// RFC 7523 §3: not to be accepted before its nbf.
		{"nbf ahead", signed(issuer, "6", time.Now().Add(5*time.Minute)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Authenticate(context.Background(), tc.f, nil)
			var fe *Error
			if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &fe) || fe.Code != InvalidClient || fe.Status != 401)) {
				t.Fatalf("got %v %v", got, err)
			}
		})
	}
}
