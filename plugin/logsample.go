package plugin

import (
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
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
