package plugin

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// dryRunCertHeader optionally carries the TPP's transport certificate (PEM,
// URL-encoded) so that a dry run can judge the certificate rule too.
const dryRunCertHeader = "X-Obdcr-Client-Certificate"

// dryRunAnswer is POST /admin/dry-run's answer.
type dryRunAnswer struct {
	Profile string              `json:"profile,omitempty"`
	Outcome string              `json:"outcome"`
	Error   *errorBody          `json:"error,omitempty"`
	Rules   []policy.RuleResult `json:"rules"`
}

// dryRun runs a request through selection, both signature checks and every rule,
// reporting each verdict. Nothing is created and the jti is not consumed.
func (s *Server) dryRun(c echo.Context) error {
	body, err := readJWT(c)
	if err != nil {
		return err
	}
	var cert *x509.Certificate
	if h := c.Request().Header.Get(dryRunCertHeader); h != "" {
		raw, _ := url.QueryUnescape(h)
		block, _ := pem.Decode([]byte(raw))
		if block == nil {
			return newHTTPError(http.StatusBadRequest, "invalid_request", dryRunCertHeader+" must hold a URL-encoded PEM certificate")
		}
		if cert, err = x509.ParseCertificate(block.Bytes); err != nil {
			return newHTTPError(http.StatusBadRequest, "invalid_request", dryRunCertHeader+": "+err.Error())
		}
	}
	ans, err := s.dryRunAnswer(c, body, cert)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ans)
}

// dryRunAnswer runs the dry run and audits it; the API and the console share it.
func (s *Server) dryRunAnswer(c echo.Context, body []byte, cert *x509.Certificate) (dryRunAnswer, error) {
	rep, tr, err := s.registrar.DryRun(c.Request().Context(), policy.Submission{JWT: body, Certificate: cert})
	if err != nil {
		return dryRunAnswer{}, err
	}
	ans := dryRunAnswer{Profile: rep.Profile, Outcome: rep.Outcome, Rules: rep.Rules}
	e := traceEntry(store.KindDryRun, tr)
	e.Outcome, e.Actor = rep.Outcome, actor(c)
	if rep.Error != nil {
		ans.Error = &errorBody{Error: string(rep.Error.Code), Description: rep.Error.Description}
		e.Error, e.Rule, e.Description = string(rep.Error.Code), rep.Error.Rule, rep.Error.Description
	}
	if err := s.audit(c, e); err != nil {
		return dryRunAnswer{}, err
	}
	return ans, nil
}
