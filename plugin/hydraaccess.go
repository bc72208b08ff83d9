package plugin

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin/reload"
)

// hydraAccess builds the credentials for Hydra's admin API from the
// configuration. Secrets and certificates from files are re-read when the files
// change, so that rotating them needs no restart; a change that cannot be
// applied keeps the last good value (report says so), as Hydra, not obdcr, is
// the one to refuse a credential.
func hydraAccess(a HydraAdminAuth, report *reloadReport) (hydra.AdminAccess, error) {
	var access hydra.AdminAccess
	switch {
	case a.Token != "":
		access.Authorization = func() string { return "Bearer " + a.Token }
	case a.TokenFile != "":
		tok, err := reload.New(report.options("HYDRA_ADMIN_TOKEN_FILE", false), reload.String, a.TokenFile)
		if err != nil {
			return access, fmt.Errorf("HYDRA_ADMIN_TOKEN_FILE: %v", err)
		}
		access.Authorization = func() string { return "Bearer " + tok.Get() }
	case a.BasicAuth != "":
		h := basic(a.BasicAuth)
		access.Authorization = func() string { return h }
	case a.BasicAuthFile != "":
		cred, err := reload.New(report.options("HYDRA_ADMIN_BASIC_AUTH_FILE", false), reload.String, a.BasicAuthFile)
		if err != nil {
			return access, fmt.Errorf("HYDRA_ADMIN_BASIC_AUTH_FILE: %v", err)
		}
		access.Authorization = func() string { return basic(cred.Get()) }
	}
	if a.ClientCertFile != "" {
		pair, err := reload.New(report.options("HYDRA_ADMIN_CLIENT_CERT_FILE", false), keyPair, a.ClientCertFile, a.ClientKeyFile)
		if err != nil {
			return access, fmt.Errorf("HYDRA_ADMIN_CLIENT_CERT_FILE/HYDRA_ADMIN_CLIENT_KEY_FILE: %v", err)
		}
		access.ClientCertificate = func() (*tls.Certificate, error) {
			c := pair.Get()
			return &c, nil
		}
	}
	if a.CAFile != "" {
		pool, err := reload.New(report.options("HYDRA_ADMIN_CA_FILE", false), certPool, a.CAFile)
		if err != nil {
			return access, fmt.Errorf("HYDRA_ADMIN_CA_FILE: %v", err)
		}
		access.RootCAs = pool.Get
	}
	return access, nil
}

func basic(userPassword string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(userPassword))
}

// authAlarm logs, once until the next success, that Hydra's admin API refused
// obdcr's credentials, naming the variables to fix: every registration then
// fails with 503 until they are, and one line says why.
type authAlarm struct {
	log       *slog.Logger
	variables string
	raised    atomic.Bool
}

func (a *authAlarm) observe(status int) {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		if !a.raised.Swap(true) {
			a.log.Error("Hydra's admin API refused obdcr's credentials; registrations fail with 503 until they are fixed",
				"status", status, "check", a.variables)
		}
	case status < 400:
		a.raised.Store(false)
	}
}
