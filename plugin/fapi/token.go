package fapi

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/hydra"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

// maxForm bounds a PAR or token request's body.
const maxForm = 64 << 10

// readForm reads an application/x-www-form-urlencoded body, never the query.
func readForm(c echo.Context) (url.Values, error) {
	r := c.Request()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, &pf.Error{Code: pf.InvalidRequest, Description: "the body must be application/x-www-form-urlencoded", Status: 400}
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return nil, &pf.Error{Code: pf.InvalidRequest, Description: "the body is not a form of at most 64 KiB", Status: 400}
	}
	for name, v := range r.PostForm {
		if len(v) > 1 {
			return nil, &pf.Error{Code: pf.InvalidRequest, Description: name + " is repeated", Status: 400}
		}
	}
	return r.PostForm, nil
}

// authenticated reads a PAR or token request's form and says which client
// sent it, by its assertion or its TLS client certificate.
func (e *Edge) authenticated(c echo.Context) (url.Values, *pf.Client, error) {
	form, err := readForm(c)
	if err != nil {
		return nil, nil, err
	}
	// Only private_key_jwt and tls_client_auth authenticate here; a secret or an
	// Authorization header beside them is a second method (RFC 6749 §2.3, §5.2).
	if c.Request().Header.Get(echo.HeaderAuthorization) != "" || form.Has("client_secret") {
		return nil, nil, &pf.Error{Code: pf.InvalidRequest, Status: http.StatusBadRequest,
			Description: "use one client authentication method, private_key_jwt or tls_client_auth: client_secret and HTTP Basic are not accepted (RFC 6749 section 2.3)"}
	}
	client, err := e.auth.Authenticate(c.Request().Context(), form, e.certificate(c))
	return form, client, err
}

// par is POST /oauth2/par (RFC 9126): an authenticated client pushes a signed
// request object and gets a request_uri for it.
func (e *Edge) par(c echo.Context) error {
	ctx := c.Request().Context()
	form, client, err := e.authenticated(c)
	if err != nil {
		return jsonError(c, err)
	}
	switch {
	case form.Get("request_uri") != "":
		return jsonError(c, &pf.Error{Code: pf.InvalidRequest, Description: "request_uri must not be pushed (RFC 9126 §2.1)", Status: 400})
	case form.Get("request") == "":
		return jsonError(c, &pf.Error{Code: pf.InvalidRequest, Description: "request (a request object signed with the client's key) is required", Status: 400})
	}
	r, err := e.verifier.RequestObject(ctx, client, form.Get("request"), true)
	if err != nil {
		return jsonError(c, asJSON(err))
	}
	uri, err := e.pushed.Push(ctx, r)
	if err != nil {
		return jsonError(c, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, map[string]any{"request_uri": uri, "expires_in": int(pf.PARLifetime.Seconds())})
}

// asJSON: an error that would be a page at the authorization endpoint is a
// plain 400 at PAR, where there is no browser.
func asJSON(err error) error {
	if fe, ok := err.(*pf.Error); ok && fe.Page {
		c := *fe
		c.Page = false
		return &c
	}
	return err
}

// TokenIssuer issues tokens for an authenticated client.
type TokenIssuer interface {
	Issue(ctx context.Context, client *pf.Client, form url.Values) (status int, body []byte, err error)
}

// token is POST /oauth2/token on the TPP listener. Every access token it
// issues is bound to the certificate of the request (RFC 8705 §3), whatever
// the grant and the client's authentication: without one, none is issued.
// Only a profile whose bound_tokens setting is false (its limits must allow
// it; no shipped profile's do) gets unbound tokens.
func (e *Edge) token(c echo.Context) error {
	ctx := c.Request().Context()
	cert := e.certificate(c)
	form, client, err := e.authenticated(c)
	if err != nil {
		return jsonError(c, err)
	}
	bound, err := e.boundTokens(ctx, client)
	if err != nil {
		return jsonError(c, err)
	}
	if bound && cert == nil {
		return jsonError(c, &pf.Error{Code: pf.InvalidClient, Status: 401,
			Description: "the token endpoint needs a TLS client certificate: access tokens are bound to it (RFC 8705)"})
	}
	if !bound {
		cert = nil
	}
	done, err := e.inFlight(ctx, client, cert, form) // tokenhook.go: cnf in JWT access tokens
	if err != nil {
		return jsonError(c, err)
	}
	defer done()
	status, body, err := e.tokens.Issue(ctx, client, form)
	if err != nil {
		return jsonError(c, err)
	}
	if err := e.bind(ctx, status, body, cert); err != nil {
		return jsonError(c, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
	return c.Blob(status, echo.MIMEApplicationJSON, body)
}

// hydraTokens redeems at Hydra's token endpoint as the client, authenticated by
// obdcr's own assertion (the Hydra client trusts only obdcr's key).
type hydraTokens struct {
	public *hydra.Public
	pushed *pf.Pushed
	issuer string
	key    func() *pf.SigningKey
	now    func() time.Time
}

// passed are the parameters of each grant sent on to Hydra.
var passed = map[string][]string{
	"authorization_code": {"code", "code_verifier"},
	"refresh_token":      {"refresh_token", "scope"},
	"client_credentials": {"scope", "audience"},
}

func (h hydraTokens) Issue(ctx context.Context, client *pf.Client, form url.Values) (int, []byte, error) {
	grant := form.Get("grant_type")
	names, ok := passed[grant]
	if !ok {
		return 0, nil, &pf.Error{Code: "unsupported_grant_type", Description: "grant_type must be authorization_code, refresh_token or client_credentials", Status: 400}
	}
	out := url.Values{"grant_type": {grant}, "client_id": {client.ID}}
	for _, n := range append(names, pf.HookParam) { // the edge's in-flight nonce (tokenhook.go)
		if v := form.Get(n); v != "" {
			out.Set(n, v)
		}
	}
	if grant == "authorization_code" {
		// The code was issued to the edge's callback; the client names the
		// redirect URI of its own request (RFC 6749 §4.1.3).
		if err := h.pushed.CheckCode(ctx, form.Get("code"), client.ID, form.Get("redirect_uri")); err != nil {
			return 0, nil, err
		}
		out.Set("redirect_uri", h.issuer+CallbackPath)
	}
	if err := h.authenticate(out, client.ID); err != nil {
		return 0, nil, err
	}
	return h.public.Token(ctx, out)
}

// authenticate adds obdcr's assertion for clientID to a request to Hydra.
func (h hydraTokens) authenticate(out url.Values, clientID string) error {
	now := h.now()
	assertion, err := h.key().Sign(map[string]any{"iss": clientID, "sub": clientID, "aud": h.issuer + TokenPath,
		"jti": uuid.NewString(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	if err != nil {
		return err
	}
	out.Set("client_assertion_type", pf.JWTBearer)
	out.Set("client_assertion", assertion)
	return nil
}
