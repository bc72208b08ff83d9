package plugin_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/plugin"
	"github.com/obdcr/obdcr/policy/policytest"
)

// The review's flood through the real handler, on SQLite: 1,000 refusals from one
// certificate, each with a fresh kid (and, for the other rules it meets, a fresh
// redirect URI or audience), paced just under the rate limit. The audit grows by
// at most OBDCR_AUDIT_REFUSALS_PER_CERT_HOUR; the rest is counted. Before, every
// varied refusal was an entry of its own.
func TestVariedRefusalFloodAuditBounded(t *testing.T) {
	const requests = 1000
	cases := []struct {
		name     string
		budget   int
		kinds    int  // how many of the rules below the flood meets
		suppress bool // whether some must be counted rather than written
	}{
		{name: "fresh kid, default budget", budget: 60, kinds: 1},
		{name: "five rules past a budget of 3", budget: 3, kinds: 5, suppress: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "obdcr.db")
			rate := plugin.Rate{Limit: 200, Burst: 400}
			o := startObdcr(t, func(c *serverConfig) {
				c.DSN, c.TPPRateLimit, c.AuditRefusals = "sqlite://"+db, rate, tc.budget
			})
			tpp, client := newTPP(t, sandbox.UK)
			refusals := variedRefusals(t, tpp)[:tc.kinds]
			audited, bytesBefore := auditCount(t, o.AdminURL), fileSize(db, db+"-wal")
			pace := time.NewTicker(time.Second / time.Duration(rate.Limit-10))
			defer pace.Stop()
			for i := range requests {
				<-pace.C
				res, err := client.Register(context.Background(), o.URL, refusals[i%len(refusals)](i))
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != http.StatusBadRequest {
					t.Fatalf("request %d: %d %s; want 400 (under the rate limit)", i, res.Status, res.Body)
				}
			}
			grown := auditCount(t, o.AdminURL) - audited
			if grown > tc.budget || grown == 0 {
				t.Errorf("%d varied refusals from one certificate wrote %d entries; want 1 to %d", requests, grown, tc.budget)
			}
			suppressed, _ := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_audit_refusals_suppressed_total", map[string]string{"profile": "uk"})
			if tc.suppress && suppressed == 0 {
				t.Errorf("obdcr_audit_refusals_suppressed_total{profile=uk} is 0 after %d kinds of refusal past a budget of %d", tc.kinds, tc.budget)
			}
			_, body := adminCall(t, o, http.MethodGet, fmt.Sprintf("/admin/audit?limit=%d", grown), "")
			t.Logf("%d refusals: %d audit entries (%d bytes of entry JSON), SQLite file +%d bytes, %v counted as suppressed",
				requests, grown, len(body), fileSize(db, db+"-wal")-bytesBefore, suppressed)
		})
	}
}

// variedRefusals: five rules a TPP can meet, each refused with text it chose.
func variedRefusals(t *testing.T, tpp *sandbox.TPP) []func(i int) string {
	return []func(i int) string{
		func(i int) string {
			kid := map[string]any{"kid": fmt.Sprintf("kid-%d-%d", i, time.Now().UnixNano())}
			forged, _ := tpp.Signing.Sign(env.Sandbox.Directory.SSAClaims(tpp, time.Now()), kid)
			jwt, _ := tpp.Request(forged, env.Issuer(), time.Now(), nil)
			return jwt
		},
		func(i int) string {
			return request(t, tpp, nil, policytest.Set("redirect_uris", []string{fmt.Sprintf("https://evil.example/cb/%d", i)}))
		},
		func(i int) string {
			return request(t, tpp, nil, policytest.Set("aud", fmt.Sprintf("https://other.example/%d", i)))
		},
		func(int) string { return request(t, tpp, nil, policytest.Set("id_token_signed_response_alg", "RS256")) },
		func(int) string {
			return request(t, tpp, nil, policytest.Set("token_endpoint_auth_method", "tls_client_auth"))
		},
	}
}

func fileSize(paths ...string) int64 {
	var n int64
	for _, f := range paths {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}
