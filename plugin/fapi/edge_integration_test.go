package fapi_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin"
	"github.com/obdcr/obdcr/plugin/fapi"
	"github.com/obdcr/obdcr/policy"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "obdcr-edge-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env, err = testenv.StartEdge(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration environment:", err)
		os.Exit(1)
	}
	code := m.Run()
	env.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startEdge runs an obdcr with the edge on; change edits its environment.
func startEdge(t *testing.T, change func(map[string]string)) *testenv.Obdcr {
	t.Helper()
	return startEdgeFor(t, plugin.Jurisdictions(), change)
}

// startEdgeFor is startEdge with the jurisdictions of a build (a test-only one added).
func startEdgeFor(t testing.TB, js []policy.Jurisdiction, change func(map[string]string)) *testenv.Obdcr {
	t.Helper()
	environ, err := env.EdgeEnviron()
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(environ)
	}
	return startObdcrFor(t, js, environ)
}

// startObdcr runs an obdcr with environ, stopped when the test ends.
func startObdcr(t *testing.T, environ map[string]string) *testenv.Obdcr {
	t.Helper()
	return startObdcrFor(t, plugin.Jurisdictions(), environ)
}

// startIn is startObdcr in the environment e.
func startIn(t *testing.T, e *testenv.Env, environ map[string]string) *testenv.Obdcr {
	t.Helper()
	return startObdcrIn(t, e, plugin.Jurisdictions(), environ)
}

// startObdcrFor is startObdcr for the jurisdictions js.
func startObdcrFor(t testing.TB, js []policy.Jurisdiction, environ map[string]string) *testenv.Obdcr {
	t.Helper()
	return startObdcrIn(t, env, js, environ)
}

func startObdcrIn(t testing.TB, env *testenv.Env, js []policy.Jurisdiction, environ map[string]string) *testenv.Obdcr {
	t.Helper()
	cfg, err := plugin.LoadConfigFor(environ, js)
	if err != nil {
		t.Fatal(err)
	}
	o, err := env.StartObdcr(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Stop() })
	return o
}

// edgeDoc is the discovery document as the edge serves it, and its JWKS.
type edgeDoc struct {
	Issuer        string `json:"issuer"`
	Authorization string `json:"authorization_endpoint"`
	PAR           string `json:"pushed_authorization_request_endpoint"`
	Token         string `json:"token_endpoint"`
	JWKSURI       string `json:"jwks_uri"`
	keys          jwk.Set
	raw           map[string]any
}

func readDoc(t *testing.T) *edgeDoc { t.Helper(); return readDocOf(t, env) }

// readDocOf is readDoc in the environment e.
func readDocOf(t *testing.T, env *testenv.Env) *edgeDoc {
	t.Helper()
	roots := &tls.Config{RootCAs: env.Sandbox.PKI().Pool(), MinVersion: tls.VersionTLS12}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: roots}}
	res, err := hc.Get(env.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var d edgeDoc
	if err := json.NewDecoder(res.Body).Decode(&d.raw); err != nil || res.StatusCode != 200 {
		t.Fatalf("discovery: %d %v", res.StatusCode, err)
	}
	b, _ := json.Marshal(d.raw)
	_ = json.Unmarshal(b, &d)
	d.keys, err = jwk.Fetch(context.Background(), d.JWKSURI, jwk.WithHTTPClient(hc))
	if err != nil {
		t.Fatalf("the published JWKS: %v", err)
	}
	return &d
}

func register(t *testing.T, o *testenv.Obdcr, profile string) (*sandbox.TPP, *sandbox.Client, string) {
	t.Helper()
	return registerIn(t, env, o, profile)
}

// registerIn is register in the environment e.
func registerIn(t *testing.T, env *testenv.Env, o *testenv.Obdcr, profile string) (*sandbox.TPP, *sandbox.Client, string) {
	t.Helper()
	return registerWith(t, env, o, profile, nil)
}

