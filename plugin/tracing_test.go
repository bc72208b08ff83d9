package plugin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// A caller's trace context is joined only from a trusted proxy, and only with
// OBDCR_TRACE_TRUST_INCOMING=proxies; anyone else's is a link of a new trace
// that obdcr samples itself. Baggage is never kept, and Hydra's admin API gets
// obdcr's own traceparent, never the caller's trace id nor its baggage.
func TestIncomingTraceContext(t *testing.T) {
	const (
		callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerSpan  = "00f067aa0ba902b7"
		proxyAddr   = "10.0.0.7:40000"
		otherAddr   = "203.0.113.9:40000"
	)
	type row struct {
		name        string
		remote      string
		setting     string
		traceparent string // "" sends none
		baggage     bool
		joined      bool // the caller's trace is the parent
		linked      bool // the caller's trace is a link of a new root
	}
	var rows []row
	for _, remote := range []string{proxyAddr, otherAddr} {
		for _, setting := range []string{traceTrustProxies, traceTrustNone} {
			for _, flags := range []string{"00", "01"} {
				for _, baggage := range []bool{false, true} {
					joined := remote == proxyAddr && setting == traceTrustProxies
					rows = append(rows, row{name: fmt.Sprintf("from %s, %s, flags %s, baggage %v", remote, setting, flags, baggage),
						remote: remote, setting: setting, traceparent: "00-" + callerTrace + "-" + callerSpan + "-" + flags,
						baggage: baggage, joined: joined, linked: !joined})
				}
			}
		}
	}
	rows = append(rows,
		row{name: "a malformed traceparent is neither joined nor linked", remote: otherAddr, setting: traceTrustProxies,
			traceparent: "00-" + callerTrace + "-zz-01", baggage: true},
		row{name: "no traceparent from a trusted proxy: a new root", remote: proxyAddr, setting: traceTrustProxies})

	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			var mu sync.Mutex
			var atHydra http.Header
			hydra := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				mu.Lock()
				atHydra = req.Header.Clone()
				mu.Unlock()
				_, _ = w.Write([]byte("[]"))
			}))
			defer hydra.Close()
			rec := tracetest.NewSpanRecorder()
			tr := enabledTracing(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
			proxies := newCertSource("", headerFormats["pem-urlencoded"], []string{"10.0.0.0/8"}, nil)
			tr.trustParents(r.setting, proxies.fromTrustedProxy)
			client := &http.Client{Transport: hydraTransport{rt: http.DefaultTransport, m: newMetrics(), tracing: tr}}

			e := echo.New()
			e.Use(tr.middleware("tpp"))
			e.GET("/register/:client_id", func(c echo.Context) error {
				req, _ := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, hydra.URL+"/admin/clients", nil)
				res, err := client.Do(req)
				if err != nil {
					return err
				}
				res.Body.Close()
				return c.NoContent(http.StatusOK)
			})
			req := httptest.NewRequest(http.MethodGet, "/register/x", nil)
			req.RemoteAddr = r.remote
			if r.traceparent != "" {
				req.Header.Set("traceparent", r.traceparent)
			}
			if r.baggage {
				req.Header.Set("baggage", "tenant=attacker,user=mallory")
			}
			e.ServeHTTP(httptest.NewRecorder(), req)

			var server sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if s.SpanKind() == trace.SpanKindServer {
					server = s
				}
			}
			sampledOff := r.joined && strings.HasSuffix(r.traceparent, "-00")
			switch {
			case sampledOff:
				// A trusted proxy's "not sampled" is its decision to make.
				if server != nil {
					t.Fatalf("the trusted proxy's not-sampled flag was ignored: %v", server.SpanContext().TraceID())
				}
			case server == nil:
				t.Fatal("no server span recorded: the caller switched sampling off")
			case r.joined:
				if got := server.SpanContext().TraceID().String(); got != callerTrace {
					t.Errorf("trace id %s, want the proxy's %s", got, callerTrace)
				}
				if got := server.Parent().SpanID().String(); got != callerSpan {
					t.Errorf("parent %s, want the proxy's span %s", got, callerSpan)
				}
				if len(server.Links()) != 0 {
					t.Errorf("links %v on a joined trace", server.Links())
				}
			default:
				if got := server.SpanContext().TraceID().String(); got == callerTrace {
					t.Errorf("an untrusted caller chose the trace id %s", got)
				}
				if server.Parent().IsValid() {
					t.Errorf("parent %v, want a new root", server.Parent())
				}
				links := server.Links()
				if !r.linked {
					if len(links) != 0 {
						t.Errorf("links %v, want none", links)
					}
					break
				}
				if len(links) != 1 || links[0].SpanContext.TraceID().String() != callerTrace || links[0].SpanContext.SpanID().String() != callerSpan {
					t.Errorf("links %v, want one to the caller's %s/%s", links, callerTrace, callerSpan)
				}
			}

			mu.Lock()
			defer mu.Unlock()
			if atHydra == nil {
				t.Fatal("Hydra was not called")
			}
			if b := atHydra.Values("baggage"); len(b) != 0 {
				t.Errorf("Hydra received baggage %q", b)
			}
			tp := atHydra.Get("traceparent")
			if !r.joined && strings.Contains(tp, callerTrace) {
				t.Errorf("Hydra received the untrusted caller's trace id: %s", tp)
			}
			if server != nil && !strings.Contains(tp, server.SpanContext().TraceID().String()) {
				t.Errorf("Hydra's traceparent %q is not obdcr's trace %s", tp, server.SpanContext().TraceID())
			}
		})
	}
}
