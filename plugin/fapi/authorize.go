package fapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/policy"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

// authorize is GET|POST /oauth2/auth. Hydra's own continuations (after login
// and consent) go to Hydra; a client's request is verified, held under a
// handle, and passed to Hydra with the edge's callback as its redirect URI.
func (e *Edge) authorize(c echo.Context) error {
	q, err := authParams(c)
	if err != nil {
		return page(c, &pf.Error{Code: pf.InvalidRequest, Description: err.Error()})
	}
	// Only a continuation with a verifier goes to Hydra as it is: an empty one
	// would make Hydra start a flow the edge never checked.
	if c.Request().Method == http.MethodGet && (q.Get("login_verifier") != "" || q.Get("consent_verifier") != "") {
		return e.proxied(c)
	}
	ctx := c.Request().Context()
	clientID := q.Get("client_id")
	if clientID == "" {
		return page(c, &pf.Error{Code: pf.InvalidRequest, Description: "client_id is required"})
	}
	client, err := e.clients.Client(ctx, clientID)
	if errors.Is(err, pf.ErrUnknownClient) {
		return page(c, &pf.Error{Code: pf.InvalidClient, Description: "the client is not registered here"})
	}
	if err != nil {
		return page(c, &pf.Error{Code: pf.TemporarilyUnavailable, Description: "the client's registration cannot be read now; try again"})
	}
	r, err := e.request(c, client, q)
	if err != nil {
		return e.refuse(c, client, r, q, err)
	}
	// Outside the request object only these may be sent, and they must agree.
	if v := q.Get("response_type"); v != "" && v != r.ResponseType {
		return e.refuse(c, client, r, q, &pf.Error{Code: pf.InvalidRequest, Description: "the response_type parameter does not match the request object's"})
	}
	// OIDC Core §6.1 has clients send scope outside too, often just openid;
	// the request object's is what counts (FAPI 1.0 Advanced §5.2.2-10), so the
	// outer one may name less, never more.
	if v := q.Get("scope"); v != "" && !scopesWithin(v, r.Scope) {
		return e.refuse(c, client, r, q, &pf.Error{Code: pf.InvalidRequest, Description: "the scope parameter names scopes the request object does not"})
	}
	handle, err := e.pushed.Hold(ctx, r)
	if err != nil {
		return e.refuse(c, client, r, q, err)
	}
	req := c.Request().Clone(ctx)
	req.Method, req.Body, req.ContentLength = http.MethodGet, http.NoBody, 0
	req.Header.Del(echo.HeaderContentType)
	req.URL.RawQuery = e.hydraQuery(r, handle).Encode()
	e.proxy.ServeHTTP(c.Response(), req)
	return nil
}

// maxAuthForm bounds a POSTed authorization request: the request object's own
// bound and room for the few parameters allowed beside it.
const maxAuthForm = 64 << 10

// authParams are the authorization request's parameters: the query of a GET,
// the form of a POST (OIDC Core §3.1.2.1), never both.
func authParams(c echo.Context) (url.Values, error) {
	r := c.Request()
	if r.Method != http.MethodPost {
		return r.URL.Query(), nil
	}
	if ct, _, _ := strings.Cut(r.Header.Get(echo.HeaderContentType), ";"); !strings.EqualFold(strings.TrimSpace(ct), echo.MIMEApplicationForm) {
		return nil, errors.New("a POSTed authorization request must be application/x-www-form-urlencoded")
	}
	if r.URL.RawQuery != "" {
		return nil, errors.New("a POSTed authorization request carries its parameters in the body only")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAuthForm+1))
	if err != nil {
		return nil, errors.New("the request body could not be read")
	}
	if len(body) > maxAuthForm {
		return nil, fmt.Errorf("the authorization request is over %d bytes", maxAuthForm)
	}
	q, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errors.New("the request body is not a well-formed form")
	}
	return q, nil
}

// request is the verified request: pushed (request_uri) or by value (request).
func (e *Edge) request(c echo.Context, client *pf.Client, q url.Values) (*pf.AuthRequest, error) {
	ctx := c.Request().Context()
	uri, raw := q.Get("request_uri"), q.Get("request")
	switch {
	case uri != "" && raw != "":
		return nil, &pf.Error{Code: pf.InvalidRequest, Description: "send request or request_uri, not both", Page: true}
	case uri != "":
		return e.pushed.Pull(ctx, client, uri)
	case raw == "":
		return nil, &pf.Error{Code: pf.InvalidRequest, Description: "a signed request object is required: request, or request_uri from PAR", Page: true}
	case client.Rules.RequirePAR:
		return nil, &pf.Error{Code: pf.InvalidRequest, Description: "this client must push its request object (PAR) and send request_uri"}
	}
	return e.verifier.RequestObject(ctx, client, raw, false)
}

// refuse sends an error to the client's redirect URI when it can be trusted:
// the verified request's, or else the unverified request object's if it is one
// the client registered exactly. Otherwise the browser gets a page.
func (e *Edge) refuse(c echo.Context, client *pf.Client, r *pf.AuthRequest, q url.Values, err error) error {
	var fe *pf.Error
	if !errors.As(err, &fe) {
		fe = &pf.Error{Code: pf.ServerError, Description: "the request could not be completed", Page: true}
	}
	if r == nil {
		redirect, state, mode, rt := pf.Untrusted(q.Get("request"))
		if redirect != "" && slices.Contains(client.RedirectURIs, redirect) {
			r = &pf.AuthRequest{ClientID: client.ID, RedirectURI: redirect, State: state, ResponseMode: mode, ResponseType: rt}
			if !slices.Contains(policy.ResponseModes, mode) {
				r.ResponseMode = ""
			}
		}
	}
	if fe.Page || r == nil {
		return page(c, fe)
	}
	return e.respond(c, r, map[string]string{"error": fe.Code, "error_description": fe.Description})
}

// hydraQuery is the request as Hydra sees it: the edge's callback and the
// handle as state; the hybrid flow answers by form_post, since a fragment
// never reaches a server.
func (e *Edge) hydraQuery(r *pf.AuthRequest, handle string) url.Values {
	v := url.Values{"client_id": {r.ClientID}, "response_type": {r.ResponseType}, "scope": {r.Scope},
		"redirect_uri": {e.cfg.Issuer + CallbackPath}, "state": {handle}}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("nonce", r.Nonce)
	set("code_challenge", r.CodeChallenge)
	set("code_challenge_method", r.CodeChallengeMethod)
	set("prompt", r.Prompt)
	set("acr_values", r.ACRValues)
	set("ui_locales", r.UILocales)
	if len(r.Claims) > 0 {
		v.Set("claims", string(r.Claims))
	}
	if r.MaxAge != nil {
		v.Set("max_age", strconv.FormatInt(*r.MaxAge, 10))
	}
	if r.Hybrid() {
		v.Set("response_mode", "form_post")
	}
	return v
}

// scopesWithin says whether every scope of outer is one of inner's.
func scopesWithin(outer, inner string) bool {
	in := strings.Fields(inner)
	for _, s := range strings.Fields(outer) {
		if !slices.Contains(in, s) {
			return false
		}
	}
	return true
}
