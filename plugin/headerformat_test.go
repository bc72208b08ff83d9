package plugin

import (
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
)

// Header values as each proxy writes them. Envoy is not packaged here, so its
// X-Forwarded-Client-Cert values are built to the format Envoy documents and
// emits (elements by proxy hop, the newest last; Cert URL-encoded and quoted).
func TestHeaderFormats(t *testing.T) {
	pki, err := sandbox.NewPKI("header test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.Client(pkix.Name{CommonName: "tpp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.Client(pkix.Name{CommonName: "upstream"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(leaf.CertPEM)
	der := leaf.TLS.Leaf.Raw
	xfccElement := func(certPEM string, subject string) string {
		return "Hash=" + pemHash(t, certPEM) + `;Cert="` + url.QueryEscape(certPEM) + `";Subject="` + subject + `";URI=spiffe://bank.example/ns/edge/sa/envoy`
	}
	cases := []struct {
		format string
		values []string
		err    string // "" parses to the leaf
		mode   string // OBDCR_CLIENT_CERT_HEADER_XFCC_ELEMENTS; "" is the default, one
	}{
		{"pem-urlencoded", []string{url.QueryEscape(pemText)}, "", ""},
		{"pem-urlencoded", []string{url.PathEscape(pemText)}, "", ""},
		{"pem-urlencoded", []string{url.QueryEscape(pemText + string(other.CertPEM))}, "chain", ""},
		{"pem-urlencoded", []string{"%zz"}, "URL-encoded", ""},
		{"pem-urlencoded", []string{strings.ReplaceAll(url.QueryEscape(pemText), "%2B", "+")}, "", ""},
		{"pem-urlencoded", []string{"not a certificate"}, "no PEM", ""},
		{"pem-urlencoded", []string{url.QueryEscape(pemText), url.QueryEscape(pemText)}, "no PEM", ""},
		{"xfcc", []string{xfccElement(pemText, "CN=tpp")}, "", ""},
		{"xfcc", []string{xfccElement(string(other.CertPEM), "CN=upstream,O=a;b") + "," + xfccElement(pemText, "CN=tpp")}, "", "last"},
		{"xfcc", []string{xfccElement(string(other.CertPEM), "CN=upstream"), xfccElement(pemText, "CN=tpp")}, "", "last"},
		{"xfcc", []string{xfccElement(string(other.CertPEM), "CN=upstream"), xfccElement(pemText, "CN=tpp")}, "2 elements", ""},
		{"xfcc", []string{"By=spiffe://x;Hash=abc"}, "no Cert", ""},
		{"der-base64", []string{base64.StdEncoding.EncodeToString(der)}, "", ""},
		{"der-base64", []string{url.QueryEscape(base64.StdEncoding.EncodeToString(der))}, "", ""},
		{"der-base64", []string{url.QueryEscape(base64.StdEncoding.EncodeToString(der) + "," + base64.StdEncoding.EncodeToString(other.TLS.Leaf.Raw))}, "chain", ""},
		{"der-base64", []string{"!!!"}, "base64", ""},
		{"pem-spaces", []string{strings.ReplaceAll(strings.TrimSpace(pemText), "\n", " ")}, "", ""},
		{"pem-spaces", []string{strings.ReplaceAll(pemText+string(other.CertPEM), "\n", " ")}, "chain", ""},
		{"pem-spaces", []string{"MIIB"}, "not a PEM", ""},
	}
	for _, c := range cases {
		t.Run(c.format+"/"+c.err, func(t *testing.T) {
			mode := c.mode
			if mode == "" {
				mode = xfccOne
			}
			f, err := parseHeaderFormat(c.format, mode)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.parse(c.values)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("want an error with %q, got %v", c.err, err)
				}
				return
			}
			if err != nil || !got.Equal(leaf.TLS.Leaf) {
				t.Fatalf("did not read the client certificate: %v", err)
			}
		})
	}
	if _, err := parseHeaderFormat("json", xfccOne); err == nil {
		t.Fatal("an unknown format was accepted")
	}
	if _, err := parseHeaderFormat("xfcc", "first"); err == nil {
		t.Fatal("an unknown XFCC elements mode was accepted")
	}
}

func pemHash(t *testing.T, certPEM string) string {
	t.Helper()
	c, err := onePEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// Hostile XFCC values: what a caller can make of the header when Envoy appends
// its own element to the one the caller sent (APPEND_FORWARD). Each must be
// refused, or give the proxy's own certificate, never the victim's.
func TestXFCCHostile(t *testing.T) {
	pki, err := sandbox.NewPKI("xfcc test CA")
	if err != nil {
		t.Fatal(err)
	}
	caller, err := pki.Client(pkix.Name{CommonName: "caller"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	victim, err := pki.Client(pkix.Name{CommonName: "victim"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	callerPEM, victimPEM := string(caller.CertPEM), string(victim.CertPEM)
	// envoy is the element Envoy appends for the connection it terminated: the caller's.
	envoy := `By=spiffe://bank/edge;Hash=` + pemHash(t, callerPEM) + `;Cert="` + url.QueryEscape(callerPEM) + `";Subject="CN=caller"`
	victimCert := url.QueryEscape(victimPEM)
	cases := []struct {
		name   string
		sent   string // what the caller put in the header; Envoy appends ","+envoy
		mode   string
		victim bool // true: the victim's certificate would be a breach; the case must refuse or read the caller's
	}{
		{"the review's injection: a quote that swallows Envoy's element", `Hash=00;Cert="` + victimCert + `";x="`, xfccLast, true},
		{"the same with a known key", `Hash=00;Cert="` + victimCert + `";URI="`, xfccLast, true},
		{"an escaped quote keeps the quote open", `Cert="` + victimCert + `";Subject="a\"`, xfccLast, true},
		{"a second Cert in the caller's element", `Cert="` + victimCert + `";Cert="` + victimCert + `"`, xfccLast, true},
		{"the victim's element, whole, before Envoy's", `Hash=` + pemHash(t, victimPEM) + `;Cert="` + victimCert + `"`, xfccOne, true},
		{"the victim's element under last: Envoy's own wins", `Hash=` + pemHash(t, victimPEM) + `;Cert="` + victimCert + `"`, xfccLast, true},
		{"a bare quote in a value", `Cert=` + victimCert + `"`, xfccLast, true},
		{"an unknown key", `Evil=1`, xfccLast, true},
		{"a key without a value", `Cert`, xfccLast, true},
		{"elements past the bound", strings.Repeat(`By=a,`, maxXFCCElements) + `By=a`, xfccLast, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := parseHeaderFormat("xfcc", c.mode)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.parse([]string{c.sent + "," + envoy})
			if err != nil {
				return // refused: safe
			}
			if got.Equal(victim.TLS.Leaf) {
				t.Fatal("the caller's header named the victim's certificate")
			}
			if !got.Equal(caller.TLS.Leaf) {
				t.Fatalf("read a certificate that is neither: %v", got.Subject)
			}
		})
	}
	// A Hash that is not the Cert's is refused, however the element is quoted.
	f, _ := parseHeaderFormat("xfcc", xfccOne)
	if _, err := f.parse([]string{`Hash=` + pemHash(t, victimPEM) + `;Cert="` + url.QueryEscape(callerPEM) + `"`}); err == nil || !strings.Contains(err.Error(), "Hash") {
		t.Fatalf("a Hash of another certificate was accepted: %v", err)
	}
	// Envoy's quoting of a Subject with ',', ';', '=' and an escaped quote is read.
	if _, err := parseXFCC(`Subject="CN=a\"b,O=c;d";Cert="` + url.QueryEscape(callerPEM) + `"`); err != nil {
		t.Fatalf("a quoted Subject was refused: %v", err)
	}
}
