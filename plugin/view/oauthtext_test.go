package view_test

import (
	"testing"

	"github.com/obdcr/obdcr/plugin/view"
)

func TestOAuthTextKeepsOnlyWhatRFC6749Allows(t *testing.T) {
	cases := []struct{ in, want string }{
		{"redirect_uri is not registered", "redirect_uri is not registered"},
		{"header alg none is never accepted (RFC 8725 §3.1)", "header alg none is never accepted (RFC 8725 section 3.1)"},
		{`key "k1" is for RS256`, "key 'k1' is for RS256"},
		{`a\b`, "a/b"},
		{"clipped…", "clipped..."},
		{"line\nbreak\tand\rreturn", "line break and return"},
		{"café \x00 ☃", "caf? ? ?"},
		{"", ""},
	}
	for _, c := range cases {
		got := view.OAuthText(c.in)
		if got != c.want {
			t.Errorf("OAuthText(%q) = %q; want %q", c.in, got, c.want)
		}
		for i := 0; i < len(got); i++ {
			if ch := got[i]; ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' {
				t.Errorf("OAuthText(%q) keeps %q", c.in, ch)
			}
		}
	}
}
