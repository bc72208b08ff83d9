package console

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

func multipartBody(t *testing.T, fields map[string]string) (io.Reader, string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Close()
	return &b, w.FormDataContentType()
}

// Forms are read only urlencoded and through a cap: a body over it is 413 and
// one of another type 415, before any token is compared or any CSRF token read.
func TestConsoleFormsAreCappedAndUrlencoded(t *testing.T) {
	tc := newTestConsole(t)
	cookie, csrf := tc.session()
	signInForm := func(extra int) string {
		return url.Values{"token": {adminTok}, "pad": {strings.Repeat("x", extra)}}.Encode()
	}
	mp, mpType := multipartBody(t, map[string]string{"token": adminTok})
	mpSigned, mpSignedType := multipartBody(t, map[string]string{"csrf": csrf, "jwt": "a.b.c"})
	dryRun := func(jwtLen int) io.Reader {
		return strings.NewReader(url.Values{"csrf": {csrf}, "jwt": {strings.Repeat("e", jwtLen)}}.Encode())
	}
	cases := []struct {
		name, path, contentType string
		body                    io.Reader
		signedIn                bool
		status                  int
		shows                   string
	}{
		{"a sign-in within 4 KiB", "/console/login", echo.MIMEApplicationForm, strings.NewReader(signInForm(3000)), false, http.StatusSeeOther, ""},
		{"a sign-in over 4 KiB, its length known", "/console/login", echo.MIMEApplicationForm, strings.NewReader(signInForm(5000)), false, http.StatusRequestEntityTooLarge, "over 4 KiB"},
		{"30 MiB at sign-in, streamed", "/console/login", echo.MIMEApplicationForm, filler(30 << 20), false, http.StatusRequestEntityTooLarge, "over 4 KiB"},
		{"a multipart sign-in", "/console/login", mpType, mp, false, http.StatusUnsupportedMediaType, "application/x-www-form-urlencoded"},
		{"30 MiB of multipart at sign-in", "/console/login", "multipart/form-data; boundary=x", filler(30 << 20), false, http.StatusUnsupportedMediaType, "urlencoded"},
		{"a sign-in as text", "/console/login", "text/plain", strings.NewReader("token=" + adminTok), false, http.StatusUnsupportedMediaType, "urlencoded"},
		{"a sign-in with no type", "/console/login", "", strings.NewReader("token=" + adminTok), false, http.StatusUnsupportedMediaType, "urlencoded"},
		{"a settings form over 64 KiB", "/console/profiles/uk", echo.MIMEApplicationForm,
			strings.NewReader(url.Values{"csrf": {csrf}, "scopes": {strings.Repeat("s", 65<<10)}}.Encode()), true, http.StatusRequestEntityTooLarge, "over 64 KiB"},
		{"a multipart settings form", "/console/profiles/uk", mpSignedType, mpSigned, true, http.StatusUnsupportedMediaType, "urlencoded"},
		{"a dry run of 60 KiB", "/console/dry-run", echo.MIMEApplicationForm, dryRun(60 << 10), true, http.StatusOK, "201 Created"},
		{"a dry run of a JWT over 64 KiB", "/console/dry-run", echo.MIMEApplicationForm, dryRun(100 << 10), true, http.StatusRequestEntityTooLarge, "is at most 64 KiB (POST /register and POST /admin/dry-run answer 413)"},
		{"a dry run of 1 MiB", "/console/dry-run", echo.MIMEApplicationForm, dryRun(1 << 20), true, http.StatusRequestEntityTooLarge, "over 128 KiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := tc.b.tokensCompared()
			ck := ""
			if c.signedIn {
				ck = cookie
			}
			rec := tc.request(http.MethodPost, c.path, "192.0.2.1:5000", c.contentType, c.body, ck)
			if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.shows) {
				t.Fatalf("%d %q, want %d showing %q", rec.Code, rec.Body.String(), c.status, c.shows)
			}
			if compared := tc.b.tokensCompared() - before; c.status >= 400 && compared != 0 {
				t.Fatalf("a refused form had %d token(s) compared", compared)
			}
		})
	}
}

