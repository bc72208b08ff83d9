package plugin

import (
	"context"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/service"
)

// A TPP request is answered within requestBudget whatever its dependencies do:
// a store that holds a connection in a read (a paused or partitioned database)
// or a pool with no free connection waits only as long as the call's context.
// The request's own work gets the budget less budgetReserve; what is left is for
// its audit entry and the answer.

// budgetReserve is the part of the budget kept for the audit entry and the answer.
const budgetReserve = time.Second

// withBudget bounds every request by budget: its work by the budget less
// budgetReserve, its audit entry and completion by the whole budget
// (service.WithAnswerBy).
func withBudget(budget time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			deadline := time.Now().Add(budget)
			ctx := service.WithAnswerBy(c.Request().Context(), deadline)
			ctx, cancel := context.WithDeadline(ctx, deadline.Add(-budgetReserve))
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}

// withAdminBudget bounds the admin listener as withBudget bounds the TPP's: a
// policy save, an audit page or a registrations list whose store does not
// answer is answered 503 with Retry-After within the budget, never left
// waiting on a paused or partitioned database. The profiler is left out: a
// CPU profile or trace runs as long as it was asked to (?seconds=).
func withAdminBudget(budget time.Duration) echo.MiddlewareFunc {
	bounded := withBudget(budget)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		within := bounded(next)
		return func(c echo.Context) error {
			if strings.HasPrefix(c.Path(), "/admin/debug/") {
				return next(c)
			}
			return within(c)
		}
	}
}
