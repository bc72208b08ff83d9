package plugin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin/fapi"
	"github.com/obdcr/obdcr/plugin/reload"
	"github.com/obdcr/obdcr/policy"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

// edgeServer is the FAPI edge's listener and what it serves (OBDCR_EDGE_LISTEN).
type edgeServer struct {
	edge *fapi.Edge
	echo *echo.Echo
	key  *reload.Value[*pf.SigningKey]
	tls  *tls.Config
	// refused counts connections closed for their address's cap.
	refused prometheus.Counter
	// assertion is the key Hydra trusts for edge registrations.
	assertion *pf.SigningKey
}

// parseSigningKey reads OBDCR_EDGE_SIGNING_KEY_FILE.
func parseSigningKey(contents [][]byte) (*pf.SigningKey, error) {
	k, err := jwk.ParseKey(contents[0], jwk.WithPEM(true))
	if err != nil {
		return nil, fmt.Errorf("not a PEM private key: %v", err)
	}
	return signingKeyOf(k)
}

// signingKeyOf makes a private JWK the edge's kind of signing key.
func signingKeyOf(k jwk.Key) (*pf.SigningKey, error) {
	var raw any
	if err := k.Raw(&raw); err != nil {
		return nil, err
	}
	return pf.NewSigningKey(raw)
}

// startEdge builds the edge when OBDCR_EDGE_LISTEN is set: its routes on the
// TPP listener and its own, and edge registrations shaped for it.
func (s *Server) startEdge(ctx context.Context, hc hydraClients, keys policy.TrustStore, report *reloadReport, now func() time.Time) error {
	cfg := s.cfg.Edge
	key, err := reload.New(report.options("OBDCR_EDGE_SIGNING_KEY_FILE", false), parseSigningKey, cfg.SigningKeyFile)
	if err != nil {
		return fmt.Errorf("OBDCR_EDGE_SIGNING_KEY_FILE: %v", err)
	}
	pair := s.serverCerts.pair
	if cfg.TLSCertFile != "" {
		if pair, err = reload.New(report.options("OBDCR_EDGE_TLS_CERT_FILE", false), keyPair, cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return fmt.Errorf("OBDCR_EDGE_TLS_CERT_FILE/OBDCR_EDGE_TLS_KEY_FILE: %v", err)
		}
	}
	assertion, err := assertionKey(ctx, s.store)
	if err != nil {
		return err
	}
	idTokens, err := idTokenKeys(ctx, s.store)
	if err != nil {
		return err
	}
	ring := newKeyRing(key, now)
	edge, err := fapi.New(fapi.Config{Issuer: cfg.PublicURL, TPPURL: s.cfg.PublicURL,
		HydraPublic: &hydra.Public{URL: s.cfg.HydraPublicURL, HTTP: hc.public}, ProxyTransport: hc.public.Transport,
		Key: ring.Get, Published: ring.Published, AssertionKey: assertion, IDTokenKeys: idTokens,
		Clients: s.registrar.Clients, State: s.registrar.State, Profile: s.registrar.Profile, Keys: keys, Replay: s.store, Handles: s.store, Now: now,
		ClientCacheTTL: cfg.ClientCacheTTL})
	if err != nil {
		return err
	}
	s.registrar.Clients = edge.ShapeClients(s.registrar.Clients)
	s.registrar.EdgeAlgs = []string{key.Get().Alg}
	e := s.newEcho("edge")
	if cfg.RateLimit.Limit > 0 {
		lim := newCallerLimiter(cfg.RateLimit, certSource{})
		lim.source, lim.everyPath = s.browserAddr, true
		e.Use(lim.middleware)
	}
	edge.Routes(e, s.discoveryHandler)
	edge.TPPRoutes(s.tpp)
	edge.Certificates(s.certs.request, s.store)
	if err := s.introspectionRoutes(edge); err != nil {
		return err
	}
	s.tokenHookRoutes(edge)
	// Each handshake costs a signature: spaced to OBDCR_EDGE_MAX_CONNS a second
	// (burst as many), waiting no longer than the handshake's own deadline.
	handshakes := rate.NewLimiter(rate.Limit(cfg.MaxConns), cfg.MaxConns)
	refused := prometheus.NewCounter(prometheus.CounterOpts{Name: "obdcr_edge_connections_refused_total",
		Help: "Edge listener connections closed on accept because their source address already held OBDCR_EDGE_MAX_CONNS_PER_ADDR."})
	// Handshakes are most of what a browser costs the edge: an operator
	// watches their rate, and the bench counts them per flow.
	handshaken := prometheus.NewCounter(prometheus.CounterOpts{Name: "obdcr_edge_tls_handshakes_total",
		Help: "TLS handshakes begun on the edge listener (full or resumed)."})
	if err := s.metrics.registry.Register(refused); err != nil {
		return err
	}
	if err := s.metrics.registry.Register(handshaken); err != nil {
		return err
	}
	s.admin.GET("/admin/edge", s.edgeInfo, s.adminAuth)
	s.edgeSetup.Store(&EdgeSetup{PublicURL: cfg.PublicURL, AssertionKey: assertion.Public})
	s.edge = &edgeServer{edge: edge, echo: e, key: key, refused: refused, assertion: assertion, tls: &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: fapiCipherSuites,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c := pair.Get()
			return &c, nil
		},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			handshaken.Inc()
			if err := handshakes.Wait(hello.Context()); err != nil {
				return nil, errors.New("too many TLS handshakes; try again")
			}
			return nil, nil
		}}}
	return nil
}

// serveEdge runs the edge listener until ctx ends; nil when the edge is off.
func (s *Server) serveEdge(ctx context.Context) (func() error, func(context.Context) error, error) {
	if s.edge == nil {
		return func() error { return nil }, func(context.Context) error { return nil }, nil
	}
	ln, err := net.Listen("tcp", s.cfg.Edge.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("OBDCR_EDGE_LISTEN: %v", err)
	}
	srv := &http.Server{Handler: s.edge.echo, TLSConfig: s.edge.tls, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeaderBytes,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: time.Minute, ErrorLog: s.serverErrorLog("edge")}
	// As on the TPP listener: connections are capped per source address before
	// TLS, then in all; handshakes are spaced; idle ones are closed soon.
	ln = newPerAddrListener(ln, s.cfg.Edge.ConnsPerAddr, s.certs.trusted, s.edge.refused.Inc)
	ln = netutil.LimitListener(ln, s.cfg.Edge.MaxConns)
	srv.IdleTimeout = edgeIdleTimeout
	return func() error { return ignoreClosed(srv.Serve(tls.NewListener(ln, s.edge.tls))) }, srv.Shutdown, nil
}

// edgeIdleTimeout closes a browser's idle keep-alive connection: a browser
// opens a new one when it needs it, and an idle one is a slot of
// OBDCR_EDGE_MAX_CONNS_PER_ADDR that a flood could hold.
const edgeIdleTimeout = 15 * time.Second

// browserAddr is the address a browser's request comes from: its peer's, or,
// when the peer is one of OBDCR_TRUSTED_PROXIES, the address that proxy
// appended to X-Forwarded-For (the rightmost entry not itself a trusted
// proxy). Entries a browser wrote itself are further left and never read.
func (s *Server) browserAddr(r *http.Request) string {
	peer, ok := remoteAddr(r.RemoteAddr)
	if !ok || !s.certs.trusted(peer) {
		return r.RemoteAddr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !s.certs.trusted(a.Unmap()) {
			return netip.AddrPortFrom(a.Unmap(), 0).String()
		}
	}
	return r.RemoteAddr
}
