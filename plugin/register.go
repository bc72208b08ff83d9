package plugin

import (
	"bytes"
	"errors"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/service"
	"github.com/obdcr/obdcr/policy"
)

// maxBody is the largest request JWT accepted: an SSA and metadata fit in a few KiB.
const maxBody = 64 << 10

// readJWT enforces the media type and size of a request JWT body.
func readJWT(c echo.Context) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || (mt != "application/jwt" && mt != "application/jose") {
		return nil, newHTTPError(http.StatusUnsupportedMediaType, "invalid_request",
			"the body must be a signed JWT sent as application/jwt (application/jose is accepted too)")
	}
	// Sized from Content-Length where there is one, so the body is read into one
	// buffer rather than a doubling series.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(c.Request().ContentLength, 0), maxBody)+bytes.MinRead))
	_, err = buf.ReadFrom(http.MaxBytesReader(c.Response(), c.Request().Body, maxBody))
	body := buf.Bytes()
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, newHTTPError(http.StatusRequestEntityTooLarge, "invalid_request", "the body is over 64 KiB")
	}
	if err != nil {
		return nil, newHTTPError(http.StatusBadRequest, "invalid_request", "the body could not be read")
	}
	return body, nil
}

// register is POST /register (RFC 7591 §3, OBIE DCR v3.3, CDS DCR).
func (s *Server) register(c echo.Context) error {
	cert, err := s.clientCertificate(c)
	if err != nil {
		return err
	}
	body, err := readJWT(c)
	if err != nil {
		return err
	}
	reg, tr, err := s.svc.Register(c.Request().Context(), service.TPP{Cert: cert}, body)
	noteOutcome(c, tr, err)
	if err != nil {
		return err
	}
	c.Set("log.client_id", reg.ClientID)
	return s.respond(c, http.StatusCreated, reg)
}

// noteOutcome puts what is known of a decision where the request log finds it.
func noteOutcome(c echo.Context, tr policy.Trace, err error) {
	c.Set("log.profile", tr.Profile)
	c.Set("log.software_id", tr.SoftwareID)
	outcome, code := service.Outcome(err)
	if e, ok := policy.AsError(err); ok {
		c.Set("log.error", code)
		c.Set("log.rule", e.Rule)
	}
	c.Set("log.outcome", outcome)
}
