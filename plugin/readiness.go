package plugin

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// readyInterval is how old the TPP listener's readiness may be before a probe
// starts a fresh check.
const readyInterval = 5 * time.Second

// readinessCheck asks Hydra and the store; it names what does not answer.
type readinessCheck func(ctx context.Context) map[string]string

// readiness is the TPP listener's answer to /health/ready. Anyone on the
// internet can probe it, and each check is two Hydra admin calls and a store
// ping, so a probe never checks: it reads the last outcome, and starts a check
// in the background when that is older than the interval. However fast the
// probes come, Hydra sees at most one check an interval. Only the very first
// probe waits, since there is nothing to answer from yet.
type readiness struct {
	check    readinessCheck
	interval time.Duration
	now      func() time.Time

	mu       sync.Mutex
	problems map[string]string
	checked  time.Time // zero until the first check ends
	running  chan struct{}
}

func newReadiness(check readinessCheck, interval time.Duration, now func() time.Time) *readiness {
	return &readiness{check: check, interval: interval, now: now}
}

// state is the last check's problems (none: ready). It waits for a check only
// when none has ended yet, and then no longer than ctx.
func (r *readiness) state(ctx context.Context) (map[string]string, error) {
	r.mu.Lock()
	if r.running == nil && (r.checked.IsZero() || r.now().Sub(r.checked) >= r.interval) {
		r.start()
	}
	if !r.checked.IsZero() {
		p := r.problems
		r.mu.Unlock()
		return p, nil
	}
	running := r.running
	r.mu.Unlock()
	select {
	case <-running:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.problems, nil
}

// start runs one check detached from the probe that asked for it, bounded by
// its own timeout; the caller holds mu.
func (r *readiness) start() {
	done := make(chan struct{})
	r.running = done
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		p := r.check(ctx)
		r.mu.Lock()
		r.problems, r.checked, r.running = p, r.now(), nil
		r.mu.Unlock()
		close(done)
	}()
}

// checkReady asks Hydra's admin API (with obdcr's credentials) and the store.
func (s *Server) checkReady(ctx context.Context) map[string]string {
	problems := map[string]string{}
	if err := s.hydra.Ready(ctx); err != nil {
		problems["hydra"] = err.Error()
	}
	if err := s.store.Ping(ctx); err != nil {
		problems["store"] = err.Error()
	}
	return problems
}

// readyAdmin is the admin listener's probe (the kubelet's): a live check, with
// what failed.
func (s *Server) readyAdmin(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	return readyAnswer(c, s.checkReady(ctx), true)
}

// readyTPP is the TPP listener's probe: the last background check, status only.
func (s *Server) readyTPP(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	problems, err := s.readiness.state(ctx)
	if err != nil {
		problems = map[string]string{"check": "no readiness check has ended yet"}
	}
	return readyAnswer(c, problems, false)
}

func readyAnswer(c echo.Context, problems map[string]string, details bool) error {
	if len(problems) > 0 {
		if !details {
			return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "unavailable"})
		}
		return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "errors": problems})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
