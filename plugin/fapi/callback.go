package fapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/policy"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

// callback is where Hydra answers (by query for code, by form_post for the
// hybrid flow). The handle in state names the client's own request, once; the
// answer goes on to the client's redirect URI with its own state and iss, in
// JARM when asked, with the hybrid ID token signed again with s_hash.
func (e *Edge) callback(c echo.Context) error {
	ctx := c.Request().Context()
	p := c.QueryParams()
	if c.Request().Method == http.MethodPost {
		form, err := readForm(c)
		if err != nil {
			return page(c, &pf.Error{Code: pf.InvalidRequest, Description: "the callback's body cannot be read"})
		}
		p = form
	}
	r, err := e.pushed.Release(ctx, p.Get("state"))
	if err != nil {
		var fe *pf.Error
		if !errors.As(err, &fe) {
			fe = &pf.Error{Code: pf.ServerError, Description: "the request could not be completed"}
		}
		return page(c, fe)
	}
	if code := p.Get("error"); code != "" {
		return e.respond(c, r, map[string]string{"error": clipped(code), "error_description": clipped(p.Get("error_description"))})
	}
	code := p.Get("code")
	if code == "" {
		return e.respond(c, r, map[string]string{"error": pf.ServerError, "error_description": "the authorization server answered without a code"})
	}
	params := map[string]string{"code": code}
	if r.Hybrid() {
		idToken, err := e.reissue(c, r, p, code)
		if err != nil {
			return e.respond(c, r, map[string]string{"error": pf.ServerError, "error_description": "the ID token could not be issued"})
		}
		params["id_token"] = idToken
	}
	if err := e.pushed.NoteCode(ctx, code, r.ClientID, r.RedirectURI); err != nil {
		return e.respond(c, r, map[string]string{"error": pf.TemporarilyUnavailable, "error_description": "try again"})
	}
	return e.respond(c, r, params)
}

// reissue verifies Hydra's ID token with Hydra's keys and signs its claims in
// Hydra's alg, which is the one the client registered, adding s_hash for the
// client's state.
func (e *Edge) reissue(c echo.Context, r *pf.AuthRequest, p url.Values, code string) (string, error) {
	keys, err := e.cfg.HydraPublic.Keys(c.Request().Context())
	if err != nil {
		return "", err
	}
	hydraToken := p.Get("id_token")
	j, err := policy.ParseJWS([]byte(hydraToken))
	if err != nil {
		return "", err
	}
	key := e.idTokenKey(j.Alg.String())
	if key == nil {
		return "", fmt.Errorf("no edge key signs %s", j.Alg)
	}
	return key.ReissueIDToken(hydraToken, keys, e.cfg.Issuer, r.ClientID, r.Nonce, code, r.State, e.cfg.Now())
}

// idTokenKey is the key that signs an ID token in alg: the edge key when it is
// in alg, else the stored ID-token key of alg (nil when there is none).
func (e *Edge) idTokenKey(alg string) *pf.SigningKey {
	if k := e.cfg.Key(); k.Alg == alg || e.cfg.IDTokenKeys == nil {
		return k
	}
	for _, k := range e.cfg.IDTokenKeys {
		if k.Alg == alg {
			return k
		}
	}
	return nil
}

// clipped bounds what Hydra's error says before it is passed on.
func clipped(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}
