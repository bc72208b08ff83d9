package plugin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/fapi"
)

// tokenHookRoutes serves Hydra's oauth2.token_hook on the admin listener when
// OBDCR_TOKEN_HOOK_TOKEN is set, and makes the edge record its token requests
// for it: Hydra's JWT access tokens then carry cnf (policy/fapi/tokenhook.go).
// Hydra authenticates with the token as Authorization: Bearer (its hook's
// api_key auth, a header).
func (s *Server) tokenHookRoutes(edge *fapi.Edge) {
	token := s.cfg.Edge.TokenHookToken
	if token == "" {
		return
	}
	edge.JWTBinding(s.store)
	want := sha256.Sum256([]byte("Bearer " + token))
	s.admin.POST(fapi.TokenHookPath, edge.TokenHook, func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			got := sha256.Sum256([]byte(c.Request().Header.Get(echo.HeaderAuthorization)))
			if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="obdcr-token-hook"`)
				return c.JSON(http.StatusUnauthorized, map[string]string{"error": "invalid_token",
					"error_description": "the token hook needs Authorization: Bearer with OBDCR_TOKEN_HOOK_TOKEN"})
			}
			return next(c)
		}
	})
}
