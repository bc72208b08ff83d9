package view

import "strings"

// OAuthText is s as an error_description may carry it: RFC 6749 §4.1.2.1 and
// §5.2 allow only printable ASCII without '"' and '\' (%x20-21 / %x23-5B /
// %x5D-7E), and FAPI conformance suites fail an answer that has anything else.
// Descriptions are written for people, with section signs and quoted values;
// this is the one place that makes them fit, so that no message need know.
func OAuthText(s string) string {
	clean := true
	for i := 0; i < len(s) && clean; i++ {
		clean = allowed(s[i])
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		switch {
		case r < 0x80 && allowed(byte(r)):
			b.WriteRune(r)
		case r == '"':
			b.WriteByte('\'')
		case r == '\\':
			b.WriteByte('/')
		case r == '§':
			b.WriteString("section ")
		case r == '…':
			b.WriteString("...")
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}

func allowed(c byte) bool { return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' }
