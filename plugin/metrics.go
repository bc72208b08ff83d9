package plugin

import (
	"context"
	"crypto/x509"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/obdcr/obdcr/hydra"
)

// metrics is obdcr's instrumentation, on a registry of the server's own.
type metrics struct {
	registry      *prometheus.Registry
	registrations *prometheus.CounterVec
	management    *prometheus.CounterVec
	// auditSuppressed: refusals past their certificate's audit budget.
	auditSuppressed *prometheus.CounterVec
	requests        *prometheus.HistogramVec
	jwksFetches     *prometheus.CounterVec
	jwksLookups     *prometheus.CounterVec
	hydraCalls      *prometheus.HistogramVec
	// setupProblems is what the last setup check (obdcr doctor) found wrong.
	setupProblems prometheus.Gauge
	// orgIndexReady is 1 once org_id lookups go through the org index.
	orgIndexReady prometheus.Gauge
	// connsRefused counts TPP connections closed for their address's cap.
	connsRefused prometheus.Counter
	// handshakes counts TLS handshakes begun on the TPP listener.
	handshakes prometheus.Counter
	consoleMetrics
	// reloadFailures counts changed files that could not be applied, by the
	// variable naming the file.
	reloadFailures *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obdcr_registrations_total", Help: "Registration decisions (POST /register) by profile, outcome and RFC 7591 error.",
		}, []string{"profile", "outcome", "error"}),
		management: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obdcr_management_total", Help: "GET, PUT and DELETE /register/{client_id} by profile, operation and outcome.",
		}, []string{"profile", "operation", "outcome"}),
		auditSuppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obdcr_audit_refusals_suppressed_total", Help: "Refusals not written to the audit because their certificate had spent OBDCR_AUDIT_REFUSALS_PER_CERT_HOUR, by profile.",
		}, []string{"profile"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "obdcr_http_request_duration_seconds", Help: "HTTP request latency by listener, route and status.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"listener", "route", "method", "status"}),
		jwksFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obdcr_jwks_fetches_total", Help: "JWKS fetched over the network, by source (directory or software) and result.",
		}, []string{"source", "result"}),
		jwksLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obdcr_jwks_lookups_total", Help: "Key lookups by source and whether the cache answered (hit) or a fetch was needed (miss).",
		}, []string{"source", "result"}),
		hydraCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "obdcr_hydra_request_duration_seconds", Help: "Hydra admin API calls by operation and result (ok, client_error, unauthorized, server_error, unreachable).",
			Buckets: []float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"operation", "result"}),
		setupProblems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "obdcr_setup_problems", Help: "Problems the last setup check of Hydra found (obdcr doctor); the log names them.",
		}),
		orgIndexReady: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "obdcr_org_index_ready", Help: "1 once the org index is filled from Hydra and answers org_id lookups; 0 while they read Hydra's list of every client.",
		}),
		reloadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obdcr_reload_failures_total", Help: "Changed secret or certificate files that could not be applied (gone, empty or invalid), by the variable naming the file.",
		}, []string{"file"}),
		handshakes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "obdcr_tpp_tls_handshakes_total", Help: "TLS handshakes begun on the TPP listener (full or resumed)."}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "obdcr_tpp_connections_refused_total", Help: "TPP listener connections closed on accept because their source address already held OBDCR_TPP_MAX_CONNS_PER_ADDR.",
		}),
	}
	m.registry.MustRegister(m.registrations, m.management, m.auditSuppressed, m.requests, m.jwksFetches, m.jwksLookups, m.hydraCalls, m.setupProblems, m.orgIndexReady,
		m.connsRefused, m.handshakes, m.reloadFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.consoleMetrics = newConsoleMetrics(m.registry)
	return m
}

// startAtZero creates, at 0, the series deploy/prometheus/alerts.yml reads, so
// that the first failure is an increase and a poller that never succeeded shows
// as one. Prometheus cannot see a counter's first increment when the series is
// born at 1. Every label set here is closed. A jurisdiction starts its own.
func (m *metrics) startAtZero(profiles []string) {
	for _, p := range profiles {
		m.registrations.WithLabelValues(p, "failed", "")
		m.auditSuppressed.WithLabelValues(p)
	}
	for _, source := range []string{"directory", "software"} {
		for _, result := range []string{"ok", "error"} {
			m.jwksFetches.WithLabelValues(source, result)
		}
	}
}

// countSuppressed counts refusals the audit did not write (refusalDigest). Its
// profile is one obdcr resolved, or empty: the label set is closed.
func (m *metrics) countSuppressed(profile string, n int) {
	m.auditSuppressed.WithLabelValues(profile).Add(float64(n))
}

