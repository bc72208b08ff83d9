package plugin

import (
	"bytes"
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
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
	reg, tr, err := s.registrar.Register(c.Request().Context(), policy.Submission{JWT: body, Certificate: cert})
	outcome, code := s.noteOutcome(c, tr, err)
	s.metrics.registrations.WithLabelValues(tr.Profile, outcome, code).Inc()
	rule := ""
	if e, ok := policy.AsError(err); ok {
		rule = e.Rule
	}
	s.activity.record(time.Now(), tr.Profile, err == nil, code, rule)
	if aerr := s.audit(c, decisionEntry(store.KindRegistration, tr, reg, cert, err)); aerr != nil {
		if reg != nil {
			// Created but not audited: never completed, so the reconciler removes
			// the client; the TPP hears that the outcome is not known yet.
			return policy.OutcomeUnknown("store", aerr)
		}
		if policy.IsRefusal(err) {
			return aerr
		}
	}
	if err != nil {
		return err
	}
	cctx, cancel := auditContext(c)
	defer cancel()
	if err := s.registrar.Complete(cctx, reg); err != nil {
		return err
	}
	c.Set("log.client_id", reg.ClientID)
	return s.respond(c, http.StatusCreated, reg)
}

// noteOutcome puts what is known of a decision where the request log finds it,
// and returns the outcome and error code for metrics.
func (s *Server) noteOutcome(c echo.Context, tr policy.Trace, err error) (outcome, code string) {
	c.Set("log.profile", tr.Profile)
	c.Set("log.software_id", tr.SoftwareID)
	outcome = "approved"
	if err != nil {
		outcome = "refused"
		if e, ok := policy.AsError(err); ok {
			code = string(e.Code)
			c.Set("log.error", code)
			c.Set("log.rule", e.Rule)
		} else {
			outcome = "failed"
		}
	}
	c.Set("log.outcome", outcome)
	return outcome, code
}
