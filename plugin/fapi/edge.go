// Package fapi is the FAPI edge's HTTP side: the browser-facing listener (the
// issuer's public face: discovery, the merged JWKS, the authorization endpoint,
// the callback from Hydra, and Hydra's other public paths proxied unchanged)
// and the PAR and token endpoints on the TPP listener. What is decided lives in
// policy/fapi; this package reads requests and writes answers.
package fapi

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

// CallbackPath is where Hydra sends the browser back to the edge.
const CallbackPath = "/oauth2/edge/callback"

// Paths on the TPP listener (mTLS).
const (
	PARPath   = "/oauth2/par"
	TokenPath = "/oauth2/token"
)

// Config is what the edge is built from.
type Config struct {
	// Issuer is OBDCR_EDGE_PUBLIC_URL, also Hydra's URLS_SELF_ISSUER.
	Issuer string
	// TPPURL is OBDCR_PUBLIC_URL: the mTLS endpoints' base.
	TPPURL      string
	HydraPublic *hydra.Public
	// ProxyTransport reaches Hydra's public API for proxied browser requests.
	ProxyTransport http.RoundTripper
	// Key signs JARM responses and hybrid ID tokens (OBDCR_EDGE_SIGNING_KEY_FILE).
	Key func() *pf.SigningKey
	// Published are the edge keys the JWKS lists: Key's and those it replaced
	// lately (nil: Key's alone).
	Published func() []jwk.Key
	// IDTokenKeys sign hybrid ID tokens in Hydra's alg when Key is in another
	// (one per alg, shared by every replica); nil: Key signs them.
	IDTokenKeys []*pf.SigningKey
	// AssertionKey signs obdcr's client assertions to Hydra and is the only key
	// edge registrations' Hydra clients trust; it never changes, so rotating Key
	// touches no Hydra client (nil: Key, as before).
	AssertionKey *pf.SigningKey
	Clients      policy.ClientStore
	State        policy.PolicyState
	// Profile is the registrar's lookup: a client's rules come from its profile.
	Profile func(name string) (*policy.Profile, bool)
	Keys    policy.TrustStore
	Replay  policy.ReplayCache
	Handles pf.HandleStore
	Now     func() time.Time
	// ClientCacheTTL is how long a registration read is kept
	// (OBDCR_EDGE_CLIENT_CACHE_TTL; 0: read at every request).
	ClientCacheTTL time.Duration
}

// Edge is the FAPI edge.
type Edge struct {
	cfg      Config
	clients  pf.Clients
	cache    *clientCache
	verifier *pf.Verifier
	pushed   *pf.Pushed
	// auth and tokens are small interfaces: certificate-bound tokens and
	// tls_client_auth come as other implementations.
	auth   pf.Authenticator
	tokens TokenIssuer
	proxy  *httputil.ReverseProxy
	// cert and bindings are set by Certificates.
	cert     func(echo.Context) (*x509.Certificate, error)
	bindings *pf.Bindings
	// inflight is set by JWTBinding (tokenhook.go).
	inflight *pf.InFlight
}

// New builds the edge.
func New(cfg Config) (*Edge, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Issuer = strings.TrimRight(cfg.Issuer, "/")
	cfg.TPPURL = strings.TrimRight(cfg.TPPURL, "/")
	target, err := url.Parse(cfg.HydraPublic.URL)
	if err != nil || target.Host == "" {
		return nil, errors.New("HYDRA_PUBLIC_URL: not a URL")
	}
	e := &Edge{cfg: cfg}
	e.cache = newClientCache(registry{clients: cfg.Clients, state: cfg.State, profile: cfg.Profile}, cfg.ClientCacheTTL, cfg.Now)
	e.clients = e.cache
	e.verifier = &pf.Verifier{Issuer: cfg.Issuer, Keys: cfg.Keys, Replay: cfg.Replay, Now: cfg.Now}
	e.pushed = &pf.Pushed{Store: cfg.Handles, Now: cfg.Now}
	e.auth = &pf.PrivateKeyJWT{Verifier: e.verifier, Clients: e.clients, Audiences: []string{
		cfg.Issuer, cfg.Issuer + "/", cfg.Issuer + PARPath, cfg.Issuer + TokenPath, cfg.TPPURL + PARPath, cfg.TPPURL + TokenPath}}
	e.tokens = hydraTokens{public: cfg.HydraPublic, pushed: e.pushed, issuer: cfg.Issuer, key: e.assertionKey, now: cfg.Now}
	e.proxy = newProxy(target, cfg.ProxyTransport)
	return e, nil
}

// ShapeClients wraps the registrar's Hydra client store so that edge
// registrations reach Hydra only through the edge.
func (e *Edge) ShapeClients(cs policy.ClientStore) policy.ClientStore {
	return shapedClients{ClientStore: cs, callback: e.cfg.Issuer + CallbackPath, key: e.assertionKey, forget: e.cache.forget}
}

// assertionKey is the key Hydra trusts for edge registrations.
func (e *Edge) assertionKey() *pf.SigningKey {
	if e.cfg.AssertionKey != nil {
		return e.cfg.AssertionKey
	}
	return e.cfg.Key()
}

// TPPRoutes adds PAR and the token endpoint to the TPP listener.
func (e *Edge) TPPRoutes(g *echo.Echo) {
	g.POST(PARPath, e.par)
	g.POST(TokenPath, e.token)
	g.GET(UserinfoPath, e.userinfo)
	g.POST(UserinfoPath, e.userinfo)
	g.POST(RevokePath, e.revoke)
}

