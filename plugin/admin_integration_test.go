package plugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/plugin"
	"github.com/obdcr/obdcr/policy"
)

// adminCall sends a request to the admin API with the admin token.
func adminCall(t *testing.T, o *testenv.Obdcr, method, path, body string) (int, []byte) {
	t.Helper()
	return adminCallAs(t, o, testenv.AdminToken, method, path, body)
}

func adminCallAs(t *testing.T, o *testenv.Obdcr, token, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, o.AdminURL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func TestAdminAPI(t *testing.T) {
	o := startObdcr(t, nil)
	t.Run("auth", func(t *testing.T) {
		for _, tok := range []string{"", "wrong-token-0123456789", testenv.AdminToken + "x"} {
			if status, _ := adminCallAs(t, o, tok, http.MethodGet, "/admin/policies", ""); status != http.StatusUnauthorized {
				t.Errorf("token %q: %d", tok, status)
			}
		}
	})
	t.Run("list", func(t *testing.T) {
		status, body := adminCall(t, o, http.MethodGet, "/admin/policies", "")
		var got []map[string]any
		_ = json.Unmarshal(body, &got)
		if status != http.StatusOK || len(got) != 2 || got[0]["profile"] != "uk" || got[0]["enabled"] != true || got[0]["settings"] == nil ||
			got[0]["settings"].(map[string]any)["bound_tokens"] != true {
			t.Fatalf("%d %s", status, body)
		}
	})
	cases := []struct {
		name, path, body string
		status           int
		mention          string
	}{
		{"unknown profile", "/admin/policies/br", `{"enabled":false}`, 404, "br"},
		{"bad setting", "/admin/policies/uk", `{"settings":{"signing_algs":["RS256"]}}`, 400, "signing_algs"},
		{"unknown setting", "/admin/policies/uk", `{"settings":{"colour":"blue"}}`, 400, "colour"},
		{"unknown field", "/admin/policies/uk", `{"enable":false}`, 400, "enable"},
		{"empty change", "/admin/policies/uk", `{}`, 400, "nothing to change"},
		{"AU multiple registrations", "/admin/policies/au", `{"settings":{"multiple_registrations":true}}`, 400, "multiple_registrations"},
		{"UK unbound tokens", "/admin/policies/uk", `{"settings":{"bound_tokens":false}}`, 400, "bound_tokens: must be true"},
		{"AU unbound tokens", "/admin/policies/au", `{"settings":{"bound_tokens":false}}`, 400, "bound_tokens: must be true"},
		{"good setting", "/admin/policies/uk", `{"settings":{"clock_skew":"45s"}}`, 200, `"clock_skew":"45s"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := adminCall(t, o, http.MethodPut, c.path, c.body)
			if status != c.status || !strings.Contains(string(body), c.mention) {
				t.Fatalf("%d %s, want %d mentioning %s", status, body, c.status, c.mention)
			}
		})
	}
	t.Run("audit of policy changes", func(t *testing.T) {
		status, body := adminCall(t, o, http.MethodGet, "/admin/audit?kind=policy&profile=uk", "")
		var got []map[string]any
		_ = json.Unmarshal(body, &got)
		if status != 200 || len(got) != 1 || got[0]["actor"] != "admin" || got[0]["before"] == nil || got[0]["after"] == nil {
			t.Fatalf("%d %s", status, body)
		}
	})
	// Queries an admin gets wrong: each a 4xx that says what to send instead.
	for _, q := range []struct {
		method, path string
		status       int
		mention      string
	}{
		{http.MethodGet, "/admin/audit?limit=x", 400, "limit must be a number from 1 to 1000"},
		{http.MethodGet, "/admin/audit?limit=0", 400, "limit must be a number from 1 to 1000"},
		{http.MethodGet, "/admin/audit?limit=1001", 400, "limit must be a number from 1 to 1000"},
		{http.MethodGet, "/admin/audit?before=yesterday", 400, "before must be an entry id"},
		{http.MethodGet, "/admin/audit?before=0", 400, "before must be an entry id"},
		{http.MethodGet, "/admin/registrations", 400, "give software_id and/or org_id"},
		{http.MethodDelete, "/admin/registrations/00000000-0000-0000-0000-000000000000", 404, "no registration with that client_id"},
	} {
		t.Run(q.method+" "+q.path, func(t *testing.T) {
			if status, body := adminCall(t, o, q.method, q.path, ""); status != q.status || !strings.Contains(string(body), q.mention) {
				t.Fatalf("%d %s, want %d mentioning %q", status, body, q.status, q.mention)
			}
		})
	}
}

// A switched-off profile refuses registrations, and says so; the other goes on;
// existing clients can still be managed; the audit tells why.
func TestProfileSwitchedOff(t *testing.T) {
	o := startObdcr(t, nil)
	ctx := context.Background()
	existing := registerTPP(t, o, sandbox.AU)
	if status, body := adminCall(t, o, http.MethodPut, "/admin/policies/au", `{"enabled":false}`); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	tpp, c := newTPP(t, sandbox.AU)
	res, _ := c.Register(ctx, o.URL, request(t, tpp, nil, nil))
	if res.Status != 400 || res.JSON()["error"] != "unapproved_software_statement" || !strings.Contains(string(res.Body), "switched off") {
		t.Fatalf("AU while off: %d %s", res.Status, res.Body)
	}
	uk, uc := newTPP(t, sandbox.UK)
	if res, _ := uc.Register(ctx, o.URL, request(t, uk, nil, nil)); res.Status != 201 {
		t.Fatalf("UK while AU off: %d %s", res.Status, res.Body)
	}
	if res, _ := existing.client.Get(ctx, o.URL, existing.clientID, existing.token); res.Status != 200 {
		t.Fatalf("managing an existing AU client while AU is off: %d %s", res.Status, res.Body)
	}
	status, body := adminCall(t, o, http.MethodGet, "/admin/audit?profile=au&software_id="+tpp.SoftwareID, "")
	var got []map[string]any
	_ = json.Unmarshal(body, &got)
	if status != 200 || len(got) != 1 || got[0]["outcome"] != "refused" || got[0]["rule"] != policy.StepSelect || got[0]["error"] != "unapproved_software_statement" {
		t.Fatalf("audit: %s", body)
	}
	if strings.Contains(string(body), "eyJ") {
		t.Fatalf("the audit holds a JWT: %s", body)
	}
}

func TestAdminRegistrations(t *testing.T) {
	o := startObdcr(t, nil)
	r := registerTPP(t, o, sandbox.UK)
	for _, q := range []string{"software_id=" + r.tpp.SoftwareID, "org_id=" + r.tpp.OrgID} {
		status, body := adminCall(t, o, http.MethodGet, "/admin/registrations?"+q, "")
		var got []map[string]any
		_ = json.Unmarshal(body, &got)
		if status != 200 || len(got) != 1 || got[0]["client_id"] != r.clientID {
			t.Fatalf("%s: %d %s", q, status, body)
		}
	}
	if status, _ := adminCall(t, o, http.MethodDelete, "/admin/registrations/"+r.clientID, ""); status != 204 {
		t.Fatalf("admin delete: %d", status)
	}
	if status, _ := adminCall(t, o, http.MethodDelete, "/admin/registrations/"+r.clientID, ""); status != 404 {
		t.Fatalf("second admin delete: %d", status)
	}
	// the TPP can register again
	if res, _ := r.client.Register(context.Background(), o.URL, request(t, r.tpp, nil, nil)); res.Status != 201 {
		t.Fatalf("re-register after admin delete: %d %s", res.Status, res.Body)
	}
}

// Two replicas on one database: 20 parallel registrations of one software_id
// across both give exactly one client, a replayed jti is refused by the other,
// and a policy change on one reaches the other within 5 s.
func TestTwoReplicasOneDatabase(t *testing.T) {
	pgDSN, _ := testenv.PostgresDatabase(t)
	for _, dsn := range []string{"sqlite://" + t.TempDir() + "/obdcr.db", pgDSN} {
		name := strings.SplitN(dsn, ":", 2)[0]
		t.Run(name, func(t *testing.T) {
			a := startObdcr(t, func(c *serverConfig) { c.DSN = dsn })
			b := startObdcr(t, func(c *serverConfig) { c.DSN = dsn })
			ctx := context.Background()
			tpp, client := newTPP(t, sandbox.UK)

			jwt := request(t, tpp, nil, nil)
			if res, _ := client.Register(ctx, a.URL, jwt); res.Status != 201 {
				t.Fatalf("A: %d %s", res.Status, res.Body)
			}
			if res, _ := client.Register(ctx, b.URL, jwt); res.Status != 400 || !strings.Contains(string(res.Body), "jti") {
				t.Fatalf("replay on B: %d %s", res.Status, res.Body)
			}

			race, rc := newTPP(t, sandbox.UK)
			var mu sync.Mutex
			created := 0
			var wg sync.WaitGroup
			for i := 0; i < 20; i++ {
				wg.Add(1)
				target := []*testenv.Obdcr{a, b}[i%2]
				go func() {
					defer wg.Done()
					res, err := rc.Register(ctx, target.URL, request(t, race, nil, nil))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					switch res.Status {
					case 201:
						created++
					case 400:
					default:
						t.Errorf("unexpected %d %s", res.Status, res.Body)
					}
				}()
			}
			wg.Wait()
			if created != 1 {
				t.Fatalf("%d registrations of one software_id succeeded across two replicas", created)
			}

			start := time.Now()
			if status, body := adminCall(t, a, http.MethodPut, "/admin/policies/uk", `{"enabled":false}`); status != 200 {
				t.Fatalf("%d %s", status, body)
			}
			other, oc := newTPP(t, sandbox.UK)
			for {
				res, _ := oc.Register(ctx, b.URL, request(t, other, nil, nil))
				if res.Status == 400 && strings.Contains(string(res.Body), "switched off") {
					break
				}
				if time.Since(start) > 5*time.Second {
					t.Fatalf("replica B still registers UK %s after the switch on A: %d", time.Since(start), res.Status)
				}
				// A 201 here is B not having seen the change yet: allowed within the 5 s.
				other, oc = newTPP(t, sandbox.UK)
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("%s: B refused UK %s after A switched it off", name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// A save names the version it was made against; a stale one gets 412.
func TestAdminPolicyIfMatch(t *testing.T) {
	o := startObdcr(t, nil)
	version := func() int64 {
		_, body := adminCall(t, o, http.MethodGet, "/admin/policies", "")
		var got []struct {
			Profile string `json:"profile"`
			Version *int64 `json:"version"`
		}
		_ = json.Unmarshal(body, &got)
		if len(got) == 0 || got[0].Version == nil {
			t.Fatalf("no version in %s", body)
		}
		return *got[0].Version
	}
	put := func(ifMatch, body string) int {
		req, _ := http.NewRequest(http.MethodPut, o.AdminURL+"/admin/policies/uk", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		if ifMatch != "" {
			req.Header.Set("If-Match", ifMatch)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	v := version()
	if s := put(fmt.Sprintf("%q", fmt.Sprint(v)), `{"settings":{"clock_skew":"5s"}}`); s != http.StatusOK {
		t.Fatalf("If-Match on the current version: %d", s)
	}
	if s := put(fmt.Sprintf("%q", fmt.Sprint(v)), `{"settings":{"clock_skew":"6s"}}`); s != http.StatusPreconditionFailed {
		t.Fatalf("If-Match on a stale version: %d", s)
	}
	if s := put("", `{"settings":{"clock_skew":"7s"}}`); s != http.StatusOK {
		t.Fatalf("without If-Match: %d", s)
	}
	if s := put("banana", `{"settings":{"clock_skew":"8s"}}`); s != http.StatusBadRequest {
		t.Fatalf("a malformed If-Match: %d", s)
	}
	if got := version(); got != v+2 {
		t.Fatalf("version %d after two saves from %d", got, v)
	}
}

// An obdcr on a fresh store fills its org index from the real Hydra's pages:
// registrations made before it started are found by org_id through the index,
// one deleted in Hydra directly is left out, and new ones are noted as made.
func TestOrgIndexFilledFromHydra(t *testing.T) {
	a := startObdcr(t, nil)
	before := []registered{registerTPP(t, a, sandbox.UK), registerTPP(t, a, sandbox.AU)}
	b := startObdcr(t, nil) // memory store: its index starts empty
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := sandbox.MetricSum(b.AdminURL+"/metrics", "obdcr_org_index_ready", nil)
		if err == nil && v == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the org index was not filled within 30 s (%v, %v)", v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	lookup := func(org string) []string {
		t.Helper()
		status, body := adminCall(t, b, http.MethodGet, "/admin/registrations?org_id="+org, "")
		var got []plugin.RegistrationView
		if err := json.Unmarshal(body, &got); status != 200 || err != nil {
			t.Fatalf("org lookup: %d %s", status, body)
		}
		var ids []string
		for _, g := range got {
			ids = append(ids, g.ClientID)
		}
		return ids
	}
	after := registerTPP(t, b, sandbox.UK)
	if err := hydraAdmin(t).Delete(context.Background(), before[1].clientID); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		org  string
		want []string
	}{
		{"registered before the start", before[0].tpp.OrgID, []string{before[0].clientID}},
		{"deleted in Hydra directly", before[1].tpp.OrgID, nil},
		{"registered after the start", after.tpp.OrgID, []string{after.clientID}},
	}
	for _, c := range cases {
		if got := lookup(c.org); !slices.Equal(got, c.want) {
			t.Fatalf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
