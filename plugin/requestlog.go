package plugin

import (
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/trace"

	"github.com/obdcr/obdcr/plugin/service"
	"github.com/obdcr/obdcr/policy/store"
)

// The request log: one line per request, with the request id obdcr took or made.

const requestIDKey = "request_id"

// maxLoggedPath bounds a caller's path, and other values it chose, in a log line.
const maxLoggedPath = 256

// plainRequestID accepts a caller's X-Request-Id only if it is short and plain,
// since it is repeated in logs, the audit and the answer.
func plainRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func requestID(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

// requestLog takes or makes X-Request-Id, returns it, and logs one line per
// request. Nothing secret is logged: no body, no token, no certificate.
func (s *Server) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !plainRequestID(id) {
			id = uuid.NewString()
		}
		c.Set(requestIDKey, id)
		// The service's audit entries carry the id too.
		c.SetRequest(c.Request().WithContext(service.WithRequestID(c.Request().Context(), id)))
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		skipped := 0
		if status >= 400 && !proven(c) {
			ok, n := s.unprovenLog.admit(time.Now())
			if !ok {
				return nil // counted in metrics; its line is held back
			}
			skipped = n
		}
		attrs := []slog.Attr{
			slog.String("request_id", id), slog.String("method", store.Clean(c.Request().Method, 16)),
			slog.String("path", store.Clean(c.Request().URL.Path, maxLoggedPath)), slog.Int("status", c.Response().Status),
			slog.Duration("duration", time.Since(start)),
		}
		for _, k := range []string{"profile", "software_id", "outcome", "error", "rule", "client_id"} {
			if v, ok := c.Get("log." + k).(string); ok && v != "" {
				attrs = append(attrs, slog.String(k, store.Clean(v, maxLoggedPath)))
			}
		}
		if skipped > 0 {
			attrs = append(attrs, slog.Int("unproven_failures_not_logged", skipped))
		}
		if sc := trace.SpanContextFromContext(c.Request().Context()); sc.HasTraceID() {
			attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
		}
		s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request", attrs...)
		return nil
	}
}
