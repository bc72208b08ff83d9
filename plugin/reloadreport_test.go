package plugin

import (
	"bytes"
	"testing"

	"github.com/obdcr/obdcr/plugin/reload"
)

// While OBDCR_ADMIN_TOKEN_FILE fails closed there is no token, and the console's
// session key must not become the constant a key made of no token would be:
// anyone could then sign a session cookie. With tokens it is stable, so that
// sessions last; with none, no two keys agree, so that no cookie verifies.
func TestConsoleSessionKeyWithoutAdminTokens(t *testing.T) {
	tokens, err := parseAdminTokens("ops:admin-token-one-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		tokens []adminToken
		stable bool
	}{
		{"tokens", tokens, true},
		{"no token (the file failed closed)", nil, false},
	} {
		b := consoleBackend{s: &Server{adminTokens: reload.Static(c.tokens)}}
		k1, k2 := b.SessionKey(), b.SessionKey()
		if bytes.Equal(k1, k2) != c.stable || len(k1) < 32 {
			t.Errorf("%s: keys %x and %x, want stable %v", c.name, k1, k2, c.stable)
		}
	}
}
