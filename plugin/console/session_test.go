package console

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// A session kept busy slides, but no session lives past SessionMax from its
// sign-in; and its cookie never says it lives longer.
func TestConsoleSessionHasAnAbsoluteLifetime(t *testing.T) {
	cases := []struct {
		name  string
		max   time.Duration
		later time.Duration // SessionMax once signed in (a restart with a lower one); 0: unchanged
		every time.Duration // between pages
		pages int           // pages seen
		ends  bool          // the next page after them is refused
	}{
		{"the default, busy all day: the 8 hours end it", DefaultSessionMax, 0, 20 * time.Minute, 24, true},
		{"the default, busy half a day: still on", DefaultSessionMax, 0, 20 * time.Minute, 12, false},
		{"idle past 30 minutes ends it well before", DefaultSessionMax, 0, 31 * time.Minute, 1, true},
		{"a short maximum", time.Hour, 0, 10 * time.Minute, 6, true},
		{"a maximum lowered after the sign-in holds", DefaultSessionMax, 10 * time.Minute, 25 * time.Minute, 1, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tc := newTestConsole(t)
			tc.h.SessionMax = c.max
			signedIn := tc.at.now()
			cookie, _ := tc.session()
			if c.later != 0 {
				tc.h.SessionMax = c.later
			}
			for i := range c.pages {
				tc.at.advance(c.every)
				rec := tc.request(http.MethodGet, "/console/", "192.0.2.5:1", "", nil, cookie)
				last := i == c.pages-1
				if rec.Code != http.StatusOK {
					if last && c.ends {
						return // refused at the end, as it should be
					}
					t.Fatalf("page %d, %s after sign-in: %d", i+1, tc.at.now().Sub(signedIn), rec.Code)
				}
				for _, ck := range rec.Result().Cookies() {
					if ck.Name != cookieName {
						continue
					}
					if end := tc.at.now().Add(time.Duration(ck.MaxAge) * time.Second); end.After(signedIn.Add(tc.h.SessionMax)) {
						t.Fatalf("page %d: the cookie lives to %s, past the maximum %s", i+1, end, signedIn.Add(tc.h.SessionMax))
					}
					cookie = ck.Value
				}
			}
			tc.at.advance(c.every)
			rec := tc.request(http.MethodGet, "/console/", "192.0.2.5:1", "", nil, cookie)
			if ended := rec.Code == http.StatusSeeOther && rec.Header().Get("Location") == "/console/login"; ended != c.ends {
				t.Fatalf("%s after sign-in: %d %s, want ended %v", tc.at.now().Sub(signedIn), rec.Code, rec.Header().Get("Location"), c.ends)
			}
		})
	}
}

// A registration that is not there is a 404 page that says so, with the search
// form filled in; a backend outage is not passed off as "not there".
func TestConsoleUnknownRegistration(t *testing.T) {
	cases := []struct {
		name, path string
		err        error
		status     int
		shows      string
	}{
		{"the page", "/console/registrations/no-such-client", policy.ErrNoRegistration, http.StatusNotFound, "No registration with that client_id."},
		{"its id kept in the form", "/console/registrations/no-such-client", policy.ErrNoRegistration, http.StatusNotFound, `value="no-such-client"`},
		{"the delete confirmation", "/console/registrations/no-such-client/delete", policy.ErrNoRegistration, http.StatusNotFound, "No registration with that client_id."},
		{"Hydra down", "/console/registrations/some-client", &policy.Unavailable{Dependency: "hydra", Err: errors.New("refused")}, http.StatusInternalServerError, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tc := newTestConsole(t)
			tc.b.regErr = c.err
			cookie, _ := tc.session()
			rec := tc.request(http.MethodGet, c.path, "192.0.2.5:1", "", nil, cookie)
			if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.shows) {
				t.Fatalf("%d, want %d showing %q:\n%s", rec.Code, c.status, c.shows, rec.Body)
			}
		})
	}
}

// The failure table is bounded: past its size the key used least recently is
// forgotten, and the others keep their wait.
func TestThrottleForgetsTheOldestPastItsBound(t *testing.T) {
	th := newThrottle(3)
	now := time.Unix(1_700_000_000, 0)
	fail := func(k string) {
		for range freeFailures + 1 {
			th.fail(k, now)
		}
	}
	for _, k := range []string{"a", "b", "c"} {
		fail(k)
	}
	th.fail("a", now) // a is now the most recent
	fail("d")         // b, the least recent, goes
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if waits := th.wait(k, now) > 0; waits != want {
			t.Errorf("%s waits %v, want %v", k, waits, want)
		}
	}
	if len(th.keys) != 3 || th.order.Len() != 3 {
		t.Fatalf("%d keys, %d in order; want 3", len(th.keys), th.order.Len())
	}
}

// A sign-in's source is its peer address (IPv6 by /64), or behind a trusted
// proxy the address it appended; anyone else's X-Forwarded-For is ignored.
func TestSignInSource(t *testing.T) {
	cases := []struct {
		name, remote, xff string
		trusted           bool
		want              string
	}{
		{"IPv4", "192.0.2.1:443", "", false, "192.0.2.1"},
		{"IPv4 mapped in IPv6", "[::ffff:192.0.2.1]:443", "", false, "192.0.2.1"},
		{"IPv6 by its /64", "[2001:db8:1:2:3:4:5:6]:443", "", false, "2001:db8:1:2::/64"},
		{"an untrusted X-Forwarded-For is ignored", "192.0.2.1:443", "203.0.113.5", false, "192.0.2.1"},
		{"a trusted proxy's last entry", "10.0.0.1:443", "6.6.6.6, 203.0.113.5", true, "203.0.113.5"},
		{"a trusted proxy without the header", "10.0.0.1:443", "", true, "10.0.0.1"},
		{"garbage from a trusted proxy", "10.0.0.1:443", "not-an-address", true, "unknown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := New(&fakeBackend{}, func(*http.Request) bool { return c.trusted })
			r := httptest.NewRequest(http.MethodPost, "/console/login", nil)
			r.RemoteAddr = c.remote
			if c.xff != "" {
				r.Header.Set("X-Forwarded-For", c.xff)
			}
			if got := h.source(r); got != c.want {
				t.Fatalf("%q, want %q", got, c.want)
			}
		})
	}
}
