package plugin_test

import (
	"context"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
)

var (
	csrfField   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	certVerdict = regexp.MustCompile(`<code>transport_certificate</code></td><td data-label="verdict" class="(\w+)"`)
)

// The console's dry run takes the TPP's transport certificate as PEM and judges
// it as the endpoint would: the TPP's own passes, another's fails, and what is
// not a certificate is said so beside the form, with nothing judged.
func TestConsoleDryRunWithACertificate(t *testing.T) {
	o := startObdcr(t, nil)
	client, base := consoleSession(t, o)
	form := csrfField.FindStringSubmatch(consolePage(t)(client.Get(base + "/dry-run")))
	if form == nil {
		t.Fatal("no CSRF token on the dry-run page")
	}

	tpp, _ := newTPP(t, sandbox.UK)
	own, err := tpp.Transport()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := env.Sandbox.PKI().Client(pkix.Name{OrganizationalUnit: []string{"another-org"}, CommonName: "another-software"}, nil)
	jwt := request(t, tpp, nil, nil)
	cases := []struct {
		name, cert string
		verdict    string // of transport_certificate; "" when nothing is judged
		shows      string
	}{
		{"no certificate", "", "skipped", "201 Created"},
		{"the TPP's own", string(own.CertPEM), "pass", "201 Created"},
		{"another TPP's", string(other.CertPEM), "fail", "unapproved_software_statement"},
		{"not PEM", "hello", "", "the certificate is not PEM"},
		{"a key, not a certificate", string(own.KeyPEM), "", "the certificate is not PEM"},
		{"PEM that is no certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "", "the certificate: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := consolePage(t)(client.PostForm(base+"/dry-run", url.Values{"csrf": {form[1]}, "jwt": {jwt}, "cert": {tc.cert}}))
			got := ""
			if m := certVerdict.FindStringSubmatch(body); m != nil {
				got = m[1]
			}
			if got != tc.verdict || !strings.Contains(body, tc.shows) {
				t.Fatalf("transport_certificate %q, want %q; page shows %q: %v", got, tc.verdict, tc.shows, strings.Contains(body, tc.shows))
			}
		})
	}
}

// consoleSession signs in to o's console as a browser would, without one.
func consoleSession(t *testing.T, o *testenv.Obdcr) (*http.Client, string) {
	t.Helper()
	base := o.AdminURL + "/console"
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	if res, err := client.PostForm(base+"/login", url.Values{"token": {testenv.AdminToken}}); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %v %v", err, res)
	}
	return client, base
}

// consolePage reads a console answer's HTML: consolePage(t)(client.Get(u)).
func consolePage(t *testing.T) func(*http.Response, error) string {
	return func(res *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
}

// The console's search finds a registration by client_id, software_id or
// org_id, and says "No registration matches." for an unknown id and for a
// Hydra client obdcr did not register (the bank's own apps are not TPPs').
func TestConsoleSearchesRegistrations(t *testing.T) {
	o := startObdcr(t, nil)
	client, base := consoleSession(t, o)
	r := registerTPP(t, o, sandbox.UK)
	reg, err := hydraAdmin(t).Get(context.Background(), r.clientID)
	if err != nil {
		t.Fatal(err)
	}
	native := `{"client_id":"bank-app-` + strings.ToLower(r.tpp.SoftwareID) + `","owner":"` + reg.Owner + `","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic"}`
	res, err := http.Post(env.Hydra.AdminURL+"/admin/clients", "application/json", strings.NewReader(native))
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("a client of the bank's own: %v %v", err, res)
	}
	t.Cleanup(func() { _ = hydraAdmin(t).Delete(context.Background(), "bank-app-"+strings.ToLower(r.tpp.SoftwareID)) })
	cases := []struct {
		query string
		found bool
	}{
		{"client_id=" + r.clientID, true},
		{"software_id=" + r.tpp.SoftwareID, true},
		{"org_id=" + reg.Owner, true},
		{"client_id=00000000-0000-0000-0000-000000000000", false},
		{"client_id=bank-app-" + strings.ToLower(r.tpp.SoftwareID), false},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			body := consolePage(t)(client.Get(base + "/registrations?" + tc.query))
			found := strings.Contains(body, `href="/console/registrations/`+r.clientID+`"`)
			if found != tc.found || found == strings.Contains(body, "No registration matches.") {
				t.Fatalf("found %v, want %v:\n%s", found, tc.found, body)
			}
			if strings.Contains(body, "bank-app-") && !strings.Contains(tc.query, "bank-app-") {
				t.Fatal("the bank's own client is listed among TPP registrations")
			}
		})
	}
}

