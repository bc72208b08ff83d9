package plugin_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
)

func scrape(t *testing.T, adminURL string) string {
	t.Helper()
	res, err := http.Get(adminURL + "/metrics") // no token: scrapers have none
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %d", res.StatusCode)
	}
	return string(b)
}

func TestMetrics(t *testing.T) {
	o := startObdcr(t, nil)
	r := registerTPP(t, o, sandbox.UK)
	tpp, c := newTPP(t, sandbox.UK)
	_, _ = c.Register(context.Background(), o.URL, request(t, tpp, nil, policytestSet("aud", "https://x")))
	_, _ = r.client.Get(context.Background(), o.URL, r.clientID, r.token)
	body := scrape(t, o.AdminURL)
	for _, want := range []string{
		`obdcr_registrations_total{error="",outcome="approved",profile="uk"} 1`,
		`obdcr_registrations_total{error="invalid_client_metadata",outcome="refused",profile="uk"} 1`,
		`obdcr_management_total{operation="get",outcome="approved",profile="uk"} 1`,
		`obdcr_jwks_fetches_total{result="ok",source="directory"} 1`,
		`obdcr_jwks_fetches_total{result="ok",source="software"} 2`,
		`obdcr_jwks_lookups_total{result="hit",source="directory"} 2`, // the refused request verified its SSA too
		"obdcr_jwks_cached 3", // the directory's and the two TPPs'
		`obdcr_hydra_request_duration_seconds_count{operation="create",result="ok"} 1`,
		`obdcr_hydra_request_duration_seconds_count{operation="introspect",result="ok"} 1`,
		`obdcr_http_request_duration_seconds_count{listener="tpp",method="POST",route="/register",status="201"} 1`,
		`obdcr_http_request_duration_seconds_count{listener="tpp",method="GET",route="/register/:client_id",status="200"} 1`,
		// at zero from the start, so that an alert sees the first failure
		`obdcr_registrations_total{error="",outcome="failed",profile="uk"} 0`,
		`obdcr_registrations_total{error="",outcome="failed",profile="au"} 0`,
		`obdcr_jwks_fetches_total{result="error",source="directory"} 0`,
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, r.clientID) {
		t.Error("a client_id became a label value")
	}
}

func policytestSet(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