// Sign-in failures back off by source address and, for name:token, by name:
// the first freeFailures go through at once, then a throttled attempt is 429
// with Retry-After and its token is never compared; the right token works once
// the wait is over.
func TestConsoleSignInBacksOff(t *testing.T) {
	tc := newTestConsole(t)
	const a, b, b2 = "198.51.100.7:1000", "[2001:db8:1:2::10]:1000", "[2001:db8:1:2::99]:2000"
	const wrong = "wrong-token-0000000000"
	type step struct {
		name       string
		after      time.Duration // since the step before
		from, tok  string
		status     int
		retryAfter string
		compared   bool
	}
	// free is the failures that cost nothing, from one address each, or all from one.
	free := func(name, tok string, from ...string) []step {
		var out []step
		for i := range freeFailures {
			out = append(out, step{fmt.Sprintf("%s: free failure %d", name, i+1), 0, from[i%len(from)], tok, http.StatusUnauthorized, "", true})
		}
		return out
	}
	var steps []step
	steps = append(steps, free("an address", wrong, a)...)
	steps = append(steps, []step{
		{"the right token after the free failures", 0, a, adminTok, http.StatusSeeOther, "", true},
	}...)
	steps = append(steps, free("again", wrong, a)...)
	steps = append(steps, []step{
		{"one failure more", 0, a, wrong, http.StatusUnauthorized, "", true},
		{"the right one at once", 0, a, adminTok, http.StatusTooManyRequests, "1", false},
		{"a wrong one after the 1 s wait", time.Second, a, wrong, http.StatusUnauthorized, "", true},
		{"the right one 1 s into the 2 s wait", time.Second, a, adminTok, http.StatusTooManyRequests, "1", false},
		{"the right one when the wait is over", time.Second, a, adminTok, http.StatusSeeOther, "", true},
		{"a success forgets the failures", 0, a, wrong, http.StatusUnauthorized, "", true},
		{"another address is not held back", 0, "203.0.113.9:1", adminTok, http.StatusSeeOther, "", true},
	}...)
	steps = append(steps, free("IPv6", wrong, b)...)
	steps = append(steps, []step{
		{"IPv6: one failure more", 0, b, wrong, http.StatusUnauthorized, "", true},
		{"IPv6: another address of the same /64 waits too", 0, b2, adminTok, http.StatusTooManyRequests, "1", false},
	}...)
	steps = append(steps, free("a name", "alice:"+wrong, "203.0.113.20:1", "203.0.113.21:1", "203.0.113.22:1")...)
	steps = append(steps, []step{
		{"a name: one failure more", 0, "203.0.113.23:1", "alice:" + wrong, http.StatusUnauthorized, "", true},
		{"alice's name waits from any address", 0, "203.0.113.24:1", "alice:" + aliceTok, http.StatusTooManyRequests, "1", false},
		{"alice's bare token is not held back by the name", 0, "203.0.113.24:1", aliceTok, http.StatusSeeOther, "", true},
	}...)
	steps = append(steps, free("an unknown name", "mallory:"+wrong, "203.0.113.30:1", "203.0.113.31:1", "203.0.113.32:1")...)
	steps = append(steps, []step{
		{"an unknown name: one failure more", 0, "203.0.113.33:1", "mallory:" + wrong, http.StatusUnauthorized, "", true},
		{"an unknown name is not tracked", 0, "203.0.113.34:1", "mallory:" + wrong, http.StatusUnauthorized, "", true},
	}...)
	for _, s := range steps {
		tc.at.advance(s.after)
		before := tc.b.tokensCompared()
		rec := tc.signIn(s.from, s.tok)
		if rec.Code != s.status || rec.Header().Get("Retry-After") != s.retryAfter {
			t.Fatalf("%s: %d Retry-After %q, want %d %q", s.name, rec.Code, rec.Header().Get("Retry-After"), s.status, s.retryAfter)
		}
		if compared := tc.b.tokensCompared() > before; compared != s.compared {
			t.Fatalf("%s: token compared %v, want %v", s.name, compared, s.compared)
		}
	}
	// The wait doubles to the cap and stays there.
	const c = "198.51.100.77:1"
	for range freeFailures {
		tc.signIn(c, wrong)
	}
	for n, want := range []int{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300} {
		if rec := tc.signIn(c, wrong); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", n+1, rec.Code)
		}
		if got := tc.signIn(c, adminTok).Header().Get("Retry-After"); got != fmt.Sprint(want) {
			t.Fatalf("after failure %d: Retry-After %s, want %d", n+1, got, want)
		}
		tc.at.advance(time.Duration(want) * time.Second)
	}
}

