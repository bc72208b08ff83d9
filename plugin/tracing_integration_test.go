package plugin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
)

// With OTEL_EXPORTER_OTLP_ENDPOINT set, a registration is one trace: obdcr's
// server span, its rule chain with the SSA and request verifications and the
// JWKS lookups under them, the replay store, the Hydra call and the audit; and
// Hydra's own spans join it through the W3C traceparent obdcr sends.
func TestRegistrationIsOneTrace(t *testing.T) {
	collector := testenv.StartCollector()
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	h, err := testenv.StartHydra(env.Sandbox.CAFile, "TRACING_PROVIDER=otel", "TRACING_SERVICE_NAME=hydra",
		"TRACING_PROVIDERS_OTLP_SERVER_URL="+strings.TrimPrefix(collector.URL, "http://"), "TRACING_PROVIDERS_OTLP_INSECURE=true",
		"TRACING_PROVIDERS_OTLP_SAMPLING_SAMPLING_RATIO=1")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	cfg := env.Config()
	cfg.HydraAdminURL, cfg.HydraPublicURL, cfg.Issuer = h.AdminURL, h.PublicURL, h.PublicURL
	var logs syncBuffer
	o, err := env.StartObdcrLogging(cfg, &logs)
	if err != nil {
		t.Fatal(err)
	}
	tpp, c := newTPP(t, sandbox.UK)
	now := time.Now()
	ssa, _ := env.Sandbox.Authority(tpp.Profile).SSA(tpp, now, nil)
	jwt, _ := tpp.Request(ssa, h.PublicURL, now, nil)
	res, err := c.Register(context.Background(), o.URL, jwt)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("%v %d %s", err, res.Status, res.Body)
	}
	_ = o.Stop() // sends the last spans

	var root testenv.Span
	deadline := time.Now().Add(15 * time.Second)
	for {
		spans := collector.Spans()
		for _, s := range spans {
			if s.Service == "obdcr" && s.Name == "POST /register" {
				root = s
			}
		}
		byName := map[string]testenv.Span{}
		hydraJoined := false
		for _, s := range spans {
			if s.TraceID != root.TraceID {
				continue
			}
			if s.Service == "obdcr" {
				byName[s.Name] = s
			} else if s.Service == "hydra" {
				hydraJoined = true
			}
		}
		parentOf := func(child, parent string) bool {
			return byName[child].SpanID != "" && byName[child].ParentID == byName[parent].SpanID
		}
		tree := map[string]bool{
			"policy.rules under the request":      parentOf("policy.rules", "POST /register"),
			"SSA verification under the chain":    parentOf("rule ssa.signature", "policy.rules"),
			"request verification under it":       parentOf("rule request.signature", "policy.rules"),
			"a JWKS lookup under a verification":  byName["jwks.key"].SpanID != "" && (byName["jwks.key"].ParentID == byName["rule ssa.signature"].SpanID || byName["jwks.key"].ParentID == byName["rule request.signature"].SpanID),
			"the replay store under the request":  parentOf("store.replay", "POST /register"),
			"the Hydra create under the request":  parentOf("hydra.create", "POST /register"),
			"the audit under the request":         parentOf("store.audit", "POST /register"),
			"Hydra's own spans in the same trace": hydraJoined,
		}
		var missing []string
		for what, ok := range tree {
			if !ok {
				missing = append(missing, what)
			}
		}
		if root.TraceID != "" && len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %q incomplete: %v\nspans: %+v", root.TraceID, missing, spans)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"trace_id":"`+root.TraceID+`"`) {
		t.Errorf("no log line carries trace_id %s", root.TraceID)
	}
}
