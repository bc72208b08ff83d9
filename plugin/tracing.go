package plugin

import (
	"context"
	"net/http"
	"os"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing is OpenTelemetry, configured by the standard OTEL_* variables and off
// unless OTEL_EXPORTER_OTLP_ENDPOINT (or its _TRACES_ form) is set. The
// provider is passed down, never set globally: packages below start their
// spans from the request's context, and get a no-op span when tracing is off.
//
// Only W3C trace context crosses obdcr, never baggage: a caller's baggage is
// its own text, and Hydra's admin API must not receive it. A caller's
// traceparent is joined only when it comes from a trusted proxy (see
// trustParents); any other caller's is a link of a new trace, so that it picks
// neither the trace_id in obdcr's logs nor whether obdcr's spans are sampled.
type tracing struct {
	enabled    bool
	provider   trace.TracerProvider
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	shutdown   func(context.Context) error
	// parentFrom says whether a request's traceparent may be the parent of
	// obdcr's span; nil: never.
	parentFrom func(*http.Request) bool
}

// Values of OBDCR_TRACE_TRUST_INCOMING.
const (
	traceTrustProxies = "proxies"
	traceTrustNone    = "none"
)

func newTracing(ctx context.Context, version string) (*tracing, error) {
	t := &tracing{propagator: propagation.TraceContext{}, shutdown: func(context.Context) error { return nil }}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		t.provider = noop.NewTracerProvider()
		t.tracer = t.provider.Tracer("obdcr")
		return t, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, err
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName("obdcr"), semconv.ServiceVersion(version)))
	if err != nil {
		return nil, err
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the defaults.
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	return enabledTracing(sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))), nil
}

// enabledTracing is tracing through p.
func enabledTracing(p *sdktrace.TracerProvider) *tracing {
	return &tracing{enabled: true, provider: p, tracer: p.Tracer("obdcr"), propagator: propagation.TraceContext{}, shutdown: p.Shutdown}
}

// trustParents sets whose traceparent obdcr joins: with OBDCR_TRACE_TRUST_INCOMING
// "proxies" (the default, also when unset), a request from OBDCR_TRUSTED_PROXIES
// (fromProxy); with "none", no one's.
func (t *tracing) trustParents(setting string, fromProxy func(*http.Request) bool) {
	t.parentFrom = fromProxy
	if setting == traceTrustNone {
		t.parentFrom = nil
	}
}

// start is the context a request's server span starts from, and its options:
// the caller's trace as the parent when it is trusted, otherwise a new root
// that links to the caller's trace (when it sent a valid traceparent), so that
// the two can still be found together.
func (t *tracing) start(req *http.Request) (context.Context, []trace.SpanStartOption) {
	caller := t.propagator.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
	if t.parentFrom != nil && t.parentFrom(req) {
		return caller, nil
	}
	opts := []trace.SpanStartOption{trace.WithNewRoot()}
	if sc := trace.SpanContextFromContext(caller); sc.IsValid() && sc.IsRemote() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc,
			Attributes: []attribute.KeyValue{attribute.String("obdcr.link", "untrusted_caller")}}))
	}
	return req.Context(), opts
}

// middleware starts the server span of a request, by its route pattern so that
// names stay a closed set; see start for the trace it joins.
func (t *tracing) middleware(listener string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if !t.enabled {
			return next // off: not a context or a header read per request
		}
		return func(c echo.Context) error {
			req := c.Request()
			ctx, opts := t.start(req)
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			ctx, span := t.tracer.Start(ctx, methodLabel(req.Method)+" "+route, append(opts, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("obdcr.listener", listener), attribute.String("http.route", route)))...)
			defer span.End()
			c.SetRequest(req.WithContext(ctx))
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			status := c.Response().Status
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			return nil
		}
	}
}

// clientSpan starts a span for a call obdcr makes (Hydra) and puts its W3C
// traceparent on the request, so that the callee's spans join the trace. That
// traceparent is obdcr's own span's; no baggage is sent.
func (t *tracing) clientSpan(req *http.Request, name string) (*http.Request, trace.Span) {
	ctx, span := trace.SpanFromContext(req.Context()).TracerProvider().Tracer("obdcr").Start(req.Context(), name,
		trace.WithSpanKind(trace.SpanKindClient))
	r := req.Clone(ctx)
	t.propagator.Inject(ctx, propagation.HeaderCarrier(r.Header))
	return r, span
}