// Routes serves the edge listener; discovery is the TPP listener's handler.
// Hydra's other public paths pass unchanged: its pages and logout for the
// browser, and its token endpoint for registrations made before the edge was
// on (edge registrations' Hydra clients trust only obdcr's key, so the edge's
// clients cannot use it; obdcr doctor moves the others).
func (e *Edge) Routes(g *echo.Echo, discovery echo.HandlerFunc) {
	g.GET("/.well-known/openid-configuration", discovery)
	g.GET("/.well-known/jwks.json", e.jwks)
	// OIDC Core §3.1.2.1: the authorization endpoint takes GET and POST.
	g.GET("/oauth2/auth", e.authorize)
	g.POST("/oauth2/auth", e.authorize)
	g.GET(CallbackPath, e.callback)
	g.POST(CallbackPath, e.callback)
	g.Any(UserinfoPath, e.issuerUserinfo)
	g.Any("/*", e.proxied)
}

func (e *Edge) proxied(c echo.Context) error {
	e.proxy.ServeHTTP(c.Response(), c.Request())
	return nil
}

// issuerUserinfo is Hydra's userinfo at the issuer, where no certificate is
// asked for: a token the edge bound to a certificate is refused here (RFC 8705
// §3: a stolen one must not do), and is presented at the TPP listener's
// userinfo instead. Tokens the edge did not issue (a registration from before
// the edge) pass as before. The token must come in the Authorization header,
// the one place this check reads it.
func (e *Edge) issuerUserinfo(c echo.Context) error {
	if e.bindings == nil {
		return e.proxied(c)
	}
	token := BearerToken(c.Request())
	if token == "" {
		return noBearer(c)
	}
	_, issued, err := e.bindings.Bound(c.Request().Context(), token)
	if err != nil {
		return jsonError(c, bindingsUnavailable())
	}
	if issued {
		return invalidToken(c, "the access token is certificate-bound: present it at "+e.cfg.TPPURL+UserinfoPath+" over mutual TLS (mtls_endpoint_aliases)")
	}
	return e.proxied(c)
}

// Overlay lays the edge's members over the discovery document.
func (e *Edge) Overlay(doc hydra.Document, requirePAR bool) {
	par, token := e.cfg.TPPURL+PARPath, e.cfg.TPPURL+TokenPath
	doc.Set("issuer", e.cfg.Issuer)
	doc.Set("authorization_endpoint", e.cfg.Issuer+"/oauth2/auth")
	doc.Set("jwks_uri", e.cfg.Issuer+"/.well-known/jwks.json")
	doc.Set("pushed_authorization_request_endpoint", par)
	doc.Set("token_endpoint", token)
	aliases := map[string]any{}
	if raw, ok := doc["mtls_endpoint_aliases"]; ok {
		_ = json.Unmarshal(raw, &aliases)
	}
	aliases["pushed_authorization_request_endpoint"] = par
	aliases["token_endpoint"] = token
	if e.bindings != nil {
		userinfo, revoke := e.cfg.TPPURL+UserinfoPath, e.cfg.TPPURL+RevokePath
		doc.Set("userinfo_endpoint", userinfo)
		doc.Set("revocation_endpoint", revoke)
		aliases["userinfo_endpoint"], aliases["revocation_endpoint"] = userinfo, revoke
		doc.Set("tls_client_certificate_bound_access_tokens", true)
	}
	doc.Set("mtls_endpoint_aliases", aliases)
	doc.Set("require_pushed_authorization_requests", requirePAR)
	doc.Set("request_parameter_supported", true)
	doc.Set("request_uri_parameter_supported", false)
	doc.Set("authorization_signing_alg_values_supported", []string{e.cfg.Key().Alg})
	doc.Set("code_challenge_methods_supported", []string{"S256"})
	doc.Set("authorization_response_iss_parameter_supported", true)
}

// ResponseModes lays the response modes the profiles allow over the document.
func ResponseModes(doc hydra.Document, modes []string) {
	doc.Set("response_modes_supported", modes)
}

// jwks is Hydra's keys and the edge's, so that clients verify ID tokens (from
// Hydra's token endpoint) and JARM and hybrid ID tokens (the edge's) alike.
func (e *Edge) jwks(c echo.Context) error {
	set, err := e.cfg.HydraPublic.Keys(c.Request().Context())
	if err != nil {
		return jsonError(c, &pf.Error{Code: pf.TemporarilyUnavailable, Description: "Hydra's keys cannot be read now; try again", Status: 503})
	}
	merged := jwk.NewSet()
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		_ = merged.AddKey(k)
	}
	if e.cfg.Published == nil {
		_ = merged.AddKey(e.cfg.Key().Public)
	} else {
		for _, k := range e.cfg.Published() {
			_ = merged.AddKey(k)
		}
	}
	// The ID-token keys of the algs the edge key is not in: one of them signs
	// the hybrid ID tokens whenever Hydra's alg is not the edge key's.
	for _, k := range e.cfg.IDTokenKeys {
		if k.Alg != e.cfg.Key().Alg {
			_ = merged.AddKey(k.Public)
		}
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=60")
	return c.JSON(http.StatusOK, merged)
}

// jsonError answers an OAuth error as JSON (PAR, token).
func jsonError(c echo.Context, err error) error {
	var fe *pf.Error
	if !errors.As(err, &fe) {
		var down *hydra.UnavailableError
		var fetch *policy.FetchError
		if errors.As(err, &down) || errors.As(err, &fetch) || errors.Is(err, context.DeadlineExceeded) {
			fe = &pf.Error{Code: pf.TemporarilyUnavailable, Description: "a service this server depends on did not answer; try again", Status: 503}
		} else {
			fe = &pf.Error{Code: pf.ServerError, Description: "the request could not be completed", Status: 500}
		}
	}
	if fe.Status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer error="invalid_client"`)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(fe.Status, map[string]string{"error": fe.Code, "error_description": view.OAuthText(fe.Description)})
}
