// Package plugin is obdcr's front-service: the TPP listener (mutual TLS,
// /register), the admin listener (health, policies, audit) and the wiring of
// policy and hydra behind them.
package plugin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin/console"
	"github.com/obdcr/obdcr/plugin/reload"
	"github.com/obdcr/obdcr/plugin/service"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// Server is a running obdcr: both listeners and what they share.
type Server struct {
	cfg       Config
	log       *slog.Logger
	registrar *policy.Registrar
	hydra     *hydra.Admin
	// discovery is Hydra's own discovery document, which obdcr's is made from.
	discovery *hydra.Discovery
	// hydraPublic reaches Hydra's public API (the setup check's probes).
	hydraPublic *http.Client
	// discoveryCache is obdcr's document as last served.
	discoveryCache discoveryCache
	certs          certSource
	// serverCerts are the TPP listener's certificate and client CAs, reloaded on change.
	serverCerts serverCerts
	tls         *tls.Config
	tpp         *echo.Echo
	admin       *echo.Echo
	store       store.Store
	// svc is the application service every operation goes through.
	svc *service.Service
	// adminTokens are OBDCR_ADMIN_TOKEN's, or its file's as it is now.
	adminTokens *reload.Value[[]adminToken]
	metrics     *metrics
	tracing     *tracing
	// readiness is the TPP listener's /health/ready, checked in the background.
	readiness *readiness
	// findings are the last setup check's, for the console.
	findings atomic.Pointer[[]Finding]
	// unprovenLog bounds the log lines of failed requests from callers who proved nothing.
	unprovenLog *logSampler
	// stopBackground ends the background work once the listeners have drained.
	stopBackground context.CancelFunc
	// edge is the FAPI edge; nil when OBDCR_EDGE_LISTEN is empty.
	edge *edgeServer
	// edgeSetup is what the setup check needs of the edge, set once the edge
	// is built (the check runs from the start, concurrently).
	edgeSetup atomic.Pointer[EdgeSetup]
}

// Deps lets tests and embedders replace what New would build from Config.
type Deps struct {
	Logger *slog.Logger
	// Fetch overrides the outbound fetch policy (tests pass their own CA).
	Fetch *policy.FetchPolicy
	// HTTPClient is used for Hydra's admin API.
	HTTPClient *http.Client
	Now        func() time.Time
	// Version is the build's, for traces.
	Version string
}

// New builds a server from cfg. Its background work (JWKS refreshes, policy and
// Register polls) runs until Serve has drained the listeners, or Close is called:
// a request in flight at shutdown still has its JWKS cache and its store.
func New(ctx context.Context, cfg Config, d Deps) (*Server, error) {
	ctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s, err := newServer(ctx, cfg, d)
	if err != nil {
		stop()
		return nil, err
	}
	s.stopBackground = stop
	return s, nil
}

