package plugin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/obdcr/obdcr/policy"
)

// Half-made registrations: a create whose answer was lost, or that was never
// completed (audited and marked complete), is removed by the reconciler within
// policy.CompensationWindow. Every replica runs it; the store hands each
// attempt to one replica at a time.

// reconcileEvery is how often a replica looks for half-made registrations.
const reconcileEvery = 5 * time.Second

// maxHalfMadeListed bounds GET /admin/half-made and obdcr doctor's finding.
const maxHalfMadeListed = 100

func (s *Server) reconcileCreates(ctx context.Context) {
	removed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "obdcr_half_made_removed_total",
		Help: "Half-made registrations (a create whose answer was lost, never completed) whose Hydra client the reconciler removed.",
	})
	s.metrics.registry.MustRegister(removed)
	policy.Every(ctx, reconcileEvery, func(ctx context.Context) {
		// Bounded, so that a store or Hydra that holds a call does not stop the
		// next pass, once it answers again, from running.
		pctx, cancel := context.WithTimeout(ctx, 4*reconcileEvery)
		defer cancel()
		res, err := s.registrar.ReconcileCreates(pctx)
		for _, a := range res.Removed {
			removed.Inc()
			s.log.Warn("half-made registration removed: its create's answer was lost and it was never completed",
				"client_id", a.ClientID, "software_id", a.SoftwareID, "profile", a.Profile)
			_ = s.svc.HalfMadeRemoved(pctx, a) // a failure is logged there; the removal stands
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("half-made registrations: will retry", "error", err.Error())
		}
	})
}

// listHalfMade is GET /admin/half-made: the creates not yet settled, oldest
// first. One younger than a request's budget may still be completing.
func (s *Server) listHalfMade(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), requestBudget)
	defer cancel()
	list, err := s.store.PendingCreates(ctx, maxHalfMadeListed)
	if err != nil {
		return &policy.Unavailable{Dependency: "store", Err: err}
	}
	if list == nil {
		list = []policy.CreateAttempt{}
	}
	return c.JSON(http.StatusOK, list)
}

// HalfMadeFinding is obdcr doctor's finding on half-made registrations, from
// GET /admin/half-made's list as of now; err: the list could not be read.
func HalfMadeFinding(list []policy.CreateAttempt, err error, now time.Time) Finding {
	f := Finding{Check: "obdcr.half_made", Severity: SeverityOK}
	if err != nil {
		// Not a problem of the Hydra setup the other checks judge: said, not counted.
		f.Message = "half-made registrations not checked (obdcr's admin API: " + err.Error() + ")"
		f.Fix = "set OBDCR_ADMIN_URL and OBDCR_ADMIN_TOKEN to a running obdcr's admin API"
		return f
	}
	var old []string
	for _, a := range list {
		if now.Sub(a.NotedAt) > requestBudget {
			old = append(old, fmt.Sprintf("%s (software %s, since %s)", a.ClientID, a.SoftwareID, a.NotedAt.Format(time.RFC3339)))
		}
	}
	if len(old) == 0 {
		f.Message = "no half-made registrations"
		return f
	}
	f.Severity = SeverityWarning
	f.Message = fmt.Sprintf("%d half-made registration(s), being removed within %d s each: %s", len(old),
		int(policy.CompensationWindow/time.Second), strings.Join(old, "; "))
	f.Fix = "none needed while Hydra answers: the reconciler removes them; one listed for longer than the window means Hydra or the store is failing (see obdcr's log)"
	return f
}
