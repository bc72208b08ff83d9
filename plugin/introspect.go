package plugin

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin/fapi"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

// Introspection for the bank's resource servers (admin listener): RFC 7662 as
// Hydra answers plus the token's certificate binding, and a check an nginx
// auth_request can call. Callers prove themselves with OBDCR_INTROSPECTION_TOKENS,
// which are not admin tokens: a resource server must not change policies.

// IntrospectionCertHeader carries the client certificate a resource server's
// proxy verified, as nginx's $ssl_client_escaped_cert (URL-escaped PEM).
const IntrospectionCertHeader = "X-SSL-Client-Cert"

// parseIntrospectionTokens reads OBDCR_INTROSPECTION_TOKENS: name:token entries.
func parseIntrospectionTokens(v string) ([]adminToken, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	for i, item := range strings.Split(v, ",") {
		if !strings.Contains(item, ":") {
			return nil, fmt.Errorf("OBDCR_INTROSPECTION_TOKENS: entry %d is not name:token", i+1)
		}
	}
	return parseNamedTokens("OBDCR_INTROSPECTION_TOKENS", v)
}

type introspection struct {
	tokens   []adminToken
	hydra    *hydra.Admin
	bindings *pf.Bindings
}

// introspectionRoutes adds POST /oauth2/introspect and GET
// /oauth2/introspect/check to the admin listener.
func (s *Server) introspectionRoutes(edge *fapi.Edge) error {
	tokens, err := parseIntrospectionTokens(s.cfg.Edge.IntrospectionTokens)
	if err != nil {
		return err
	}
	in := &introspection{tokens: tokens, hydra: s.hydra, bindings: edge.Bindings()}
	s.admin.POST("/oauth2/introspect", in.introspect)
	s.admin.GET("/oauth2/introspect/check", in.check)
	return nil
}

// caller says whether token is one of OBDCR_INTROSPECTION_TOKENS, comparing
// hashes in constant time, each of them.
func (in *introspection) caller(token string) bool {
	sum := sha256.Sum256([]byte(token))
	found := 0
	for _, t := range in.tokens {
		found |= subtle.ConstantTimeCompare(sum[:], t.hash[:])
	}
	return token != "" && found == 1
}

func (in *introspection) refuse(c echo.Context) error {
	e := newHTTPError(http.StatusUnauthorized, "invalid_token", "introspection needs Authorization: Bearer with one of OBDCR_INTROSPECTION_TOKENS")
	e.header = map[string]string{"WWW-Authenticate": `Bearer realm="obdcr-introspection"`}
	return e
}

// introspect is POST /oauth2/introspect (RFC 7662): Hydra's answer, plus
// cnf.x5t#S256 when the edge bound the token (RFC 8705 §3.2).
func (in *introspection) introspect(c echo.Context) error {
	if !in.caller(fapi.BearerToken(c.Request())) {
		return in.refuse(c)
	}
	c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, 16<<10)
	token := ""
	if err := c.Request().ParseForm(); err == nil {
		token = c.Request().PostForm.Get("token") // never the query: a token in a URL is logged
	}
	if token == "" {
		return newHTTPError(http.StatusBadRequest, "invalid_request", "token is required (a form of at most 16 KiB)")
	}
	out, err := in.hydra.IntrospectJSON(c.Request().Context(), token)
	if err != nil {
		return newHTTPError(http.StatusServiceUnavailable, "temporarily_unavailable", "Hydra's introspection did not answer; try again")
	}
	if active, _ := out["active"].(bool); active {
		x5t, ok, err := in.bindings.Bound(c.Request().Context(), token)
		if err != nil {
			return newHTTPError(http.StatusServiceUnavailable, "temporarily_unavailable", "token bindings cannot be read now; try again")
		}
		if ok && x5t != "" { // no cnf for a token issued unbound (bound_tokens false)
			out["cnf"] = map[string]string{"x5t#S256": x5t}
		}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, out)
}

// check is GET /oauth2/introspect/check, for an nginx auth_request: 204 when
// the access token (Authorization) is active and bound to the certificate in
// X-SSL-Client-Cert (or was issued unbound, under a profile whose
// bound_tokens is false), else 401. The caller's own token comes as
// Proxy-Authorization: Bearer, since Authorization is the client's.
func (in *introspection) check(c echo.Context) error {
	r := c.Request()
	scheme, caller, _ := strings.Cut(r.Header.Get("Proxy-Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || !in.caller(strings.TrimSpace(caller)) {
		return in.refuse(c)
	}
	deny := func(desc string) error {
		c.Response().Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
		return c.NoContent(http.StatusUnauthorized)
	}
	token := fapi.BearerToken(r)
	if token == "" {
		return deny("no access token")
	}
	cert, err := headerFormats["pem-urlencoded"].parse(r.Header.Values(IntrospectionCertHeader))
	if err != nil {
		return deny("no client certificate")
	}
	ok, err := in.bindings.Presentable(r.Context(), token, cert)
	if err != nil {
		return newHTTPError(http.StatusServiceUnavailable, "temporarily_unavailable", "token bindings cannot be read now; try again")
	}
	if !ok {
		return deny("the access token is not bound to this certificate")
	}
	t, err := in.hydra.Introspect(r.Context(), token)
	if err != nil {
		return newHTTPError(http.StatusServiceUnavailable, "temporarily_unavailable", "Hydra's introspection did not answer; try again")
	}
	if !t.Active || (t.TokenUse != "" && t.TokenUse != "access_token") {
		return deny("the access token is not active")
	}
	return c.NoContent(http.StatusNoContent)
}
