package plugin

import (
	"net"
	"net/netip"
	"sync"
)

// callerAddr is the key that bounds one source: its address, and for IPv6 its
// /64. A host is routinely given a whole /64, so keying by the full address
// would let one host be 2^64 callers.
func callerAddr(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// remoteAddr is the address of a connection's or request's peer; ok is false
// when it is not an IP address (a Unix socket in tests).
func remoteAddr(s string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// perAddrListener caps the connections one source address holds open before
// any TLS is spent on them. Without it, one client could take every slot of
// OBDCR_TPP_MAX_CONNS with idle keep-alive connections, and every other TPP's
// handshake would wait in the backlog until it timed out. A connection over the
// cap is closed at once; the caller sees a reset, not a hang. Trusted proxies
// are exempt: every TPP behind one shares its address, and the global cap still
// bounds them. The table holds only addresses with open connections, so it is
// bounded by the global cap.
type perAddrListener struct {
	net.Listener
	max     int
	exempt  func(netip.Addr) bool
	refused func()

	mu   sync.Mutex
	open map[netip.Addr]int
}

func newPerAddrListener(ln net.Listener, max int, exempt func(netip.Addr) bool, refused func()) *perAddrListener {
	return &perAddrListener{Listener: ln, max: max, exempt: exempt, refused: refused, open: map[netip.Addr]int{}}
}

// Accept returns the next connection whose address is under its cap; those over
// it are closed here and never reach the caller.
func (l *perAddrListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr, ok := remoteAddr(c.RemoteAddr().String())
		if !ok || l.exempt(addr) {
			return c, nil
		}
		key := callerAddr(addr)
		l.mu.Lock()
		if l.open[key] >= l.max {
			l.mu.Unlock()
			_ = c.Close()
			l.refused()
			continue
		}
		l.open[key]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

func (l *perAddrListener) release(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// countedConn gives its slot back once, however often it is closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
