package plugin

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Envoy's X-Forwarded-Client-Cert, read exactly as Envoy writes it: elements
// separated by ',', each a ';'-separated list of Key=Value pairs, a value that
// holds ',', ';' or '=' in double quotes with '"' escaped as '\"'. A lenient
// reader is a hole: when Envoy appends to a header the caller sent, a caller's
// prefix such as `Cert="<another's PEM>";x="` opens a quote that swallows
// Envoy's own element, and a reader that takes the last Cert it sees then picks
// the certificate the caller chose. So anything outside the grammar (an unknown
// key, a repeated one, an unterminated quote, text after a closing quote) is
// refused, never guessed at.

// xfccKeys are the keys Envoy writes; DNS and URI repeat once per SAN.
var xfccKeys = map[string]bool{"by": false, "hash": false, "cert": false, "chain": false, "subject": false, "uri": true, "dns": true}

// maxXFCCElements bounds the elements read: each is a proxy on the path.
const maxXFCCElements = 16

// xfccElement is one proxy's element, by lower-case key; repeated keys (DNS,
// URI) keep every value.
type xfccElement map[string][]string

// xfccElementsMode says which elements obdcr accepts: "one" (the proxy replaces
// the header, Envoy's SANITIZE_SET) or "last" (it appends, APPEND_FORWARD, and
// its own element is the last).
const (
	xfccOne  = "one"
	xfccLast = "last"
)

func xfccFormat(mode string) headerFormat {
	return headerFormat{"xfcc", func(values []string) (*x509.Certificate, error) {
		elements, err := parseXFCC(strings.Join(values, ","))
		if err != nil {
			return nil, err
		}
		if len(elements) > 1 && mode != xfccLast {
			return nil, fmt.Errorf("holds %d elements; the proxy must replace the header (Envoy's SANITIZE_SET), or set OBDCR_CLIENT_CERT_HEADER_XFCC_ELEMENTS=last when it appends its own element", len(elements))
		}
		return elements[len(elements)-1].certificate()
	}}
}

// certificate is the element's Cert; a Hash beside it must be that
// certificate's SHA-256, as Envoy computes it.
func (e xfccElement) certificate() (*x509.Certificate, error) {
	if len(e["cert"]) == 0 {
		return nil, errors.New("its element has no Cert")
	}
	raw, err := unescapePEM(e["cert"][0])
	if err != nil {
		return nil, err
	}
	cert, err := onePEM(raw)
	if err != nil {
		return nil, err
	}
	if h := e["hash"]; len(h) > 0 {
		sum := sha256.Sum256(cert.Raw)
		if !strings.EqualFold(h[0], hex.EncodeToString(sum[:])) {
			return nil, errors.New("its Hash is not the SHA-256 of its Cert")
		}
	}
	return cert, nil
}

// parseXFCC reads a whole header value into its elements.
func parseXFCC(s string) ([]xfccElement, error) {
	p := xfccParser{s: s}
	var out []xfccElement
	for {
		e, err := p.element()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		if len(out) > maxXFCCElements {
			return nil, fmt.Errorf("holds over %d elements", maxXFCCElements)
		}
		if p.done() {
			return out, nil
		}
		p.i++ // the ',' that element() stopped at
	}
}

type xfccParser struct {
	s string
	i int
}

func (p *xfccParser) done() bool { return p.i >= len(p.s) }

func (p *xfccParser) spaces() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// element reads pairs up to the next ',' outside quotes, or the end.
func (p *xfccParser) element() (xfccElement, error) {
	e := xfccElement{}
	for {
		p.spaces()
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		value, err := p.value()
		if err != nil {
			return nil, fmt.Errorf("its %s value %v", key, err)
		}
		if len(e[key]) > 0 && !xfccKeys[key] {
			return nil, fmt.Errorf("repeats the key %s in one element", key)
		}
		e[key] = append(e[key], value)
		p.spaces()
		if p.done() || p.s[p.i] == ',' {
			return e, nil
		}
		p.i++ // ';'
	}
}

func (p *xfccParser) key() (string, error) {
	start := p.i
	for !p.done() && p.s[p.i] != '=' {
		c := p.s[p.i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return "", fmt.Errorf("has %q where a key (By, Hash, Cert, Chain, Subject, URI, DNS) was expected", clip(p.s[start:min(p.i+1, len(p.s))]))
		}
		p.i++
	}
	key := strings.ToLower(p.s[start:p.i])
	if p.done() || key == "" {
		return "", errors.New("has a key without a value")
	}
	if _, known := xfccKeys[key]; !known {
		return "", fmt.Errorf("has the key %q, which Envoy never writes", clip(p.s[start:p.i]))
	}
	p.i++ // '='
	return key, nil
}

// value reads a quoted or a bare value and leaves p at the ';', ',' or end
// after it; anything else there is refused.
func (p *xfccParser) value() (string, error) {
	if !p.done() && p.s[p.i] == '"' {
		var b strings.Builder
		for p.i++; ; p.i++ {
			if p.done() {
				return "", errors.New("opens a quote it never closes")
			}
			c := p.s[p.i]
			if c == '\\' && p.i+1 < len(p.s) {
				p.i++
				b.WriteByte(p.s[p.i])
				continue
			}
			if c == '"' {
				p.i++
				break
			}
			b.WriteByte(c)
		}
		p.spaces()
		if !p.done() && p.s[p.i] != ';' && p.s[p.i] != ',' {
			return "", errors.New("has text after its closing quote")
		}
		return b.String(), nil
	}
	start := p.i
	for !p.done() && p.s[p.i] != ';' && p.s[p.i] != ',' {
		if c := p.s[p.i]; c == '"' || c == '=' || c == '\\' {
			return "", fmt.Errorf("has %q outside quotes", c)
		}
		p.i++
	}
	return strings.TrimRight(p.s[start:p.i], " \t"), nil
}

// clip bounds a caller's text repeated in an error.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