// The console against a real obdcr: 30 MiB sign-in bodies are refused unread
// (multipart 415, urlencoded 413); a wrong token is 401, audited as a
// console_sign_in refusal and counted; after the free failures the address
// waits (429 with Retry-After); an unknown registration is a 404 page, not a 500.
func TestConsoleSignInAgainstObdcr(t *testing.T) {
	o := startObdcr(t, nil)
	client, base := consoleSession(t, o)
	post := func(contentType string, body io.Reader) (int, string) {
		t.Helper()
		res, err := http.Post(base+"/login", contentType, body)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Retry-After") + " " + string(b)
	}
	huge := func() io.Reader { return io.LimitReader(strings.NewReader(strings.Repeat("token=", 1<<20)), 30<<20) }
	wrong := func() io.Reader { return strings.NewReader(url.Values{"token": {"wrong-token-0123456789"}}.Encode()) }
	cases := []struct {
		name        string
		contentType string
		body        func() io.Reader
		status      int
		shows       string
	}{
		{"30 MiB of multipart", "multipart/form-data; boundary=x", huge, http.StatusUnsupportedMediaType, "urlencoded"},
		{"30 MiB urlencoded", "application/x-www-form-urlencoded", huge, http.StatusRequestEntityTooLarge, "over 4 KiB"},
		{"a wrong token", "application/x-www-form-urlencoded", wrong, http.StatusUnauthorized, "not an admin token"},
		{"a second", "application/x-www-form-urlencoded", wrong, http.StatusUnauthorized, "not an admin token"},
		{"a third", "application/x-www-form-urlencoded", wrong, http.StatusUnauthorized, "not an admin token"},
		{"a fourth", "application/x-www-form-urlencoded", wrong, http.StatusUnauthorized, "not an admin token"},
		{"then the address waits", "application/x-www-form-urlencoded", wrong, http.StatusTooManyRequests, "1 "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if status, body := post(c.contentType, c.body()); status != c.status || !strings.Contains(body, c.shows) {
				t.Fatalf("%d %.200q, want %d showing %q", status, body, c.status, c.shows)
			}
		})
	}
	_, body := adminCall(t, o, http.MethodGet, "/admin/audit?kind=console_sign_in", "")
	if n := strings.Count(string(body), `"kind":"console_sign_in"`); n < 1 || n > 4 {
		t.Errorf("%d console_sign_in entries for 4 refusals, want 1 to 4:\n%s", n, body)
	}
	for outcome, want := range map[string]float64{"refused": 4, "throttled": 1} {
		if v, err := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_console_sign_ins_total", map[string]string{"outcome": outcome}); err != nil || v != want {
			t.Errorf("obdcr_console_sign_ins_total{outcome=%q} = %v (%v), want %v", outcome, v, err, want)
		}
	}
	page := consolePage(t)(client.Get(base + "/registrations/00000000-0000-0000-0000-000000000000"))
	if !strings.Contains(page, "No registration with that client_id.") || !strings.Contains(page, `value="00000000-0000-0000-0000-000000000000"`) {
		t.Fatalf("an unknown registration:\n%s", page)
	}
	res, err := client.Get(base + "/registrations/00000000-0000-0000-0000-000000000000")
	if err != nil || res.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown registration: %v %v", err, res)
	}
	res.Body.Close()
}
