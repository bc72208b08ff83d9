package policy

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// startSpan starts a child of the request's span with the tracer that made it;
// without tracing the request's span is a no-op and so is this one.
func startSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return trace.SpanFromContext(ctx).TracerProvider().Tracer("obdcr/policy").Start(ctx, name, trace.WithAttributes(attrs...))
}

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