func newServer(ctx context.Context, cfg Config, d Deps) (*Server, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.NewJSONHandler(discard{}, nil))
	}
	m := newMetrics()
	report := &reloadReport{log: d.Logger, failures: m.reloadFailures}
	certs, err := loadServerCerts(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSClientCAFile, report)
	if err != nil {
		return nil, err
	}
	format, err := parseHeaderFormat(cfg.ClientCertFormat, cfg.XFCCElements)
	if err != nil {
		return nil, err
	}
	tr, err := newTracing(ctx, d.Version)
	if err != nil {
		return nil, fmt.Errorf("OTEL_*: %w", err)
	}
	alarm := &authAlarm{log: d.Logger, variables: cfg.HydraAdminAuth.variables()}
	hc, err := newHydraClients(cfg.HydraAdminAuth, cfg.HydraAdminURL, cfg.HydraPublicURL, hydraClientOptions{adminHTTP: d.HTTPClient, report: report,
		wrapAdmin: func(rt http.RoundTripper) http.RoundTripper {
			return hydraTransport{rt: rt, m: m, alarm: alarm, tracing: tr}
		}})
	if err != nil {
		return nil, err
	}
	m.watchCertificates(certs, hc.access)
	admin, disc := hc.admin, hc.discovery
	fetch := policy.DefaultFetchPolicy()
	if d.Fetch != nil {
		fetch = *d.Fetch
	}
	fetch.AllowPrivate = fetch.AllowPrivate || cfg.AllowPrivateJWKS
	tokens, err := adminTokenSource(cfg, report)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.DSN)
	if err != nil {
		return nil, err // it names OBDCR_DSN
	}
	directories := cfg.directories()
	source := func(u string) string {
		if slices.Contains(directories, u) {
			return "directory"
		}
		return "software"
	}
	keys := policy.NewJWKSCache(ctx, policy.JWKSCacheOptions{Fetch: fetch,
		IdleAfter: cfg.JWKSIdleAfter, Keep: directories,
		OnFetch: func(u string, err error) {
			result := "ok"
			if err != nil {
				result = "error"
			}
			m.jwksFetches.WithLabelValues(source(u), result).Inc()
		},
		OnLookup: func(u string, hit bool) {
			result := "miss"
			if hit {
				result = "hit"
			}
			m.jwksLookups.WithLabelValues(source(u), result).Inc()
		},
	})
	m.countJWKS(keys.Len)
	registrar := &policy.Registrar{Clients: admin, Replay: st, Orgs: st, Creates: st, Audiences: append([]string{cfg.Issuer}, cfg.Audiences...), Now: d.Now}
	b := buildProfiles(cfg, policy.JurisdictionDeps{Keys: keys, Replay: st, Fetch: fetch, Registrar: registrar, Log: d.Logger,
		Metrics: m.registry, IDTokenAlg: disc.IDTokenAlg})
	registrar.Profiles = b.profiles
	m.startAtZero(profileNames(b.profiles))
	state, err := store.NewSharedState(ctx, st, b.profiles, cfg.Profiles, d.Logger)
	if err != nil {
		st.Close()
		return nil, err
	}
	registrar.State = state
	s := &Server{
		cfg: cfg, log: d.Logger, hydra: admin, discovery: disc, hydraPublic: hc.public, registrar: registrar,
		tracing: tr, serverCerts: certs, certs: newCertSource(cfg.ClientCertHeader, format, cfg.TrustedProxies, certs.cas.Get),
		store: st, adminTokens: tokens, metrics: m, unprovenLog: newLogSampler(5, 20),
	}
	s.svc = service.New(service.Deps{Registrar: registrar, State: state, Store: st, Hydra: admin, Log: d.Logger,
		AuditRefusals: cfg.AuditRefusals, Health: b.health, Findings: s.SetupFindings,
		Metrics: service.Metrics{Registrations: m.registrations, Management: m.management, Suppressed: m.countSuppressed}})
	s.readiness = newReadiness(s.checkReady, readyInterval, time.Now)
	tr.trustParents(cfg.TraceTrustIncoming, s.certs.fromTrustedProxy)
	go state.Run(ctx)
	go s.svc.Run(ctx)
	go s.pruneAudit(ctx)
	go s.keepOrgIndex(ctx)
	go s.reconcileCreates(ctx)
	go s.readFiles(ctx, hc.access)
	for _, run := range b.background {
		go run(ctx)
	}
	s.tpp = s.newEcho("tpp")
	s.tpp.Use(withBudget(requestBudget))
	s.admin = s.newEcho("admin")
	s.admin.Use(withAdminBudget(requestBudget))
	if cfg.TPPRateLimit.Limit > 0 {
		s.tpp.Use(newCallerLimiter(cfg.TPPRateLimit, s.certs).middleware)
	}
	s.serveTLS(max(cfg.TPPMaxConns, 1))
	s.routes()
	if cfg.Edge.Listen != "" {
		if err := s.startEdge(ctx, hc, keys, report, d.Now); err != nil {
			st.Close()
			return nil, err
		}
	}
	// After the edge: the setup check judges the edge too.
	go s.watchSetup(ctx)
	return s, nil
}

func profileNames(ps []*policy.Profile) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func (s *Server) newEcho(listener string) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.renderError
	e.Use(s.tracing.middleware(listener), s.requestLog, s.metrics.middleware(listener))
	return e
}

func (s *Server) routes() {
	for _, e := range []*echo.Echo{s.tpp, s.admin} {
		e.GET("/health/alive", s.alive)
		e.GET("/openapi.yaml", serveOpenAPI)
	}
	// Anyone can reach the TPP listener's probe: it says ready or not, and no more.
	s.tpp.GET("/health/ready", s.readyTPP)
	s.admin.GET("/health/ready", s.readyAdmin)
	s.tpp.GET("/.well-known/openid-configuration", s.discoveryHandler)
	s.tpp.POST("/register", s.register)
	s.tpp.GET("/register/:client_id", s.getRegistration)
	s.tpp.PUT("/register/:client_id", s.putRegistration)
	s.tpp.DELETE("/register/:client_id", s.deleteRegistration)

	s.admin.GET("/metrics", echo.WrapHandler(s.metrics.handler()))

	if s.cfg.Console {
		h := console.New(consoleBackend{s}, s.trustedProxy)
		h.Service = s.svc
		h.SessionMax = s.cfg.ConsoleMaxAge
		h.Mount(s.admin)
	}

	admin := s.admin.Group("/admin", s.adminAuth)
	admin.GET("/policies", asAdmin(s.listPolicies))
	admin.PUT("/policies/:profile", asAdmin(s.putPolicy))
	admin.GET("/audit", asAdmin(s.listAudit))
	admin.GET("/registrations", asAdmin(s.listRegistrations))
	admin.DELETE("/registrations/:client_id", asAdmin(s.deleteRegistrationAdmin))
	admin.POST("/dry-run", asAdmin(s.dryRun))
	admin.GET("/half-made", s.listHalfMade)
	// Go's profiler, for what the metrics cannot say; behind the admin token.
	admin.GET("/debug/pprof/*", echo.WrapHandler(http.StripPrefix("/admin", http.HandlerFunc(pprof.Index))))
	admin.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	admin.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
}

