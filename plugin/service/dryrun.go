package service

import (
	"context"
	"crypto/x509"

	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// DryRun runs a request through selection, both signature checks and every
// rule, reporting each verdict, and audits it under the admin. Nothing is
// created and the jti is not consumed. cert, when given, is the TPP's
// transport certificate, so that the certificate rule is judged too.
func (s *Service) DryRun(ctx context.Context, actor Admin, jwt []byte, cert *x509.Certificate) (view.DryRun, error) {
	rep, tr, err := s.d.Registrar.DryRun(ctx, policy.Submission{JWT: jwt, Certificate: cert})
	if err != nil {
		return view.DryRun{}, err
	}
	e := traceEntry(store.KindDryRun, tr)
	e.Outcome = rep.Outcome
	actor.stamp(&e)
	if rep.Error != nil {
		e.Error, e.Rule, e.Description = string(rep.Error.Code), rep.Error.Rule, rep.Error.Description
	}
	if err := s.audit(ctx, e); err != nil {
		return view.DryRun{}, err
	}
	return view.NewDryRun(rep), nil
}
