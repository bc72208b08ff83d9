package fapi

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/view"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

// Paths on the TPP listener (mTLS) for bound tokens.
const (
	UserinfoPath = "/userinfo"
	RevokePath   = "/oauth2/revoke"
)

// Certificates gives the edge the TPP listener's client certificates (from the
// TLS connection or the trusted proxy's header) and the shared store in which
// it keeps which certificate each access token is bound to. Without it the
// edge has neither tls_client_auth nor bound tokens.
func (e *Edge) Certificates(cert func(echo.Context) (*x509.Certificate, error), store pf.BindingStore) {
	e.cert = cert
	e.bindings = &pf.Bindings{Store: store, Now: e.cfg.Now}
	if jwt, ok := e.auth.(*pf.PrivateKeyJWT); ok {
		e.auth = &pf.Methods{JWT: jwt, Clients: e.clients, Keys: e.cfg.Keys}
	}
}

// Bindings are the edge's token bindings, for introspection.
func (e *Edge) Bindings() *pf.Bindings { return e.bindings }

// certificate is the request's verified client certificate, nil when none.
func (e *Edge) certificate(c echo.Context) *x509.Certificate {
	if e.cert == nil {
		return nil
	}
	cert, err := e.cert(c)
	if err != nil {
		return nil
	}
	return cert
}

// boundTokens is the client's profile's bound_tokens setting, read at each
// token request, so that a change applies to the next token.
func (e *Edge) boundTokens(ctx context.Context, client *pf.Client) (bool, error) {
	if e.bindings == nil {
		return false, nil
	}
	st, err := e.cfg.State.State(ctx, client.Profile)
	if err != nil {
		return false, err
	}
	return st.Settings.BoundTokens, nil
}

// bind binds the access token of a successful token response to cert, until
// the token expires; a nil cert records it as issued unbound, so that it is
// told apart from a token the edge never issued.
func (e *Edge) bind(ctx context.Context, status int, body []byte, cert *x509.Certificate) error {
	if status != http.StatusOK || e.bindings == nil {
		return nil
	}
	var t struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		return &pf.Error{Code: pf.ServerError, Description: "the authorization server's token response has no access_token", Status: 502}
	}
	if err := e.bindings.Bind(ctx, t.AccessToken, cert, time.Duration(t.ExpiresIn)*time.Second); err != nil {
		// The token is issued but not bound: it is refused wherever a binding
		// is checked, so the client is told to try again.
		return &pf.Error{Code: pf.TemporarilyUnavailable, Description: "the access token could not be bound to the certificate; try again", Status: 503}
	}
	return nil
}

// BearerToken is the token of Authorization: Bearer, "" when none.
func BearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get(echo.HeaderAuthorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// invalidToken is RFC 6750's 401 for a token not bound to this certificate.
func invalidToken(c echo.Context, desc string) error {
	desc = view.OAuthText(desc) // it goes inside a quoted header value too
	c.Response().Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": desc})
}

// noBearer is userinfo's 401 for a request without Authorization: Bearer,
// the one place the binding checks read a token from.
func noBearer(c echo.Context) error {
	c.Response().Header().Set("WWW-Authenticate", `Bearer realm="userinfo"`)
	return c.JSON(http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "send the access token as Authorization: Bearer"})
}

// bindingsUnavailable: the shared store of bindings failed; the caller may retry.
func bindingsUnavailable() *pf.Error {
	return &pf.Error{Code: pf.TemporarilyUnavailable, Description: "token bindings cannot be read now; try again", Status: 503}
}

// userinfo is GET|POST /userinfo on the TPP listener: proxied to Hydra only
// when the access token is bound to the certificate it is presented with.
func (e *Edge) userinfo(c echo.Context) error {
	token := BearerToken(c.Request())
	if token == "" {
		return noBearer(c)
	}
	if e.bindings == nil {
		return invalidToken(c, "no token is bound here")
	}
	ok, err := e.bindings.Presentable(c.Request().Context(), token, e.certificate(c))
	if err != nil {
		return jsonError(c, bindingsUnavailable())
	}
	if !ok {
		return invalidToken(c, "the access token is not bound to this TLS client certificate (RFC 8705)")
	}
	e.proxy.ServeHTTP(c.Response(), c.Request())
	return nil
}

// revoke is POST /oauth2/revoke (RFC 7009) on the TPP listener: the client
// authenticates as at the token endpoint, Hydra revokes, and the binding goes.
func (e *Edge) revoke(c echo.Context) error {
	ctx := c.Request().Context()
	form, client, err := e.authenticated(c)
	if err != nil {
		return jsonError(c, err)
	}
	token := form.Get("token")
	if token == "" {
		return jsonError(c, &pf.Error{Code: pf.InvalidRequest, Description: "token is required", Status: 400})
	}
	out := url.Values{"token": {token}, "client_id": {client.ID}}
	if h := form.Get("token_type_hint"); h != "" {
		out.Set("token_type_hint", h)
	}
	h, ok := e.tokens.(hydraTokens)
	if !ok || e.bindings == nil {
		return jsonError(c, &pf.Error{Code: pf.ServerError, Description: "revocation is not available", Status: 501})
	}
	if err := h.authenticate(out, client.ID); err != nil {
		return jsonError(c, err)
	}
	status, body, err := h.public.Revoke(ctx, out)
	if err != nil {
		return jsonError(c, err)
	}
	if status == http.StatusOK {
		_ = e.bindings.Unbind(ctx, token) // Hydra refuses it now; the row would expire anyway
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(status, echo.MIMEApplicationJSON, body)
}
