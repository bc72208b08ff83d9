package plugin

import (
	"net/http"
	"testing"
)

// TestBrowserAddr: the edge's rate limiter keys a browser by its peer address,
// or behind a trusted proxy by the address that proxy appended; what the
// browser wrote into X-Forwarded-For itself is never the key.
func TestBrowserAddr(t *testing.T) {
	s := &Server{certs: newCertSource("", headerFormat{}, []string{"10.0.0.0/8"}, nil)}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"direct browser", "192.0.2.7:5000", nil, "192.0.2.7:5000"},
		{"direct browser claiming another address", "192.0.2.7:5000", []string{"198.51.100.1"}, "192.0.2.7:5000"},
		{"behind the proxy", "10.0.0.5:443", []string{"198.51.100.1"}, "198.51.100.1:0"},
		{"behind the proxy, the browser's own entry further left", "10.0.0.5:443", []string{"203.0.113.9, 198.51.100.1"}, "198.51.100.1:0"},
		{"two trusted proxies", "10.0.0.5:443", []string{"198.51.100.1", "10.0.0.6"}, "198.51.100.1:0"},
		{"behind the proxy, no header", "10.0.0.5:443", nil, "10.0.0.5:443"},
		{"behind the proxy, garbage", "10.0.0.5:443", []string{"not-an-address"}, "10.0.0.5:443"},
		{"IPv6 browser behind the proxy", "10.0.0.5:443", []string{"2001:db8::1"}, "[2001:db8::1]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := s.browserAddr(r); got != tc.want {
				t.Errorf("browserAddr = %q, want %q", got, tc.want)
			}
		})
	}
}
