package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/service"
	"github.com/obdcr/obdcr/policy"
)

// authorize proves a management call (RFC 7592) through the service, with what
// the request brought: its certificate, the client_id in its path and its
// bearer token.
func (s *Server) authorize(c echo.Context, op string) (service.TPP, error) {
	call := service.ManagementCall{Op: op, ClientID: c.Param("client_id")}
	cert, err := s.certs.request(c)
	if err != nil {
		call.CertProblem = err.Error()
	} else {
		call.Cert = cert
		markProven(c)
	}
	scheme, token, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		call.Token = strings.TrimSpace(token)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), requestBudget)
	defer cancel()
	if s.edge != nil && call.Token != "" {
		x5t, _, err := s.edge.edge.Bindings().Bound(ctx, call.Token)
		if err != nil {
			return service.TPP{}, newHTTPError(http.StatusServiceUnavailable, "temporarily_unavailable", "token bindings cannot be read now; try again")
		}
		call.Binding = x5t
	}
	tpp, err := s.svc.Authorize(ctx, call)
	if err != nil {
		return tpp, err
	}
	c.Set("log.profile", tpp.Client.Profile)
	c.Set("log.software_id", tpp.Client.SoftwareID)
	c.Set("log.client_id", tpp.Client.ClientID)
	return tpp, nil
}

// getRegistration is GET /register/{client_id} (RFC 7592 §2.1).
func (s *Server) getRegistration(c echo.Context) error {
	tpp, err := s.authorize(c, "get")
	if err != nil {
		return err
	}
	return s.respond(c, http.StatusOK, s.svc.Read(tpp))
}

// putRegistration is PUT /register/{client_id} (RFC 7592 §2.2): a new signed
// request, checked by the same rules, replaces the registration.
func (s *Server) putRegistration(c echo.Context) error {
	tpp, err := s.authorize(c, "update")
	if err != nil {
		return err
	}
	body, err := readJWT(c)
	if err != nil {
		return err
	}
	reg, tr, err := s.svc.Update(c.Request().Context(), tpp, body)
	noteOutcome(c, tr, err)
	if err != nil {
		return err
	}
	return s.respond(c, http.StatusOK, reg)
}

// deleteRegistration is DELETE /register/{client_id} (RFC 7592 §2.3): the client
// and every token it holds go.
func (s *Server) deleteRegistration(c echo.Context) error {
	tpp, err := s.authorize(c, "delete")
	if err != nil {
		return err
	}
	if err := s.svc.Delete(c.Request().Context(), tpp, tpp.Client.ClientID, ""); err != nil {
		if service.IsKind(err, service.NotAllowed) {
			c.Response().Header().Set("Allow", "GET, PUT")
		}
		return err
	}
	c.Set("log.outcome", "deleted")
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) respond(c echo.Context, status int, reg *policy.Registration) error {
	resp, err := s.registrar.Response(reg)
	if err != nil {
		return err
	}
	body, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	// With its length known the answer goes out in one piece; a streamed answer
	// over 2 KiB (every registration is) would be sent chunked.
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	return c.Blob(status, echo.MIMEApplicationJSON, body)
}
