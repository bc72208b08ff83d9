package plugin_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/testenv"
)

// PostgreSQL frozen (a replica cut from its database): the admin API's store
// calls (a policy save, an audit page, a registrations list) are each answered
// 503 with Retry-After within the 10 s request budget, and a save refused so
// says nothing was changed. On the code of issue 31's fault run a PUT
// /admin/policies/uk was answered 200 after 19.5 s: the admin listener had no
// budget, and the save waited on the store for as long as it was frozen.
func TestAdminAnsweredWhileStoreFrozen(t *testing.T) {
	t.Parallel()
	dsn, pg := testenv.PostgresDatabase(t)
	o := startObdcr(t, func(c *serverConfig) { c.DSN = dsn })
	if err := pg.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Thaw() })
	// SIGSTOP reaches each PostgreSQL process a moment after kill returns: a
	// request sent at once could still be served.
	time.Sleep(200 * time.Millisecond)
	calls := []struct {
		method, path, body string
		mention            string // what the 503's description must say
	}{
		{http.MethodPut, "/admin/policies/uk", `{"settings":{"ssa_max_age":"23h"}}`, "nothing was changed"},
		{http.MethodGet, "/admin/audit?kind=policy", "", "store is unavailable"},
		{http.MethodGet, "/admin/registrations?org_id=frozen-org", "", "store is unavailable"},
	}
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(c.method, o.AdminURL+c.path, strings.NewReader(c.body))
			req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
			req.Header.Set("Content-Type", "application/json")
			start := time.Now()
			res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
			took := time.Since(start)
			if err != nil {
				t.Errorf("%s %s: no answer after %s: %v", c.method, c.path, took.Round(time.Millisecond), err)
				return
			}
			defer res.Body.Close()
			var body struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			_ = json.NewDecoder(res.Body).Decode(&body)
			if res.StatusCode != http.StatusServiceUnavailable || body.Error != "temporarily_unavailable" || res.Header.Get("Retry-After") == "" ||
				!strings.Contains(body.Description, c.mention) {
				t.Errorf("%s %s: %d %+v (Retry-After %q), want 503 temporarily_unavailable saying %q", c.method, c.path, res.StatusCode, body,
					res.Header.Get("Retry-After"), c.mention)
			}
			if took > 10*time.Second+budgetSlack {
				t.Errorf("%s %s answered after %s, past the 10 s budget", c.method, c.path, took.Round(time.Millisecond))
			}
			t.Logf("%s %s: %d after %s: %+v", c.method, c.path, res.StatusCode, took.Round(time.Millisecond), body)
		}()
	}
	wg.Wait()
}
