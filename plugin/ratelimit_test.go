package plugin

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// A flood of distinct callers (source addresses are cheap with IPv6) never makes
// the limiter track more than maxLimiterKeys of them, never makes it scan its
// table on every request, and does not free a caller who is over its limit now.
func TestCallerLimiterStaysBounded(t *testing.T) {
	start := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		step time.Duration // between two new callers
	}{
		{"new callers a microsecond apart, all within the refill time", time.Microsecond},
		{"new callers all in the same instant (a coarse clock)", 0},
		{"new callers a second apart, older ones refilled", time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newCallerLimiter(Rate{Limit: 1, Burst: 2}, certSource{})
			from := func(addr string) *http.Request {
				return &http.Request{RemoteAddr: addr, Header: http.Header{}}
			}
			now := start
			// A caller over its limit when the flood starts...
			hot := from("[2001:db8::1]:443")
			for range 2 {
				l.allow(hot, now)
			}
			if ok, _ := l.allow(hot, now); ok {
				t.Fatal("the third request within a burst of 2 was allowed")
			}
			forgets, last := 0, 0
			for i := range 3 * maxLimiterKeys {
				now = now.Add(tc.step)
				l.allow(from(fmt.Sprintf("[2001:db8:1::%x]:443", i)), now)
				n := len(l.buckets)
				if n > maxLimiterKeys {
					t.Fatalf("%d callers tracked after %d new ones", n, i+1)
				}
				if n < last {
					forgets++
				}
				last = n
				// ...and still sending is still limited: its bucket is among the
				// newer half. (Callers with no order, or refilled, may be forgotten.)
				if i%1000 == 0 && tc.step == time.Microsecond {
					if ok, _ := l.allow(hot, now); ok {
						t.Fatalf("after %d new callers, the flood freed a caller over its limit", i)
					}
				}
			}
			if max := 3*maxLimiterKeys/(maxLimiterKeys/2) + 1; forgets > max {
				t.Errorf("the table was cut %d times for %d new callers, want at most %d", forgets, 3*maxLimiterKeys, max)
			}
		})
	}
}
