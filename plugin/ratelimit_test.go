package plugin

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/deploy/sandbox"
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
			from := func(addr string) echo.Context {
				return echo.New().NewContext(&http.Request{RemoteAddr: addr, Header: http.Header{}}, nil)
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
				l.allow(from(fmt.Sprintf("[2001:db8:%x:%x::1]:443", i>>16, i&0xffff)), now)
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

// Who a request counts as: addresses of one IPv6 /64 are one caller, and a
// certificate in a trusted proxy's header is one caller however the header's
// text around it varies.
func TestCallerLimiterKeys(t *testing.T) {
	pki, err := sandbox.NewPKI("limiter test CA")
	if err != nil {
		t.Fatal(err)
	}
	tpp, err := pki.Client(pkix.Name{CommonName: "tpp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(tpp.CertPEM)
	roots := func() *x509.CertPool { return pki.Pool() }
	xfcc := func(by string) string {
		return "By=" + by + ";Cert=\"" + url.QueryEscape(pemText) + "\""
	}
	cases := []struct {
		name        string
		format      string
		mode        string
		addr, addr2 string
		header      func(i int) string // the i-th request's header; nil: none
		oneCaller   bool
		byCert      bool // that one caller is the certificate's thumbprint
	}{
		{"one IPv6 /64, 1,000 addresses", "pem-urlencoded", xfccOne, "", "", nil, true, false},
		{"IPv4 addresses are each their own", "pem-urlencoded", xfccOne, "192.0.2.1:1", "192.0.2.2:1", nil, false, false},
		{"PEM escaped two ways", "pem-urlencoded", xfccOne, "", "", func(i int) string {
			if i%2 == 0 {
				return url.QueryEscape(pemText)
			}
			return url.PathEscape(pemText)
		}, true, true},
		{"XFCC with a varied By", "xfcc", xfccLast, "", "", func(i int) string { return xfcc(fmt.Sprintf("spiffe://x/%d", i)) }, true, true},
		{"XFCC with a varied caller prefix, refused", "xfcc", xfccOne, "", "", func(i int) string {
			return fmt.Sprintf("Hash=%d;Cert=\"x\",", i) + xfcc("spiffe://edge")
		}, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := parseHeaderFormat(c.format, c.mode)
			if err != nil {
				t.Fatal(err)
			}
			l := newCallerLimiter(Rate{Limit: 1, Burst: 2}, newCertSource("X-Client-Cert", f, []string{"10.0.0.0/8"}, roots))
			keys := map[[32]byte]bool{}
			for i := range 1000 {
				r := &http.Request{RemoteAddr: fmt.Sprintf("[2001:db8:0:1:%x::%x]:443", i%7, i), Header: http.Header{}}
				switch {
				case c.header != nil:
					r.RemoteAddr = "10.0.0.1:443"
					r.Header.Set("X-Client-Cert", c.header(i))
				case c.addr != "" && i%2 == 0:
					r.RemoteAddr = c.addr
				case c.addr != "":
					r.RemoteAddr = c.addr2
				}
				keys[l.caller(echo.New().NewContext(r, nil))] = true
			}
			if c.oneCaller != (len(keys) == 1) {
				t.Fatalf("%d distinct callers, want one: %v", len(keys), c.oneCaller)
			}
			if c.byCert && !keys[sha256.Sum256(tpp.TLS.Leaf.Raw)] {
				t.Fatal("the caller is not keyed by its certificate's thumbprint")
			}
		})
	}
}
