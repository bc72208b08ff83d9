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
	sum := sha256.Sum256(der)
	xfccElement := func(certPEM string, subject string) string {
		return "Hash=" + hex.EncodeToString(sum[:]) + `;Cert="` + url.QueryEscape(certPEM) + `";Subject="` + subject + `";URI=spiffe://bank.example/ns/edge/sa/envoy`
	}
	cases := []struct {
		format string
		values []string
		err    string // "" parses to the leaf
	}{
		{"pem-urlencoded", []string{url.QueryEscape(pemText)}, ""},
		{"pem-urlencoded", []string{url.PathEscape(pemText)}, ""},
		{"pem-urlencoded", []string{url.QueryEscape(pemText + string(other.CertPEM))}, "chain"},
		{"pem-urlencoded", []string{"%zz"}, "URL-encoded"},
		{"pem-urlencoded", []string{strings.ReplaceAll(url.QueryEscape(pemText), "%2B", "+")}, ""},
		{"pem-urlencoded", []string{"not a certificate"}, "no PEM"},
		{"pem-urlencoded", []string{url.QueryEscape(pemText), url.QueryEscape(pemText)}, "no PEM"},
		{"xfcc", []string{xfccElement(pemText, "CN=tpp")}, ""},
		{"xfcc", []string{xfccElement(string(other.CertPEM), "CN=upstream,O=a;b") + "," + xfccElement(pemText, "CN=tpp")}, ""},
		{"xfcc", []string{xfccElement(string(other.CertPEM), "CN=upstream"), xfccElement(pemText, "CN=tpp")}, ""},
		{"xfcc", []string{"By=spiffe://x;Hash=abc"}, "no Cert"},
		{"der-base64", []string{base64.StdEncoding.EncodeToString(der)}, ""},
		{"der-base64", []string{url.QueryEscape(base64.StdEncoding.EncodeToString(der))}, ""},
		{"der-base64", []string{url.QueryEscape(base64.StdEncoding.EncodeToString(der) + "," + base64.StdEncoding.EncodeToString(other.TLS.Leaf.Raw))}, "chain"},
		{"der-base64", []string{"!!!"}, "base64"},
		{"pem-spaces", []string{strings.ReplaceAll(strings.TrimSpace(pemText), "\n", " ")}, ""},
		{"pem-spaces", []string{strings.ReplaceAll(pemText+string(other.CertPEM), "\n", " ")}, "chain"},
		{"pem-spaces", []string{"MIIB"}, "not a PEM"},
	}
	for _, c := range cases {
		t.Run(c.format+"/"+c.err, func(t *testing.T) {
			got, err := headerFormats[c.format].parse(c.values)
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
	if _, err := parseHeaderFormat("json"); err == nil {
		t.Fatal("an unknown format was accepted")
	}
}
