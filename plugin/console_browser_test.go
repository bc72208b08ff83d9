package plugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
)

// chromium finds Debian's Chromium, which deploy/scripts/test.sh installs.
func chromium(t *testing.T) string {
	p, err := testenv.Chromium()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// browser is a headless Chromium; dialogs counts JavaScript dialogs it opened.
func browser(t *testing.T) (context.Context, *atomic.Int32) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox,
		chromedp.Flag("headless", "new"), chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1440, 1000))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	var dialogs atomic.Int32
	opened := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range opened {
			if err != nil {
				return
			}
			dialogs.Add(1)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return ctx, &dialogs
}

// signedIn is the console's navigation, shown only to a signed-in admin.
const signedIn = `nav[aria-label="Console"]`

func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A policy admin does from the console what the CLI does, in a real Chromium,
// against a real obdcr and Hydra.
func TestConsoleInChromium(t *testing.T) {
	o := startObdcr(t, withRegister)
	ctx, dialogs := browser(t)
	base := o.AdminURL + "/console"

	// Sign in: a wrong token is refused, the right one lets in.
	run(t, ctx, chromedp.Navigate(base+"/login"), chromedp.SendKeys(chromedp.CSS("#token"), "wrong-token-0123456789"), chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS(".alert")))
	if s := text(t, ctx, ".alert"); !strings.Contains(s, "not an admin token") {
		t.Fatalf("wrong token: %q", s)
	}
	// The sign-in page has an h1 of its own: wait for the navigation only a signed-in page shows.
	run(t, ctx, chromedp.SendKeys(chromedp.CSS("#token"), testenv.AdminToken), chromedp.Submit(chromedp.CSS("#token")), chromedp.WaitVisible(chromedp.CSS(signedIn)))
	if s := text(t, ctx, "h1"); s != "Overview" {
		t.Fatalf("after sign-in: %q", s)
	}

	// Switch UK off: a UK registration is refused; the audit shows the change under the token's name.
	run(t, ctx, chromedp.Navigate(base+"/profiles"),
		chromedp.Click(chromedp.CSS(`form[action="/console/profiles/uk"] input[name=enabled]`)),
		chromedp.Click(chromedp.CSS(`form[action="/console/profiles/uk"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if s := text(t, ctx, ".flash"); !strings.Contains(s, "enabled: true → false") {
		t.Fatalf("saving shows what changed: %q", s)
	}
	tpp, c := newTPP(t, sandbox.UK)
	if res, _ := c.Register(context.Background(), o.URL, request(t, tpp, nil, nil)); res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), "switched off") {
		t.Fatalf("UK off in the console, a UK registration: %d %s", res.Status, res.Body)
	}
	run(t, ctx, chromedp.Navigate(base+"/audit?kind=policy"), chromedp.WaitVisible(chromedp.CSS("table")))
	if s := text(t, ctx, "tbody tr:first-child"); !strings.Contains(s, "admin admin") || !strings.Contains(s, "enabled") {
		t.Fatalf("the audit's newest policy change: %q", s)
	}
	run(t, ctx, chromedp.Navigate(base+"/profiles"),
		chromedp.Click(chromedp.CSS(`form[action="/console/profiles/uk"] input[name=enabled]`)),
		chromedp.Click(chromedp.CSS(`form[action="/console/profiles/uk"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(".flash")))

	// A bad value: the error beside the field, nothing saved.
	_, before := adminCall(t, o, http.MethodGet, "/admin/policies", "")
	run(t, ctx, chromedp.Navigate(base+"/profiles"), chromedp.SetValue(chromedp.CSS("#uk-ssa_max_age"), "banana"),
		chromedp.Click(chromedp.CSS(`form[action="/console/profiles/uk"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#uk-ssa_max_age-err")))
	if s := text(t, ctx, "#uk-ssa_max_age-err"); !strings.Contains(s, "ssa_max_age") || !strings.Contains(s, "banana") {
		t.Fatalf("the error beside the field: %q", s)
	}
	if _, after := adminCall(t, o, http.MethodGet, "/admin/policies", ""); string(after) != string(before) {
		t.Fatalf("a refused value changed the policy:\n%s\n%s", before, after)
	}

	// A TPP-chosen name full of markup shows as text.
	evil := `<img src=x onerror=alert(1)>`
	xtpp, xc := newTPP(t, sandbox.UK)
	res, _ := xc.Register(context.Background(), o.URL, request(t, xtpp, func(m map[string]any) { m["software_client_name"] = evil }, nil))
	if res.Status != http.StatusCreated {
		t.Fatalf("%d %s", res.Status, res.Body)
	}
	xid := res.JSON()["client_id"].(string)
	for _, u := range []string{"/registrations?software_id=" + xtpp.SoftwareID, "/registrations/" + xid, "/audit?software_id=" + xtpp.SoftwareID} {
		run(t, ctx, chromedp.Navigate(base+u), chromedp.WaitVisible(chromedp.CSS("h1")))
		body := text(t, ctx, "main")
		if u != "/audit?software_id="+xtpp.SoftwareID && !strings.Contains(body, evil) {
			t.Errorf("%s does not show the name as text", u)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll("main img").length`); n != 0 {
			t.Errorf("%s has %d img elements", u, n)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if dialogs.Load() != 0 {
		t.Fatalf("%d JavaScript dialogs fired", dialogs.Load())
	}

	// A dry run of a request with three faults shows three failing rules.
	faulty := request(t, tpp, nil, func(m map[string]any) {
		m["redirect_uris"] = []string{"https://evil.example/cb"}
		m["token_endpoint_auth_method"] = "tls_client_auth"
		delete(m, "token_endpoint_auth_signing_alg")
		m["id_token_signed_response_alg"] = "RS256"
	})
	run(t, ctx, chromedp.Navigate(base+"/dry-run"), chromedp.SetValue(chromedp.CSS("#jwt"), faulty),
		chromedp.Click(chromedp.CSS(`form[action="/console/dry-run"] button`)), chromedp.WaitVisible(chromedp.CSS("#verdicts")))
	if n := eval[int](t, ctx, `document.querySelectorAll("td.fail").length`); n != 3 {
		t.Fatalf("%d failing rules shown, want 3", n)
	}

	// Delete a registration behind a confirmation that names it; the TPP registers again.
	run(t, ctx, chromedp.Navigate(base+"/registrations/"+xid), chromedp.Click(chromedp.CSS(`a.button`)), chromedp.WaitVisible(chromedp.CSS("button.danger")))
	if s := text(t, ctx, "main .card p"); !strings.Contains(s, xid) {
		t.Fatalf("the confirmation does not name the client: %q", s)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS("button.danger")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if res, _ := xc.Register(context.Background(), o.URL, request(t, xtpp, nil, nil)); res.Status != http.StatusCreated {
		t.Fatalf("re-registration after a console delete: %d %s", res.Status, res.Body)
	}

	// Every page: labels on every field, and usable at 360 px wide.
	pages := []string{"/", "/profiles", "/registrations?software_id=" + xtpp.SoftwareID, "/audit", "/dry-run"}
	for _, width := range []int64{360, 1440} {
		run(t, ctx, chromedp.EmulateViewport(width, 900))
		for _, p := range pages {
			run(t, ctx, chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.CSS("h1")))
			unlabelled := eval[int](t, ctx, `[...document.querySelectorAll("input:not([type=hidden]), select, textarea")].filter(e => e.labels.length === 0).length`)
			if unlabelled != 0 {
				t.Errorf("%s: %d fields without a label", p, unlabelled)
			}
			if width == 360 {
				if over := eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth + 1`); over {
					t.Errorf("%s overflows a 360 px screen", p)
				}
			}
		}
	}
	if dir := os.Getenv("OBDCR_SCREENSHOTS"); dir != "" {
		screenshots(t, ctx, base, dir, xtpp.SoftwareID, faulty)
	}

	// Sign out: the pages ask to sign in again.
	run(t, ctx, chromedp.Navigate(base+"/"), chromedp.Click(chromedp.CSS("button.link")), chromedp.WaitVisible(chromedp.CSS("#token")))
	run(t, ctx, chromedp.Navigate(base+"/profiles"), chromedp.WaitVisible(chromedp.CSS("#token")))
}

// A form posted from another origin, a cross-site page auto-submitting in the
// browser or a scripted post without the CSRF token, is refused with 403.
func TestConsoleRefusesCrossSitePosts(t *testing.T) {
	o := startObdcr(t, nil)
	base := o.AdminURL + "/console"
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.PostForm(base+"/login", url.Values{"token": {testenv.AdminToken}})
	if err != nil || res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %v %v", err, res)
	}
	ck := res.Cookies()[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console/" {
		t.Fatalf("session cookie %+v", ck)
	}
	post := func(origin string, form url.Values) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/profiles/uk", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := post("", url.Values{"enabled": {""}}); s != http.StatusForbidden {
		t.Errorf("a post without the CSRF token: %d", s)
	}
	if s := post("http://evil.example", url.Values{"enabled": {""}, "csrf": {"guess"}}); s != http.StatusForbidden {
		t.Errorf("a cross-origin post: %d", s)
	}
	// In the browser: a page on another origin submits a form to the console. The form is
	// submitted once the page has loaded: a script submitting it while chromedp still waits for
	// that load aborts the load (net::ERR_ABORTED), which is chromedp's race, not the console's.
	ctx, _ := browser(t)
	run(t, ctx, chromedp.Navigate(base+"/login"), chromedp.SendKeys(chromedp.CSS("#token"), testenv.AdminToken), chromedp.Submit(chromedp.CSS("#token")), chromedp.WaitVisible(chromedp.CSS(signedIn)))
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<form id=f method=post action="%s/profiles/uk"><input name=enabled value=""><button id=go>win a prize</button></form>`, base)
	}))
	defer evil.Close()
	run(t, ctx, chromedp.Navigate(evil.URL), chromedp.WaitVisible(chromedp.CSS("#go")), chromedp.Click(chromedp.CSS("#go")))
	body := ""
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		// An evaluation during the navigation can fail (its page is going away): ask again.
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.location.href.startsWith(`+strconv.Quote(base)+`) && document.readyState === "complete" ? document.body.innerText : ""`))
		if body = got; err == nil && body != "" {
			break
		}
	}
	if !strings.Contains(body, "sign in first") && !strings.Contains(body, "refused") {
		t.Errorf("the cross-site form got: %q", body)
	}
	_, policies := adminCall(t, o, http.MethodGet, "/admin/policies", "")
	var got []struct{ Enabled bool }
	_ = json.Unmarshal(policies, &got)
	if len(got) == 0 || !got[0].Enabled {
		t.Fatalf("a cross-site post switched UK off: %s", policies)
	}
	// Headers on every page.
	res, _ = client.Get(base + "/login")
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") ||
		res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Get("Referrer-Policy") == "" {
		t.Errorf("headers %v", res.Header)
	}
}

func TestConsoleSwitchedOff(t *testing.T) {
	o := startObdcr(t, func(c *serverConfig) { c.Console = false })
	res, err := http.Get(o.AdminURL + "/console/login")
	if err != nil || res.StatusCode != http.StatusNotFound {
		t.Fatalf("OBDCR_CONSOLE=false: %v %v", err, res)
	}
}

// screenshots writes each page at 1440 and 390 px wide (make screenshots).
func screenshots(t *testing.T, ctx context.Context, base, dir, softwareID, faulty string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shots := []struct {
		name string
		act  []chromedp.Action[chromedp.Void]
	}{
		{"overview", []chromedp.Action[chromedp.Void]{chromedp.Navigate(base + "/")}},
		{"profiles", []chromedp.Action[chromedp.Void]{chromedp.Navigate(base + "/profiles")}},
		{"registrations", []chromedp.Action[chromedp.Void]{chromedp.Navigate(base + "/registrations?software_id=" + softwareID)}},
		{"audit", []chromedp.Action[chromedp.Void]{chromedp.Navigate(base + "/audit")}},
		{"dry-run", []chromedp.Action[chromedp.Void]{chromedp.Navigate(base + "/dry-run"), chromedp.SetValue(chromedp.CSS("#jwt"), faulty),
			chromedp.Click(chromedp.CSS(`form[action="/console/dry-run"] button`)), chromedp.WaitVisible(chromedp.CSS("#verdicts"))}},
	}
	for _, width := range []int64{1440, 390} {
		for _, s := range shots {
			run(t, ctx, chromedp.EmulateViewport(width, 900))
			run(t, ctx, s.act...)
			run(t, ctx, chromedp.WaitVisible(chromedp.CSS("h1")))
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, fmt.Sprintf("%s-%d.png", s.name, width))
			if err := os.WriteFile(path, png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Signing out ends the session on every replica, not only in this browser: a
// copy of the cookie taken before (a shared computer, a proxy's log) is refused
// afterwards, as ASVS 3.3.1 asks.
func TestConsoleSignOutEndsTheSessionEverywhere(t *testing.T) {
	dsn := "sqlite://" + t.TempDir() + "/obdcr.db"
	a := startObdcr(t, func(c *serverConfig) { c.DSN = dsn })
	b := startObdcr(t, func(c *serverConfig) { c.DSN = dsn })
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	jar, _ := cookiejar.New(nil)
	browserA := &http.Client{Jar: jar, CheckRedirect: noRedirect}
	res, err := browserA.PostForm(a.AdminURL+"/console/login", url.Values{"token": {testenv.AdminToken}})
	if err != nil || res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %v %v", err, res)
	}
	stolen := res.Cookies()[0]
	// page fetches a console page with only the stolen cookie; a post carries the
	// session's CSRF token too (csrf, once read), so only the session decides.
	var csrf string
	page := func(o *testenv.Obdcr, method string) int {
		path := map[string]string{http.MethodGet: "/console/profiles", http.MethodPost: "/console/profiles/uk"}[method]
		req, _ := http.NewRequest(method, o.AdminURL+path, strings.NewReader(url.Values{"csrf": {csrf}, "enabled": {"on"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(stolen)
		res, err := (&http.Client{CheckRedirect: noRedirect}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, o := range []*testenv.Obdcr{a, b} {
		if s := page(o, http.MethodGet); s != http.StatusOK {
			t.Fatalf("the session before signing out, on %s: %d", o.AdminURL, s)
		}
	}
	// Sign out from the page's own form, CSRF token included.
	res, err = browserA.Get(a.AdminURL + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(html)
	if m == nil {
		t.Fatalf("no CSRF token on the overview")
	}
	csrf = string(m[1])
	req, _ := http.NewRequest(http.MethodPost, b.AdminURL+"/console/logout", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(stolen)
	if res, err := (&http.Client{CheckRedirect: noRedirect}).Do(req); err != nil || res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/console/login" {
		t.Fatalf("sign-out on the other replica: %v %v", err, res)
	}
	for _, o := range []*testenv.Obdcr{a, b} {
		if s := page(o, http.MethodGet); s != http.StatusSeeOther {
			t.Errorf("the copied cookie after signing out, on %s: %d, want the sign-in page", o.AdminURL, s)
		}
		if s := page(o, http.MethodPost); s != http.StatusForbidden {
			t.Errorf("a post with the copied cookie after signing out, on %s: %d", o.AdminURL, s)
		}
	}
	// A new sign-in is a new session.
	if res, err := browserA.PostForm(a.AdminURL+"/console/login", url.Values{"token": {testenv.AdminToken}}); err != nil || res.StatusCode != http.StatusSeeOther {
		t.Fatalf("signing in again: %v %v", err, res)
	}
	if res, err := browserA.Get(b.AdminURL + "/console/profiles"); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("the new session on the other replica: %v %v", err, res)
	}
}
