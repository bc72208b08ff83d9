package plugin

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// headerFormat is how a TLS-terminating proxy writes the client certificate it
// verified into a header (OBDCR_CLIENT_CERT_HEADER_FORMAT). Each proxy has its own.
type headerFormat struct {
	name  string
	parse func(values []string) (*x509.Certificate, error)
}

// headerFormats are the formats obdcr reads, by name.
var headerFormats = map[string]headerFormat{
	// nginx $ssl_client_escaped_cert, AWS ALB X-Amzn-Mtls-Clientcert.
	"pem-urlencoded": {"pem-urlencoded", func(v []string) (*x509.Certificate, error) {
		raw, err := unescapePEM(one(v))
		if err != nil {
			return nil, err
		}
		return onePEM(raw)
	}},
	// HAProxy %[ssl_c_der,base64]; Traefik's X-Forwarded-Tls-Client-Cert (the same,
	// URL-escaped, certificates separated by commas).
	"der-base64": {"der-base64", func(v []string) (*x509.Certificate, error) {
		s := one(v)
		if strings.Contains(s, "%") {
			u, err := url.QueryUnescape(s)
			if err != nil {
				return nil, errors.New("is not URL-escaped base64")
			}
			s = u
		}
		if strings.Contains(s, ",") {
			return nil, errors.New("holds a chain; the proxy must send the client certificate alone")
		}
		return derBase64(s)
	}},
	// Apache's SSL_CLIENT_CERT through mod_headers: PEM with spaces for newlines.
	"pem-spaces": {"pem-spaces", func(v []string) (*x509.Certificate, error) {
		s := one(v)
		if strings.Count(s, "-----BEGIN CERTIFICATE-----") > 1 {
			return nil, errors.New("holds a chain; the proxy must send the client certificate alone")
		}
		body := strings.TrimPrefix(strings.TrimSpace(s), "-----BEGIN CERTIFICATE-----")
		body, found := strings.CutSuffix(strings.TrimSpace(body), "-----END CERTIFICATE-----")
		if !found {
			return nil, errors.New("is not a PEM certificate")
		}
		return derBase64(body)
	}},
}

// parseHeaderFormat finds a format by name; xfccElements is
// OBDCR_CLIENT_CERT_HEADER_XFCC_ELEMENTS, which only Envoy's format reads.
func parseHeaderFormat(name, xfccElements string) (headerFormat, error) {
	if xfccElements != xfccOne && xfccElements != xfccLast {
		return headerFormat{}, fmt.Errorf("OBDCR_CLIENT_CERT_HEADER_XFCC_ELEMENTS: %q is not one or last", xfccElements)
	}
	if name == "xfcc" {
		return xfccFormat(xfccElements), nil
	}
	f, ok := headerFormats[name]
	if !ok {
		return f, fmt.Errorf("OBDCR_CLIENT_CERT_HEADER_FORMAT: %q is not one of pem-urlencoded, xfcc, der-base64, pem-spaces", name)
	}
	return f, nil
}

// one is a header sent once; a header a proxy sent twice is not trusted.
func one(values []string) string {
	if len(values) != 1 {
		return ""
	}
	return values[0]
}

// unescapePEM undoes URL encoding. Base64 has '+', which a proxy may leave as is
// (a path escape) or send as %2B; only the PEM lines' spaces are ever '+'.
func unescapePEM(s string) (string, error) {
	raw, err := url.PathUnescape(s)
	if err != nil {
		return "", errors.New("is not URL-encoded PEM")
	}
	if !strings.Contains(raw, "-----BEGIN CERTIFICATE-----") {
		raw = strings.ReplaceAll(raw, "-----BEGIN+CERTIFICATE-----", "-----BEGIN CERTIFICATE-----")
		raw = strings.ReplaceAll(raw, "-----END+CERTIFICATE-----", "-----END CERTIFICATE-----")
	}
	return raw, nil
}

func onePEM(raw string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(raw))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("holds no PEM certificate")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("holds a chain; the proxy must send the client certificate alone")
	}
	return x509.ParseCertificate(block.Bytes)
}

func derBase64(s string) (*x509.Certificate, error) {
	s = strings.Join(strings.Fields(s), "")
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if der, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "=")); err != nil {
			return nil, errors.New("is not base64 DER")
		}
	}
	return x509.ParseCertificate(der)
}
