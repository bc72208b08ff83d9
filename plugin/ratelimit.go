package plugin

import (
	"crypto/sha256"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// Rate is a requests-per-interval limit such as "20/s" or "600/m"; 0 is off.
type Rate struct {
	Limit rate.Limit
	Burst int
}

// UnmarshalText reads OBDCR_TPP_RATE_LIMIT: N/s, N/m or N/h, the burst twice N.
func (r *Rate) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "0" || s == "off" {
		*r = Rate{}
		return nil
	}
	n, per, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(n)
	unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[per]
	if !ok || err != nil || count <= 0 || unit == 0 {
		return fmt.Errorf("%q is not a rate such as 20/s, 600/m or 0 (off)", s)
	}
	*r = Rate{Limit: rate.Limit(float64(count) / unit.Seconds()), Burst: 2 * count}
	return nil
}

func (r Rate) String() string {
	if r.Limit == 0 {
		return "0"
	}
	return strconv.FormatFloat(float64(r.Limit), 'f', -1, 64) + "/s"
}

// maxLimiterKeys bounds the callers tracked at once. Idle callers' buckets are
// full again, so forgetting them changes nothing; past the bound, the oldest are
// forgotten first.
const maxLimiterKeys = 50_000

// callerLimiter limits requests per caller: per client certificate, and per
// source address for requests without one. Behind a trusted proxy the caller is
// the certificate in its header, so that one proxy address never limits every TPP.
type callerLimiter struct {
	rate  Rate
	certs certSource
	// source, when set, names a request's source address instead of its
	// RemoteAddr (the edge: the browser behind a trusted proxy).
	source func(*http.Request) string
	// everyPath limits /.well-known/ too (the edge, whose JWKS reads Hydra).
	everyPath bool

	mu      sync.Mutex
	buckets map[[32]byte]*callerBucket
}

type callerBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newCallerLimiter(r Rate, certs certSource) *callerLimiter {
	return &callerLimiter{rate: r, certs: certs, buckets: map[[32]byte]*callerBucket{}}
}

// caller keys a request by who it has shown itself to be: the SHA-256
// thumbprint of its certificate (from the TLS connection, or the header a
// trusted proxy set, parsed), or else its source address, an IPv6 caller by its
// /64. Never by a header's raw text: a caller who can vary the text around the
// same certificate would get a fresh bucket each time.
func (l *callerLimiter) caller(c echo.Context) [32]byte {
	r := c.Request()
	if (r.TLS != nil && len(r.TLS.PeerCertificates) > 0) || (l.certs.header != "" && r.Header.Get(l.certs.header) != "") {
		if cert, err := l.certs.request(c); err == nil {
			return sha256.Sum256(cert.Raw)
		}
	}
	addr := r.RemoteAddr
	if l.source != nil {
		addr = l.source(r)
	}
	if a, ok := remoteAddr(addr); ok {
		addr = callerAddr(a).String()
	}
	return sha256.Sum256([]byte("addr:" + addr))
}

// allow takes a token for the caller, or says how long until one is free.
func (l *callerLimiter) allow(c echo.Context, now time.Time) (bool, time.Duration) {
	key := l.caller(c)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxLimiterKeys {
			l.forget(now)
		}
		b = &callerBucket{lim: rate.NewLimiter(l.rate.Limit, l.rate.Burst)}
		l.buckets[key] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// forget drops the buckets that have refilled, then, if more than half the bound
// is left, the older half by when they were last seen: the next forget is then at
// least maxLimiterKeys/2 new callers away, so a flood of new callers costs a scan
// per 25,000 of them, never one per request.
func (l *callerLimiter) forget(now time.Time) {
	full := time.Duration(float64(l.rate.Burst) / float64(l.rate.Limit) * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.seen) > full {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) <= maxLimiterKeys/2 {
		return
	}
	seen := make([]time.Time, 0, len(l.buckets))
	for _, b := range l.buckets {
		seen = append(seen, b.seen)
	}
	slices.SortFunc(seen, time.Time.Compare)
	cut := seen[len(seen)/2]
	for k, b := range l.buckets {
		if b.seen.Before(cut) {
			delete(l.buckets, k)
		}
	}
	// Callers seen in the same instant (a coarse clock) have no order: any will do.
	for k := range l.buckets {
		if len(l.buckets) <= maxLimiterKeys/2 {
			break
		}
		delete(l.buckets, k)
	}
}

// middleware answers 429 with Retry-After past the caller's rate. Health probes
// count like any request without a certificate: the kubelet probes the admin
// listener, and an unlimited probe here was a free lever on Hydra. The
// discovery document alone is not limited: it is served from memory, and
// behind a proxy every TPP's software reads it from the proxy's address.
func (l *callerLimiter) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !l.everyPath && strings.HasPrefix(c.Request().URL.Path, "/.well-known/") {
			return next(c)
		}
		ok, wait := l.allow(c, time.Now())
		if ok {
			return next(c)
		}
		e := newHTTPError(http.StatusTooManyRequests, "rate_limited", "too many requests from this client; retry after the time in Retry-After")
		e.header = map[string]string{"Retry-After": strconv.Itoa(int(math.Ceil(wait.Seconds())))}
		return e
	}
}
