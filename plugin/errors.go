package plugin

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin/service"
	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy"
)

// errorBody is the RFC 7591 §3.2.2 error response, used for every error obdcr gives.
type errorBody = view.ErrorBody

// kindStatus is the HTTP status of each kind of refusal the service finds.
var kindStatus = map[service.Kind]int{
	service.Invalid: http.StatusBadRequest, service.Unauthorized: http.StatusUnauthorized, service.Forbidden: http.StatusForbidden,
	service.NotFound: http.StatusNotFound, service.NotAllowed: http.StatusMethodNotAllowed, service.Stale: http.StatusPreconditionFailed,
}

// httpError is an HTTP-level failure found in the plugin (auth, media type, size).
type httpError struct {
	status int
	code   string
	desc   string
	header map[string]string
}

func (e *httpError) Error() string { return e.code + ": " + e.desc }

func newHTTPError(status int, code, desc string) *httpError {
	return &httpError{status: status, code: code, desc: desc}
}

// errorStatus maps an error to its HTTP status and body. This is the one place
// where errors become answers; everything else returns errors that carry their code.
func errorStatus(err error) (int, errorBody, map[string]string) {
	var he *httpError
	var se *service.Error
	var un *policy.Unavailable
	var ee *echo.HTTPError
	if e, ok := policy.AsError(err); ok {
		return http.StatusBadRequest, errorBody{Error: string(e.Code), Description: limit(e.Description, 500)}, nil
	}
	switch {
	case errors.As(err, &he):
		return he.status, errorBody{Error: he.code, Description: he.desc}, he.header
	case errors.As(err, &se):
		var h map[string]string
		if se.Challenge != "" {
			h = map[string]string{"WWW-Authenticate": se.Challenge}
		}
		return kindStatus[se.Kind], errorBody{Error: se.Code, Description: se.Description}, h
	case errors.As(err, &un):
		// 503: the dependency cannot be reached; 502: it answered with a failure;
		// 504: it did not answer in time. The TPP may retry the same request.
		status := http.StatusServiceUnavailable
		var hu *hydra.UnavailableError
		switch {
		case errors.As(err, &hu) && hu.Unauthorized:
			// obdcr's credentials for Hydra are wrong: the bank must fix them.
		case un.Timeout || (errors.As(err, &hu) && hu.Timeout):
			status = http.StatusGatewayTimeout
		case errors.As(err, &hu) && hu.Busy:
			// Hydra's database was busy with a concurrent write, and stayed so through obdcr's retries.
		case errors.As(err, &hu) && hu.Status != 0:
			status = http.StatusBadGateway
		}
		// Only what is known: nothing was changed, unless the error says otherwise.
		desc := un.Dependency + " is unavailable; nothing was changed, try again"
		if un.Detail != "" {
			desc = un.Dependency + " is unavailable; " + un.Detail
		}
		return status, errorBody{Error: "temporarily_unavailable", Description: desc}, map[string]string{"Retry-After": "5"}
	case errors.As(err, &ee):
		msg, _ := ee.Message.(string)
		return ee.Code, errorBody{Error: codeFor(ee.Code), Description: msg}, nil
	}
	return http.StatusInternalServerError, errorBody{Error: "server_error", Description: "internal error; see the server log by X-Request-Id"}, nil
}

func codeFor(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusUnauthorized:
		return "invalid_token"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	}
	return "invalid_request"
}

func limit(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func (s *Server) renderError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body, headers := errorStatus(err)
	body.Description = view.OAuthText(body.Description)
	for k, v := range headers {
		c.Response().Header().Set(k, v)
	}
	if status >= 500 {
		s.log.LogAttrs(c.Request().Context(), slog.LevelError, "request failed",
			slog.String("request_id", requestID(c)), slog.String("error", err.Error()))
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, body)
}
