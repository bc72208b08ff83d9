package policy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// FetchPolicy bounds every fetch obdcr makes on a URL that a directory or TPP chose
// (JWKS, CDR Register). Those URLs come from signed but outside data, so they must
// not reach the bank's internal network (SSRF), hang, or fill memory.
type FetchPolicy struct {
	AllowPrivate bool          // loopback and private addresses: sandbox and tests only
	Timeout      time.Duration // whole request
	MaxBytes     int64         // response body
	TLS          *tls.Config   // nil: system roots (Go honours SSL_CERT_FILE)
}

// DefaultFetchPolicy is what production runs with.
func DefaultFetchPolicy() FetchPolicy {
	return FetchPolicy{Timeout: 5 * time.Second, MaxBytes: 64 << 10}
}

// ErrForbiddenAddress is returned when a URL resolves to an address the policy refuses.
var ErrForbiddenAddress = errors.New("address not allowed")

// CheckURL refuses what must never be fetched, before any DNS lookup.
func (p FetchPolicy) CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("is not a URL: %v", err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("%q must use https", raw)
	}
	if u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%q must name a host and no credentials", raw)
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !p.allowed(ip) {
		return nil, fmt.Errorf("%q points at a %s address: %w", raw, addrClass(ip), ErrForbiddenAddress)
	}
	return u, nil
}

func (p FetchPolicy) allowed(ip netip.Addr) bool {
	if p.AllowPrivate {
		return true
	}
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !isSharedOrReserved(ip)
}

func isSharedOrReserved(ip netip.Addr) bool {
	for _, p := range reservedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

var reservedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64: reaches any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("::/96"),          // IPv4-compatible (deprecated)
	netip.MustParsePrefix("2002::/16"),      // 6to4: embeds an IPv4 address
	netip.MustParsePrefix("2001::/32"),      // Teredo: embeds an IPv4 address
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated, still routed inside some sites)
	netip.MustParsePrefix("100::/64"),       // discard
}

func addrClass(ip netip.Addr) string {
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsPrivate():
		return "private"
	default:
		return "reserved"
	}
}

// Client returns an HTTP client that enforces the policy on every connection,
// redirects included: the check runs on the address actually dialled, after DNS,
// so a hostname that resolves inside the network is refused too.
func (p FetchPolicy) Client() *http.Client {
	dialer := &net.Dialer{
		Timeout: p.Timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return err
			}
			if !p.allowed(ap.Addr()) {
				return fmt.Errorf("%s is a %s address: %w", ap.Addr(), addrClass(ap.Addr()), ErrForbiddenAddress)
			}
			return nil
		},
	}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSClientConfig:       p.TLS,
		TLSHandshakeTimeout:   p.Timeout,
		ResponseHeaderTimeout: p.Timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Timeout:   p.Timeout,
		Transport: limitedTransport{rt: tr, max: p.MaxBytes},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			_, err := p.CheckURL(req.URL.String())
			return err
		},
	}
}

// limitedTransport makes an oversized body fail instead of being truncated: a cut
// JWKS could parse to fewer keys and silently change which keys are trusted.
type limitedTransport struct {
	rt  http.RoundTripper
	max int64
}

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, err := (FetchPolicy{AllowPrivate: true}).CheckURL(req.URL.String()); err != nil {
		return nil, err
	}
	res, err := t.rt.RoundTrip(req)
	if err != nil || t.max <= 0 {
		return res, err
	}
	if res.ContentLength > t.max {
		res.Body.Close()
		return nil, fmt.Errorf("response of %d bytes is over the %d byte limit", res.ContentLength, t.max)
	}
	res.Body = &limitedBody{rc: res.Body, left: t.max}
	return res, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more than allowed tells "exactly at the limit" from "over it".
		var one [1]byte
		if n, _ := b.rc.Read(one[:]); n > 0 {
			return 0, errors.New("response is over the size limit")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// Get fetches url under the policy and returns the body.
func (p FetchPolicy) Get(ctx context.Context, c *http.Client, raw string, header http.Header) ([]byte, int, error) {
	if _, err := p.CheckURL(raw); err != nil {
		return nil, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return body, res.StatusCode, err
}