// Refused sign-ins are audited at most auditedPerHour times per address an
// hour; the rest are only counted. Throttled attempts are never audited.
func TestConsoleSignInAuditIsBounded(t *testing.T) {
	tc := newTestConsole(t)
	audited := func(from string) (n int) {
		for _, e := range tc.b.events {
			if e.Audit && e.Source == from {
				n++
			}
		}
		return n
	}
	cases := []struct {
		name             string
		from             string
		failures         int
		hourLater        bool
		wantAudited      int
		wantRefusedNotes int
	}{
		{"within the budget", "192.0.2.10", 3, false, 3, 3},
		{"past the budget (15 failures fit in an hour's backoff)", "192.0.2.11", 15, false, auditedPerHour, 15},
		{"an hour on, a new budget", "192.0.2.11", 2, true, auditedPerHour + 2, 17},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.hourLater {
				tc.at.advance(time.Hour)
			}
			for range c.failures {
				if rec := tc.signIn(c.from+":1", "wrong-token-0000000000"); rec.Code != http.StatusUnauthorized {
					t.Fatalf("a failure: %d", rec.Code)
				}
				wait := tc.h.failures.wait("addr:"+c.from, tc.at.now())
				if wait > 0 {
					// throttled: neither compared nor audited
					if rec := tc.signIn(c.from+":1", adminTok); rec.Code != http.StatusTooManyRequests {
						t.Fatalf("during a wait: %d", rec.Code)
					}
				}
				tc.at.advance(wait)
			}
			refused := 0
			for _, e := range tc.b.events {
				if e.Source == c.from && e.Outcome == "refused" {
					refused++
				}
			}
			if got := audited(c.from); got != c.wantAudited || refused != c.wantRefusedNotes {
				t.Fatalf("%d audited of %d refused, want %d of %d", got, refused, c.wantAudited, c.wantRefusedNotes)
			}
		})
	}
}

// A token or CSRF value is read from the posted body only, never from the URL's
// query, which proxies and browsers write to their logs and history.
func TestConsoleReadsFormsFromTheBodyOnly(t *testing.T) {
	tc := newTestConsole(t)
	cookie, csrf := tc.session()
	cases := []struct {
		name, path, body string
		cookie           string
		want             int
	}{
		{"the token in the query, none in the body", "/console/login?token=" + url.QueryEscape(adminTok), "", "", http.StatusUnauthorized},
		{"the token in the body", "/console/login", url.Values{"token": {adminTok}}.Encode(), "", http.StatusSeeOther},
		{"the CSRF token in the query", "/console/profiles/uk?csrf=" + url.QueryEscape(csrf), "enabled=on", cookie, http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := tc.request(http.MethodPost, c.path, "192.0.2.9:5000", echo.MIMEApplicationForm, strings.NewReader(c.body), c.cookie)
			if rec.Code != c.want {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body.String(), c.want)
			}
		})
	}
}