// serveTLS sets up the TPP listener's TLS: each handshake takes the certificate
// files as they are then, and handshakes are spaced to n a second (burst n):
// each costs a signature, and a cheap client can ask for many. A handshake over
// the rate waits for its turn, bounded by the handshake's own deadline.
func (s *Server) serveTLS(n int) {
	lim := rate.NewLimiter(rate.Limit(n), n)
	s.tls = s.serverCerts.config()
	s.tls.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		s.metrics.handshakes.Inc()
		if err := lim.Wait(hello.Context()); err != nil {
			return nil, errors.New("too many TLS handshakes; try again")
		}
		// Each handshake takes the certificate files as they are now.
		return s.serverCerts.config(), nil
	}
}

// maxHeaderBytes bounds a request's line and headers. A certificate in a proxy's
// header is about 2-4 KiB; Go's default of 1 MiB let a caller send a 1 MiB method.
const maxHeaderBytes = 32 << 10

// tppIdleTimeout closes a TPP's idle keep-alive connection. A TPP's client
// reconnects at the cost of one handshake; an idle connection held longer is a
// slot of OBDCR_TPP_MAX_CONNS that no one else can use.
const tppIdleTimeout = 15 * time.Second

// requestBudget bounds a TPP request: the calls it makes (Hydra, JWKS, the
// store), its audit entry and its answer (withBudget). The CDS sets 1000 ms for DCR at the 95th percentile; this leaves room for a cold JWKS.
const requestBudget = 10 * time.Second

// Serve runs both listeners until ctx ends, then drains in-flight requests.
func (s *Server) Serve(ctx context.Context, tppLn, adminLn net.Listener) error {
	// The TLS handshake is bounded by the shortest of the read timeouts (10 s);
	// an idle keep-alive connection is closed after tppIdleTimeout, so a client
	// that opens connections and sends nothing holds them briefly.
	tppSrv := &http.Server{Handler: s.tpp, TLSConfig: s.tls, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeaderBytes,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: tppIdleTimeout, ErrorLog: s.serverErrorLog("tpp")}
	adminSrv := &http.Server{Handler: s.admin, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeaderBytes,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, ErrorLog: s.serverErrorLog("admin")}
	serveEdge, shutdownEdge, err := s.serveEdge(ctx)
	if err != nil {
		return errors.Join(err, s.Close())
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(serveEdge)
	// Connections are bounded before TLS: per source address first (one client
	// cannot take every slot), then in all, where a flood waits in the kernel's
	// backlog rather than in goroutines and buffers here.
	tppLn = newPerAddrListener(tppLn, max(s.cfg.TPPConnsPerAddr, 1), s.certs.trusted, s.metrics.connsRefused.Inc)
	tppLn = netutil.LimitListener(tppLn, max(s.cfg.TPPMaxConns, 1))
	g.Go(func() error { return ignoreClosed(tppSrv.Serve(tls.NewListener(tppLn, s.tls))) })
	g.Go(func() error { return ignoreClosed(adminSrv.Serve(adminLn)) })
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return errors.Join(tppSrv.Shutdown(sctx), adminSrv.Shutdown(sctx), shutdownEdge(sctx))
	})
	err = g.Wait()
	return errors.Join(err, s.Close())
}

// Close ends background work, sends the last spans and closes the store; Serve
// calls it after draining.
func (s *Server) Close() error {
	s.stopBackground()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(s.tracing.shutdown(ctx), s.store.Close())
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe opens the configured addresses and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	tppLn, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return errors.New("OBDCR_LISTEN: " + err.Error())
	}
	adminLn, err := net.Listen("tcp", s.cfg.AdminListen)
	if err != nil {
		tppLn.Close()
		return errors.New("OBDCR_ADMIN_LISTEN: " + err.Error())
	}
	s.log.Info("obdcr listening", "tpp", tppLn.Addr().String(), "admin", adminLn.Addr().String(), "profiles", s.cfg.Profiles)
	return s.Serve(ctx, tppLn, adminLn)
}

// Registrar exposes the policy engine (tests and the admin API use it).
func (s *Server) Registrar() *policy.Registrar { return s.registrar }

func (s *Server) alive(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) clientCertificate(c echo.Context) (*x509.Certificate, error) {
	cert, err := s.certs.request(c)
	if err != nil {
		he := newHTTPError(http.StatusUnauthorized, "invalid_client", err.Error()+"; register over mutual TLS with your transport certificate")
		return nil, he
	}
	markProven(c)
	return cert, nil
}
