package plugin

import (
	"log"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/obdcr/obdcr/policy/store"
)

// provenKey marks a request whose caller proved something: a verified client
// certificate, or an admin token.
const provenKey = "proven"

func markProven(c echo.Context) { c.Set(provenKey, true) }

func proven(c echo.Context) bool {
	p, _ := c.Get(provenKey).(bool)
	return p
}

// logSampler keeps failed requests from callers who proved nothing to a few log
// lines a second: anyone can send them, as fast as the rate limit lets each
// address. The lines it holds back are counted, and the next line it lets
// through says how many.
type logSampler struct {
	lim *rate.Limiter

	mu      sync.Mutex
	skipped int
}

func newLogSampler(perSecond float64, burst int) *logSampler {
	return &logSampler{lim: rate.NewLimiter(rate.Limit(perSecond), burst)}
}

// admit reports whether to log a line now, and how many were held back before it.
func (l *logSampler) admit(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.lim.AllowN(now, 1) {
		l.skipped++
		return false, 0
	}
	n := l.skipped
	l.skipped = 0
	return true, n
}

// serverErrorLog is net/http's own error log (failed TLS handshakes, bad
// connections) as obdcr's JSON log, sampled like unproven requests: anyone can
// fail a handshake as often as it can connect, and the default logger wrote a
// line to stderr for each.
func (s *Server) serverErrorLog(listener string) *log.Logger {
	return log.New(sampledWriter{s: s, listener: listener}, "", 0)
}

type sampledWriter struct {
	s        *Server
	listener string
}

func (w sampledWriter) Write(p []byte) (int, error) {
	ok, skipped := w.s.unprovenLog.admit(time.Now())
	if ok {
		msg := store.Clean(strings.TrimSpace(string(p)), maxLoggedPath)
		if skipped > 0 {
			w.s.log.Warn("connection", "listener", w.listener, "error", msg, "unproven_failures_not_logged", skipped)
		} else {
			w.s.log.Warn("connection", "listener", w.listener, "error", msg)
		}
	}
	return len(p), nil
}