// watchCertificates reports the expiry of the TPP listener's certificate and,
// when obdcr authenticates to Hydra by mTLS, of its client certificate.
func (m *metrics) watchCertificates(certs serverCerts, access hydra.AdminAccess) {
	m.certificateExpiry("server", func() *x509.Certificate { return certs.pair.Get().Leaf })
	if access.ClientCertificate != nil {
		m.certificateExpiry("hydra_client", func() *x509.Certificate {
			if c, err := access.ClientCertificate(); err == nil && c != nil {
				return c.Leaf
			}
			return nil
		})
	}
}

// certificateExpiry reports when a certificate obdcr presents expires, read at
// each scrape from the files as last loaded, so that a renewal that did not
// happen shows weeks before handshakes fail. name is from a closed set:
// "server" (OBDCR_TLS_CERT_FILE), "hydra_client" (HYDRA_ADMIN_CLIENT_CERT_FILE).
func (m *metrics) certificateExpiry(name string, leaf func() *x509.Certificate) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "obdcr_certificate_expiry_timestamp_seconds",
		Help:        "When each certificate obdcr presents expires (Unix time), as its file was last loaded: server (TPP listener) or hydra_client (mTLS to Hydra's admin API).",
		ConstLabels: prometheus.Labels{"certificate": name},
	}, func() float64 {
		if c := leaf(); c != nil {
			return float64(c.NotAfter.Unix())
		}
		return 0
	}))
}

// countJWKS reports how many JWKS the trust store holds, read at each scrape.
func (m *metrics) countJWKS(held func() int) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "obdcr_jwks_cached", Help: "JWKS URLs held and refreshed: the directories', and those of software used within OBDCR_JWKS_IDLE_AFTER.",
	}, func() float64 { return float64(held()) }))
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// middleware times every request by its route pattern, never its raw path, so
// client ids do not become label values; and by its method from a closed set, so
// that no caller can mint series. The error is rendered here, so that the status
// recorded is the one sent.
func (m *metrics) middleware(listener string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				c.Error(err)
			}
			route := c.Path()
			if route == "" || c.Response().Status == http.StatusNotFound && !knownRoute(c) {
				route = "unmatched"
			}
			m.requests.WithLabelValues(listener, route, methodLabel(c.Request().Method), strconv.Itoa(c.Response().Status)).Observe(time.Since(start).Seconds())
			return nil
		}
	}
}

// knownRoute tells a route's own 404 (no such client) from a path no route has.
func knownRoute(c echo.Context) bool {
	for _, r := range c.Echo().Routes() {
		if r.Path == c.Path() {
			return true
		}
	}
	return false
}

// methodLabel keeps the method label to a closed set: Go accepts any token as a
// method, up to the header limit.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodHead, http.MethodOptions:
		return method
	}
	return "other"
}

// hydraTransport times Hydra admin calls by operation.
type hydraTransport struct {
	rt      http.RoundTripper
	m       *metrics
	alarm   *authAlarm
	tracing *tracing
}

func (t hydraTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	op := hydraOperation(req)
	span := trace.SpanFromContext(context.Background()) // a no-op, unless traced below
	if t.tracing != nil && trace.SpanFromContext(req.Context()).IsRecording() {
		req, span = t.tracing.clientSpan(req, "hydra."+op)
		defer span.End()
	}
	res, err := t.rt.RoundTrip(req)
	result := "ok"
	switch {
	case err != nil:
		result = "unreachable"
		span.SetStatus(codes.Error, err.Error())
	case res.StatusCode >= 500:
		result = "server_error"
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		// obdcr's own credentials refused: the bank must fix them, and an alert
		// must tell this from a TPP asking for a client that is not there (404).
		result = "unauthorized"
	case res.StatusCode >= 400:
		result = "client_error"
	}
	if res != nil {
		span.SetAttributes(attribute.Int("http.response.status_code", res.StatusCode))
		if t.alarm != nil {
			t.alarm.observe(res.StatusCode)
		}
	}
	t.m.hydraCalls.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
	return res, err
}

func hydraOperation(req *http.Request) string {
	p := req.URL.Path
	switch {
	case strings.HasSuffix(p, "/oauth2/introspect"):
		return "introspect"
	case strings.HasSuffix(p, "/oauth2/tokens"):
		return "revoke_tokens"
	case strings.HasSuffix(p, "/.well-known/openid-configuration"):
		return "discovery"
	case strings.HasSuffix(p, "/health/ready"):
		return "ready"
	case strings.HasSuffix(p, "/admin/clients"):
		if req.Method == http.MethodPost {
			return "create"
		}
		return "list"
	case strings.Contains(p, "/admin/clients/"):
		return map[string]string{http.MethodGet: "get", http.MethodPut: "replace", http.MethodPatch: "patch", http.MethodDelete: "delete"}[req.Method]
	}
	return "other"
}
