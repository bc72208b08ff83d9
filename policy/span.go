package policy

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// startSpan starts a child of the request's span with the tracer that made it.
// Without tracing it does nothing at all, not even a context: the validation
// path runs a span per rule, and costs must stay where tracing is on.
func startSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, noSpan
	}
	return parent.TracerProvider().Tracer("obdcr/policy").Start(ctx, name, trace.WithAttributes(attrs...))
}

// tracing reports whether the request is traced, so that span names are built only then.
func tracing(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }

// noSpan is a span that records nothing; ending it ends nothing.
var noSpan = trace.SpanFromContext(context.Background())

// endSpan records how a step ended: a refusal is an outcome, not an error.
func endSpan(span trace.Span, err error) {
	if err != nil {
		if e, ok := AsError(err); ok {
			span.SetAttributes(attribute.String("obdcr.refusal", string(e.Code)))
		} else {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}
