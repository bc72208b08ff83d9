package plugin

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/service"
)

// dryRunCertHeader optionally carries the TPP's transport certificate (PEM,
// URL-encoded) so that a dry run can judge the certificate rule too.
const dryRunCertHeader = "X-Obdcr-Client-Certificate"

// dryRun is POST /admin/dry-run: every rule's verdict on a request; nothing is
// created and the jti is not consumed.
func (s *Server) dryRun(c echo.Context, admin service.AdminToken) error {
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
	ans, err := s.svc.DryRun(c.Request().Context(), admin, body, cert)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ans)
}
