package plugin

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin/reload"
	"github.com/obdcr/obdcr/policy"
)

// reloadReport is how a file that changed but cannot be applied (gone, empty,
// or not parsing) is reported: an error log line naming the variable, and
// obdcr_reload_failures_total{file}, whose label is that variable's name, a
// closed set. A nil report reports nothing (obdcr doctor, which runs once).
type reloadReport struct {
	log      *slog.Logger
	failures *prometheus.CounterVec
}

// options are the reload options of the file named by the variable file. With
// failClosed nothing is served until the file is mended: a secret that admits
// callers. Without, the last good value stays: a certificate or a credential
// obdcr presents, whose half-rotated file must not take obdcr down.
func (r *reloadReport) options(file string, failClosed bool) reload.Options {
	o := reload.Options{Name: file, FailClosed: failClosed}
	if r == nil {
		return o
	}
	r.failures.WithLabelValues(file) // at 0, so that the first failure is an increase
	kept := "the last good value is kept until the file is mended"
	if failClosed {
		kept = "nothing from it is accepted until the file is mended"
	}
	o.OnFailure = func(err error) {
		r.failures.WithLabelValues(file).Inc()
		r.log.Error("a changed file could not be applied; "+kept, "file", file, "error", err.Error())
	}
	return o
}

// readFiles asks for every reloaded value once a check interval, whatever the
// traffic, so that a file that breaks is logged and counted when it breaks,
// not at its next use (the admin token file may go unused for days).
func (s *Server) readFiles(ctx context.Context, access hydra.AdminAccess) {
	gets := []func(){func() { s.serverCerts.pair.Get() }, func() { s.serverCerts.cas.Get() }, func() { s.adminTokens.Get() }}
	if access.Authorization != nil {
		gets = append(gets, func() { access.Authorization() })
	}
	if access.ClientCertificate != nil {
		gets = append(gets, func() { _, _ = access.ClientCertificate() })
	}
	if access.RootCAs != nil {
		gets = append(gets, func() { access.RootCAs() })
	}
	policy.Every(ctx, reload.CheckEvery, func(context.Context) {
		for _, get := range gets {
			get()
		}
	})
}