// registerWith is registerIn with the request's claims changed by mutate.
func registerWith(t *testing.T, env *testenv.Env, o *testenv.Obdcr, profile string, mutate func(map[string]any)) (*sandbox.TPP, *sandbox.Client, string) {
	t.Helper()
	tpp, err := env.Sandbox.AddTPP(profile, fmt.Sprintf("E%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sandbox.NewClient(tpp, env.Sandbox.PKI().Pool())
	if err != nil {
		t.Fatal(err)
	}
	// As a TPP does, it registers the JARM alg the bank publishes (the edge key's, when the edge is on).
	if d, err := c.Discovery(context.Background(), o.URL); err == nil {
		if algs, _ := d.JSON()["authorization_signing_alg_values_supported"].([]any); len(algs) > 0 {
			tpp.JARMAlg, _ = algs[0].(string)
		}
	}
	now := time.Now()
	ssa, err := env.Sandbox.Authority(profile).SSA(tpp, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := tpp.Request(ssa, env.Issuer(), now, mutate)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Register(context.Background(), o.URL, req)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("register: %v %d %s", err, res.Status, res.Body)
	}
	return tpp, c, res.JSON()["client_id"].(string)
}

// jwsAlg is a compact JWS's header alg.
func jwsAlg(t *testing.T, token string) string {
	t.Helper()
	m, err := jws.Parse([]byte(token))
	if err != nil || len(m.Signatures()) != 1 {
		t.Fatalf("not a JWS: %v", err)
	}
	return m.Signatures()[0].ProtectedHeaders().Algorithm().String()
}

func halfHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// TestEdgeFlows: a UK client (code id_token, request object by value) and an AU
// client (PAR, code, PKCE, JARM) run their flows through the edge on the real
// Hydra and the sandbox's login and consent, and redeem at the edge's token
// endpoint; the answers carry iss, the JARM response and the hybrid ID token
// verify with the published JWKS, and the client cannot go around the edge.
func TestEdgeFlows(t *testing.T) {
	o := startEdge(t, nil)
	doc := readDoc(t)
	ctx := context.Background()
	if doc.Issuer != env.Issuer() || doc.PAR != o.URL+"/oauth2/par" || doc.Token != o.URL+"/oauth2/token" {
		t.Fatalf("discovery: issuer %s, PAR %s, token %s", doc.Issuer, doc.PAR, doc.Token)
	}
	for _, tc := range []struct {
		profile, responseType, scope, ccScope string
		par, post                             bool
		mode                                  string
	}{
		{sandbox.UK, "code id_token", "openid accounts offline_access", "accounts", false, false, ""},
		{sandbox.AU, "code", "openid bank:accounts.basic:read offline_access", "cdr:registration", true, false, "jwt"},
		// The browser POSTs the authorization request (OIDC Core §3.1.2.1),
		// with only openid as the outer scope (OIDC Core §6.1).
		{sandbox.UK, "code id_token", "openid accounts offline_access", "accounts", false, true, ""},
	} {
		name := tc.profile
		if tc.post {
			name += " by POST"
		}
		t.Run(name, func(t *testing.T) {
			tpp, c, clientID := register(t, o, tc.profile)
			admin, _ := hydra.NewAdmin(env.Hydra.AdminURL, nil)
			hc, err := admin.Get(ctx, clientID)
			if err != nil || len(hc.RedirectURIs) != 1 || hc.RedirectURIs[0] != doc.Issuer+fapi.CallbackPath || hc.JWKSURI != "" || len(hc.JWKS) == 0 {
				t.Fatalf("the Hydra client is not the edge's: redirect_uris %v, jwks_uri %q, jwks %s (%v)", hc.RedirectURIs, hc.JWKSURI, hc.JWKS, err)
			}
			ar := sandbox.AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: clientID,
				RedirectURI: tpp.RedirectURIs[0], ResponseType: tc.responseType, Scope: tc.scope, ResponseMode: tc.mode, Post: tc.post}
			if tc.par {
				ar.PARURL = doc.PAR
			}
			if tc.post {
				ar.Query = func(q url.Values) { q.Set("scope", "openid") }
			}
			a, err := c.Authorize(ctx, ar, env.Sandbox.PKI().Pool())
			if err != nil {
				t.Fatal(err)
			}
			if a.Pushed != nil && a.Pushed.Status != http.StatusCreated {
				t.Fatalf("PAR: %d %s", a.Pushed.Status, a.Pushed.Body)
			}
			if tc.mode == "jwt" {
				if a.Response == "" || a.Code != "" {
					t.Fatalf("no JARM response, or a code outside it: %+v", a.Params)
				}
				p, err := sandbox.OpenJARM(a.Response, doc.keys, doc.Issuer, clientID)
				if err != nil {
					t.Fatalf("the JARM response does not verify with the published JWKS: %v", err)
				}
				a.Code, a.State, a.Error = p.Get("code"), p.Get("state"), p.Get("error")
			} else if a.Params.Get("iss") != doc.Issuer {
				t.Errorf("iss %q in the answer, want %s (RFC 9207)", a.Params.Get("iss"), doc.Issuer)
			}
			if a.Error != "" || a.Code == "" || a.State != a.SentState {
				t.Fatalf("authorization: %+v", a)
			}
			t.Logf("answer at the redirect URI: %v", keys(a.Params))
			if tc.responseType == "code id_token" {
				tok, err := jwt.Parse([]byte(a.IDToken), jwt.WithKeySet(doc.keys), jwt.WithIssuer(doc.Issuer), jwt.WithAudience(clientID))
				if err != nil {
					t.Fatalf("the front-channel ID token does not verify with the published JWKS: %v", err)
				}
				for name, want := range map[string]string{"s_hash": halfHash(a.SentState), "c_hash": halfHash(a.Code), "nonce": a.Nonce} {
					if got, _ := tok.Get(name); got != want {
						t.Errorf("ID token %s = %v, want %s", name, got, want)
					}
				}
				// Signed in the alg the client registered (Hydra's, whatever
				// the edge key's), as its token endpoint's ID token is
				// (OIDC Registration §2); the test's edge key is ES256.
				algs, _ := doc.raw["id_token_signing_alg_values_supported"].([]any)
				if got := jwsAlg(t, a.IDToken); len(algs) != 1 || got != algs[0] {
					t.Errorf("the front-channel ID token is signed %s; discovery and the registration say %v", got, algs)
				}
			}
			tokens, err := c.ExchangeCode(ctx, doc.Token, clientID, ar.RedirectURI, a)
			if err != nil {
				t.Fatalf("redeeming the code at the edge: %v", err)
			}
			if tc.responseType == "code id_token" && jwsAlg(t, tokens.IDToken) != jwsAlg(t, a.IDToken) {
				t.Errorf("ID tokens in two algs: %s at the token endpoint, %s in the front channel", jwsAlg(t, tokens.IDToken), jwsAlg(t, a.IDToken))
			}
			refreshed, err := c.Refresh(ctx, doc.Token, clientID, tokens.RefreshToken)
			if err != nil {
				t.Fatalf("refresh at the edge: %v", err)
			}
			// A replayed code reaches Hydra, which refuses it and revokes what
			// the code gave (RFC 6749 §4.1.2).
			if _, err := c.ExchangeCode(ctx, doc.Token, clientID, ar.RedirectURI, a); err == nil {
				t.Error("a code was redeemed twice")
			}
			if _, err := c.Refresh(ctx, doc.Token, clientID, refreshed.RefreshToken); err == nil {
				t.Error("the code was replayed, yet its refresh token still works")
			}
			if _, _, err := c.Token(ctx, doc.Token, clientID, tc.ccScope); err != nil {
				t.Errorf("client_credentials at the edge: %v", err)
			}
			// Around the edge: the TPP's own assertion at Hydra's token endpoint.
			now := time.Now()
			assertion, _ := tpp.Signing.Sign(map[string]any{"iss": clientID, "sub": clientID, "aud": doc.Issuer + "/oauth2/token",
				"jti": uuid.NewString(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}, nil)
			res, err := http.PostForm(env.Hydra.TokenURL(), url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			// Hydra refuses the assertion: signed with an alg other than obdcr's
			// assertion key's (401), or with a key it does not hold (400).
			if res.StatusCode == http.StatusOK || !strings.Contains(string(body), "could not be found") && !strings.Contains(string(body), "enforces signing algorithm") {
				t.Errorf("the client's own key at Hydra's token endpoint: HTTP %d: %s", res.StatusCode, body)
			}
		})
	}
}
