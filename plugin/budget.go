package plugin

import (
	"context"
	"time"

	"github.com/labstack/echo/v4"
)

// A TPP request is answered within requestBudget whatever its dependencies do:
// a store that holds a connection in a read (a paused or partitioned database)
// or a pool with no free connection waits only as long as the call's context.
// The request's own work gets the budget less budgetReserve; what is left is for
// its audit entry and the answer (audit reads budgetKey).

// budgetReserve is the part of the budget kept for the audit entry and the answer.
const budgetReserve = time.Second

// budgetKey holds the time by which the request must be answered.
const budgetKey = "budget.deadline"

// withBudget bounds every request by budget.
func withBudget(budget time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			deadline := time.Now().Add(budget)
			c.Set(budgetKey, deadline)
			ctx, cancel := context.WithDeadline(c.Request().Context(), deadline.Add(-budgetReserve))
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}

// auditContext is the context an audit entry is written in: not ended by the
// caller going away, and bounded by the request's budget where it has one.
func auditContext(c echo.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(5 * time.Second)
	if d, ok := c.Get(budgetKey).(time.Time); ok && d.Before(deadline) {
		deadline = d
	}
	return context.WithDeadline(context.WithoutCancel(c.Request().Context()), deadline)
}
