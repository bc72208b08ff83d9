package plugin_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/plugin"
)

// A missing or malformed variable stops start-up with one line that begins with
// the variable's name, so that an operator knows what to fix.
func TestConfigNamesTheVariableToFix(t *testing.T) {
	valid := map[string]string{
		"OBDCR_TLS_CERT_FILE": "tls.crt", "OBDCR_TLS_KEY_FILE": "tls.key", "OBDCR_TLS_CLIENT_CA_FILE": "ca.pem",
		"OBDCR_ISSUER": "https://bank.example", "OBDCR_ADMIN_TOKEN": "ops:admin-token-0123456789",
		"OBDCR_UK_SSA_JWKS_URL": "https://keystore.example/directory.jwks", "OBDCR_AU_SSA_JWKS_URL": "https://register.example/jwks",
	}
	cases := []struct {
		name    string
		set     map[string]string
		unset   []string
		wantErr string // the line's start; "" for a configuration that loads
	}{
		{name: "the minimum loads"},
		{name: "only AU, without the UK directory", set: map[string]string{"OBDCR_PROFILES": "au"}, unset: []string{"OBDCR_UK_SSA_JWKS_URL"}},
		{name: "a required variable missing", unset: []string{"OBDCR_ISSUER"}, wantErr: "OBDCR_ISSUER: required but not set"},
		{name: "an unknown profile", set: map[string]string{"OBDCR_PROFILES": "uk,br"}, wantErr: `OBDCR_PROFILES: unknown profile "br"; known: uk, au`},
		{name: "UK on without its directory", unset: []string{"OBDCR_UK_SSA_JWKS_URL"}, wantErr: "OBDCR_UK_SSA_JWKS_URL: required when the uk profile is enabled"},
		{name: "AU on without its Register's keys", unset: []string{"OBDCR_AU_SSA_JWKS_URL"}, wantErr: "OBDCR_AU_SSA_JWKS_URL: required when the au profile is enabled"},
		{name: "a directory URL that is not http(s)", set: map[string]string{"OBDCR_UK_SSA_JWKS_URL": "ftp://keystore.example/x"}, wantErr: "OBDCR_UK_SSA_JWKS_URL: "},
		{name: "a Register URL without a host", set: map[string]string{"OBDCR_AU_REGISTER_URL": "https://"}, wantErr: "OBDCR_AU_REGISTER_URL: "},
		{name: "an issuer that is not a URL", set: map[string]string{"OBDCR_ISSUER": "bank"}, wantErr: "OBDCR_ISSUER: "},
		{name: "Hydra's public URL that is not a URL", set: map[string]string{"HYDRA_PUBLIC_URL": "hydra:4444"}, wantErr: "HYDRA_PUBLIC_URL: "},
		{name: "a poll interval under a second", set: map[string]string{"OBDCR_AU_STATUS_POLL_INTERVAL": "500ms"}, wantErr: "OBDCR_AU_STATUS_POLL_INTERVAL: 500ms is under 1s"},
		{name: "a wait over a minute", set: map[string]string{"OBDCR_AU_STATUS_WAIT": "2m"}, wantErr: "OBDCR_AU_STATUS_WAIT: "},
		{name: "a gap over the interval", set: map[string]string{"OBDCR_AU_STATUS_MIN_GAP": "3m"}, wantErr: "OBDCR_AU_STATUS_MIN_GAP: "},
		{name: "a duration that does not parse", set: map[string]string{"OBDCR_AU_STATUS_WAIT": "soon"}, wantErr: "OBDCR_AU_STATUS_WAIT: "},
		{name: "a rate that does not parse", set: map[string]string{"OBDCR_TPP_RATE_LIMIT": "fast"}, wantErr: "OBDCR_TPP_RATE_LIMIT: "},
		{name: "an unknown header format", set: map[string]string{"OBDCR_CLIENT_CERT_HEADER_FORMAT": "json"}, wantErr: "OBDCR_CLIENT_CERT_HEADER_FORMAT: "},
		{name: "introspection tokens that are not name:token", set: map[string]string{"OBDCR_EDGE_LISTEN": ":9443", "OBDCR_EDGE_PUBLIC_URL": "https://issuer.example",
			"OBDCR_EDGE_SIGNING_KEY_FILE": "edge.pem", "OBDCR_INTROSPECTION_TOKENS": "rs-token-0123456789"}, wantErr: "OBDCR_INTROSPECTION_TOKENS: entry 1 is not name:token"},
		{name: "an introspection token too short", set: map[string]string{"OBDCR_EDGE_LISTEN": ":9443", "OBDCR_EDGE_PUBLIC_URL": "https://issuer.example",
			"OBDCR_EDGE_SIGNING_KEY_FILE": "edge.pem", "OBDCR_INTROSPECTION_TOKENS": "rs:short"}, wantErr: "OBDCR_INTROSPECTION_TOKENS: the token of entry 1 (rs)"},
		{name: "introspection tokens load", set: map[string]string{"OBDCR_EDGE_LISTEN": ":9443", "OBDCR_EDGE_PUBLIC_URL": "https://issuer.example",
			"OBDCR_EDGE_SIGNING_KEY_FILE": "edge.pem", "OBDCR_INTROSPECTION_TOKENS": "rs:rs-token-0123456789,gw:gw-token-0123456789"}},
		{name: "a token hook token too short", set: map[string]string{"OBDCR_EDGE_LISTEN": ":9443", "OBDCR_EDGE_PUBLIC_URL": "https://issuer.example",
			"OBDCR_EDGE_SIGNING_KEY_FILE": "edge.pem", "OBDCR_TOKEN_HOOK_TOKEN": "short"}, wantErr: "OBDCR_TOKEN_HOOK_TOKEN: at least 16 characters"},
		{name: "a proxy address that is not a CIDR", set: map[string]string{"OBDCR_TRUSTED_PROXIES": "10.0.0.0/8,10.1.2.3"}, wantErr: `OBDCR_TRUSTED_PROXIES: "10.1.2.3"`},
		{name: "an unknown trace trust", set: map[string]string{"OBDCR_TRACE_TRUST_INCOMING": "all"}, wantErr: `OBDCR_TRACE_TRUST_INCOMING: "all" is not proxies or none`},
		{name: "no connections allowed", set: map[string]string{"OBDCR_TPP_MAX_CONNS": "0"}, wantErr: "OBDCR_TPP_MAX_CONNS: 0 is under 1"},
		{name: "no admin token", unset: []string{"OBDCR_ADMIN_TOKEN"}, wantErr: "OBDCR_ADMIN_TOKEN: required but not set"},
		{name: "an admin token and its file", set: map[string]string{"OBDCR_ADMIN_TOKEN_FILE": "/run/secrets/admin"}, wantErr: "OBDCR_ADMIN_TOKEN, OBDCR_ADMIN_TOKEN_FILE: set one"},
		{name: "a short admin token", set: map[string]string{"OBDCR_ADMIN_TOKEN": "short"}, wantErr: "OBDCR_ADMIN_TOKEN: "},
		{name: "a negative bound on Hydra connections", set: map[string]string{"HYDRA_ADMIN_MAX_CONNS": "-1"}, wantErr: "HYDRA_ADMIN_MAX_CONNS: -1: must be 0 (no limit) or more"},
		{name: "two kinds of Hydra credentials", set: map[string]string{"HYDRA_ADMIN_TOKEN": "t", "HYDRA_ADMIN_BASIC_AUTH": "u:p"}, wantErr: "HYDRA_ADMIN_TOKEN, HYDRA_ADMIN_TOKEN_FILE, HYDRA_ADMIN_BASIC_AUTH"},
		{name: "basic auth without a password", set: map[string]string{"HYDRA_ADMIN_BASIC_AUTH": "user"}, wantErr: "HYDRA_ADMIN_BASIC_AUTH: must be user:password"},
		{name: "a client certificate without its key", set: map[string]string{"HYDRA_ADMIN_CLIENT_CERT_FILE": "c.pem"}, wantErr: "HYDRA_ADMIN_CLIENT_CERT_FILE, HYDRA_ADMIN_CLIENT_KEY_FILE: set both"},
		{name: "an unknown log level", set: map[string]string{"OBDCR_LOG_LEVEL": "verbose"}, wantErr: "OBDCR_LOG_LEVEL: "},
		{name: "an unknown store", set: map[string]string{"OBDCR_DSN": "mysql://db"}, wantErr: "OBDCR_DSN: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			environ := maps.Clone(valid)
			maps.Copy(environ, tc.set)
			for _, k := range tc.unset {
				delete(environ, k)
			}
			_, err := plugin.LoadConfig(environ)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr == "":
			case err == nil:
				t.Fatalf("loaded; want an error starting %q", tc.wantErr)
			case !strings.HasPrefix(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n"):
				t.Fatalf("error %q; want one line starting %q", err, tc.wantErr)
			}
		})
	}
}
