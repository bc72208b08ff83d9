package plugin_test

import (
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
	base := o.AdminURL + "/console"
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	if res, err := client.PostForm(base+"/login", url.Values{"token": {testenv.AdminToken}}); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %v %v", err, res)
	}
	page := func(res *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	form := csrfField.FindStringSubmatch(page(client.Get(base + "/dry-run")))
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
			body := page(client.PostForm(base+"/dry-run", url.Values{"csrf": {form[1]}, "jwt": {jwt}, "cert": {tc.cert}}))
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
