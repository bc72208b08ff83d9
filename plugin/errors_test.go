package plugin

import (
	"errors"
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
)

func TestErrorStatus(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"refusal", policy.Refuse(policy.InvalidRedirectURI, "redirect_uris", "bad"), 400, "invalid_redirect_uri"},
		{"hydra unreachable", &policy.Unavailable{Dependency: "hydra", Err: &hydra.UnavailableError{Err: errors.New("refused")}}, 503, "temporarily_unavailable"},
		{"hydra 500", &policy.Unavailable{Dependency: "hydra", Err: &hydra.UnavailableError{Status: 500, Err: errors.New("boom")}}, 502, "temporarily_unavailable"},
		{"hydra busy with a concurrent write (its 400)", &policy.Unavailable{Dependency: "hydra", Err: &hydra.UnavailableError{Status: 400, Busy: true, Err: errors.New("concurrent update")}}, 503, "temporarily_unavailable"},
		{"hydra timeout", &policy.Unavailable{Dependency: "hydra", Err: &hydra.UnavailableError{Timeout: true, Err: errors.New("slow")}}, 504, "temporarily_unavailable"},
		{"store down", &policy.Unavailable{Dependency: "store", Err: errors.New("down")}, 503, "temporarily_unavailable"},
		{"directory down", &policy.Unavailable{Dependency: "directory", Err: errors.New("down")}, 503, "temporarily_unavailable"},
		{"http error", newHTTPError(415, "invalid_request", "jwt please"), 415, "invalid_request"},
		{"echo 404", echo.ErrNotFound, 404, "not_found"},
		{"echo 405", echo.ErrMethodNotAllowed, 405, "method_not_allowed"},
		{"anything else", errors.New("bug"), http.StatusInternalServerError, "server_error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body, _ := errorStatus(c.err)
			if status != c.status || body.Error != c.code {
				t.Fatalf("got %d %s, want %d %s", status, body.Error, c.status, c.code)
			}
		})
	}
}
