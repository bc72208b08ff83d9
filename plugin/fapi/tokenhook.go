package fapi

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	pf "github.com/obdcr/obdcr/policy/fapi"
)

// TokenHookPath is where Hydra's oauth2.token_hook calls obdcr (admin listener).
const TokenHookPath = "/oauth2/token-hook"

// maxHookBody bounds Hydra's hook request: a session and a sanitised form.
const maxHookBody = 1 << 20

// JWTBinding puts cnf into Hydra's JWT access tokens: each token request the
// edge sends Hydra is recorded in store under a nonce, for TokenHook.
func (e *Edge) JWTBinding(store pf.BindingStore) {
	e.inflight = &pf.InFlight{Store: store, Now: e.cfg.Now}
}

// inFlight records the token request's certificate for Hydra's hook and puts
// its nonce in form; done forgets it. A TPP's own "assertion" never reaches
// Hydra: it would be read as the nonce.
func (e *Edge) inFlight(ctx context.Context, client *pf.Client, cert *x509.Certificate, form url.Values) (done func(), err error) {
	form.Del(pf.HookParam)
	if e.inflight == nil {
		return func() {}, nil
	}
	nonce, done, err := e.inflight.Begin(ctx, client.ID, cert)
	if err != nil {
		return nil, err
	}
	form.Set(pf.HookParam, nonce)
	return done, nil
}

// TokenHook answers Hydra's token hook (v2.3.0 oauth2/token_hook.go): 200 with
// the session's claims plus cnf; 403 (Hydra issues no token: access_denied)
// for a token request that is not one of the edge's in flight; 503 (Hydra:
// server_error) when the store cannot be read. The caller authenticates it.
func (e *Edge) TokenHook(c echo.Context) error {
	if e.inflight == nil {
		return jsonError(c, &pf.Error{Code: pf.ServerError, Description: "JWT binding is off", Status: http.StatusNotFound})
	}
	r := c.Request()
	var req pf.HookRequest
	if err := json.NewDecoder(http.MaxBytesReader(c.Response(), r.Body, maxHookBody)).Decode(&req); err != nil {
		return jsonError(c, &pf.Error{Code: pf.InvalidRequest, Description: "the body is not Hydra's token hook request (JSON of at most 1 MiB)", Status: 400})
	}
	s, err := e.inflight.Claims(r.Context(), &req)
	if err != nil {
		return jsonError(c, err)
	}
	return c.JSON(http.StatusOK, map[string]any{"session": s})
}
