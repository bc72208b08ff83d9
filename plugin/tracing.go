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
type tracing struct {
	enabled    bool
	provider   trace.TracerProvider
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	shutdown   func(context.Context) error
}

func newTracing(ctx context.Context, version string) (*tracing, error) {
	t := &tracing{propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		shutdown: func(context.Context) error { return nil }}
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
	p := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t.enabled, t.provider, t.tracer, t.shutdown = true, p, p.Tracer("obdcr"), p.Shutdown
	return t, nil
}

// middleware starts the server span of a request, joining a trace the caller
// (or its proxy) started, by its route pattern so that names stay a closed set.
func (t *tracing) middleware(listener string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if !t.enabled {
			return next // off: not a context or a header read per request
		}
		return func(c echo.Context) error {
			req := c.Request()
			ctx := t.propagator.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			ctx, span := t.tracer.Start(ctx, methodLabel(req.Method)+" "+route, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("obdcr.listener", listener), attribute.String("http.route", route)))
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
// traceparent on the request, so that the callee's spans join the trace.
func (t *tracing) clientSpan(req *http.Request, name string) (*http.Request, trace.Span) {
	ctx, span := trace.SpanFromContext(req.Context()).TracerProvider().Tracer("obdcr").Start(req.Context(), name,
		trace.WithSpanKind(trace.SpanKindClient))
	r := req.Clone(ctx)
	t.propagator.Inject(ctx, propagation.HeaderCarrier(r.Header))
	return r, span
}
