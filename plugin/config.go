package plugin

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v10"

	"github.com/obdcr/obdcr/policy"
)

// Config is all of obdcr's configuration, from the environment. The help text of
// `obdcr serve --help` and the README's table are generated from these tags, so
// the documentation cannot drift from the code.
type Config struct {
	Listen             string         `env:"OBDCR_LISTEN" envDefault:":8443" help:"TPP listener (HTTPS; asks for and verifies a client certificate)"`
	TLSCertFile        string         `env:"OBDCR_TLS_CERT_FILE,required" help:"server certificate, PEM"`
	TLSKeyFile         string         `env:"OBDCR_TLS_KEY_FILE,required" help:"server key, PEM"`
	TLSClientCAFile    string         `env:"OBDCR_TLS_CLIENT_CA_FILE,required" help:"PEM bundle of the CAs that issue TPP transport certificates"`
	ClientCertHeader   string         `env:"OBDCR_CLIENT_CERT_HEADER" help:"behind a TLS-terminating proxy: header carrying the verified client certificate (PEM, URL-encoded); trusted only from OBDCR_TRUSTED_PROXIES"`
	ClientCertFormat   string         `env:"OBDCR_CLIENT_CERT_HEADER_FORMAT" envDefault:"pem-urlencoded" help:"pem-urlencoded (nginx, AWS ALB), xfcc (Envoy X-Forwarded-Client-Cert; see OBDCR_CLIENT_CERT_HEADER_XFCC_ELEMENTS), der-base64 (HAProxy; Traefik's URL-escaped form too), pem-spaces (Apache)"`
	XFCCElements       string         `env:"OBDCR_CLIENT_CERT_HEADER_XFCC_ELEMENTS" envDefault:"one" help:"with the xfcc format: one (the proxy replaces the header, Envoy's SANITIZE_SET; a header of more elements is refused) or last (the proxy appends, APPEND_FORWARD, and its own element, the last, is read)"`
	TrustedProxies     []string       `env:"OBDCR_TRUSTED_PROXIES" envSeparator:"," help:"CIDRs allowed to set that header"`
	TraceTrustIncoming string         `env:"OBDCR_TRACE_TRUST_INCOMING" envDefault:"proxies" help:"whose W3C traceparent obdcr's spans join: proxies (only from OBDCR_TRUSTED_PROXIES) or none; any other caller's trace is linked, never joined, and baggage is always dropped"`
	Issuer             string         `env:"OBDCR_ISSUER,required" help:"this authorization server's issuer (Hydra's public issuer URL); accepted as the request JWT aud"`
	Audiences          []string       `env:"OBDCR_AUDIENCES" envSeparator:"," help:"more accepted aud values, comma separated (UK: the ASPSP's directory organisation id)"`
	HydraAdminURL      string         `env:"HYDRA_ADMIN_URL" envDefault:"http://127.0.0.1:4445" help:"Hydra admin API"`
	HydraAdminAuth     HydraAdminAuth `envPrefix:""`
	HydraPublicURL     string         `env:"HYDRA_PUBLIC_URL" envDefault:"http://127.0.0.1:4444" help:"Hydra public API: its discovery document is read from here"`
	PublicURL          string         `env:"OBDCR_PUBLIC_URL" help:"the public base URL of the TPP listener, as TPPs reach it (registration_endpoint is this + /register); required for discovery"`
	Profiles           []string       `env:"OBDCR_PROFILES" envDefault:"uk,au" envSeparator:"," help:"profiles enabled on first start (later the stored state wins)"`
	AllowPrivateJWKS   bool           `env:"OBDCR_ALLOW_PRIVATE_JWKS" envDefault:"false" help:"allow JWKS and Register URLs on loopback or private addresses (sandbox and tests only)"`
	JWKSIdleAfter      time.Duration  `env:"OBDCR_JWKS_IDLE_AFTER" envDefault:"24h" help:"a software JWKS unused this long stops being refreshed and is fetched again when next needed (0: keep every one); directory JWKS are always kept"`
	AdminListen        string         `env:"OBDCR_ADMIN_LISTEN" envDefault:"127.0.0.1:8444" help:"admin listener, plain HTTP like Hydra's admin port: policies, audit, metrics, health"`
	AdminToken         string         `env:"OBDCR_ADMIN_TOKEN" help:"bearer tokens for the admin API and console, token or name:token,name:token (each 16+ characters; the audit records the name); this or OBDCR_ADMIN_TOKEN_FILE is required"`
	AdminTokenFile     string         `env:"OBDCR_ADMIN_TOKEN_FILE" help:"a file holding OBDCR_ADMIN_TOKEN's value, re-read when it changes; made invalid, empty or deleted, it admits no token until mended"`
	TPPRateLimit       Rate           `env:"OBDCR_TPP_RATE_LIMIT" envDefault:"20/s" help:"requests per second per client certificate on the TPP listener, and per source address for requests without one (burst twice that; 0 off); over it: 429 with Retry-After. Behind a proxy the certificate is the one in the header"`
	TPPMaxConns        int            `env:"OBDCR_TPP_MAX_CONNS" envDefault:"1024" help:"open connections on the TPP listener; TLS handshakes are limited to this many per second too"`
	TPPConnsPerAddr    int            `env:"OBDCR_TPP_MAX_CONNS_PER_ADDR" envDefault:"64" help:"open connections on the TPP listener from one source address (an IPv6 /64), counted before TLS; more are closed at once. OBDCR_TRUSTED_PROXIES are exempt"`
	Console            bool           `env:"OBDCR_CONSOLE" envDefault:"true" help:"serve the policy console under /console/ on the admin listener"`
	ConsoleMaxAge      time.Duration  `env:"OBDCR_CONSOLE_SESSION_MAX" envDefault:"8h" help:"a console session ends this long after its sign-in, however busy (it also ends 30 minutes after its last page)"`
	AuditRetention     time.Duration  `env:"OBDCR_AUDIT_RETENTION" envDefault:"9600h" help:"how long SQL stores keep decision entries; policy changes are kept"`
	AuditRefusals      int            `env:"OBDCR_AUDIT_REFUSALS_PER_CERT_HOUR" envDefault:"60" help:"refusal entries one client certificate may have written to the audit an hour, summaries included; past it refusals are only counted (obdcr_audit_refusals_suppressed_total)"`
	DSN                string         `env:"OBDCR_DSN" envDefault:"memory" help:"memory, sqlite://PATH or postgres://...: policy state, replay cache, audit"`
	LogLevel           string         `env:"OBDCR_LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error; JSON logs on stderr"`
	Edge               EdgeConfig     `envPrefix:""`

	// jurisdictions are those LoadConfigFor read, and envs their variables by name.
	jurisdictions []policy.Jurisdiction
	envs          map[string]policy.JurisdictionEnv
}

// EdgeConfig is the FAPI edge's (off unless OBDCR_EDGE_LISTEN is set).
type EdgeConfig struct {
	Listen       string `env:"OBDCR_EDGE_LISTEN" help:"FAPI edge: browser-facing HTTPS listener, no client certificate asked, at the issuer's host (empty: the edge is off)"`
	PublicURL    string `env:"OBDCR_EDGE_PUBLIC_URL" help:"the issuer URL as clients and browsers reach the edge; Hydra's URLS_SELF_ISSUER and URLS_SELF_PUBLIC must be the same (required with the edge)"`
	TLSCertFile  string `env:"OBDCR_EDGE_TLS_CERT_FILE" help:"the edge listener's certificate, PEM (empty: the TPP listener's)"`
	TLSKeyFile   string `env:"OBDCR_EDGE_TLS_KEY_FILE" help:"its key, PEM"`
	MaxConns     int    `env:"OBDCR_EDGE_MAX_CONNS" envDefault:"1024" help:"open connections on the edge listener; TLS handshakes are limited to this many per second too"`
	ConnsPerAddr int    `env:"OBDCR_EDGE_MAX_CONNS_PER_ADDR" envDefault:"32" help:"open connections on the edge listener from one source address (an IPv6 /64), counted before TLS; more are closed at once. OBDCR_TRUSTED_PROXIES are exempt"`
	RateLimit    Rate   `env:"OBDCR_EDGE_RATE_LIMIT" envDefault:"20/s" help:"requests per second per browser on the edge listener, every path (Hydra's proxied login and consent pages too), by source address, or behind OBDCR_TRUSTED_PROXIES by the address the proxy appended to X-Forwarded-For (burst twice that; 0 off); over it: 429 with Retry-After"`
	// ClientCacheTTL: see fapi.Config.
	ClientCacheTTL time.Duration `env:"OBDCR_EDGE_CLIENT_CACHE_TTL" envDefault:"5s" help:"how long the edge keeps a registration it read (PAR, authorize and token each need it), at most 4,096 of them; a client replaced or deleted through this replica is dropped at once, through another after this long (0: read at every request)"`
	SigningKeyFile string        `env:"OBDCR_EDGE_SIGNING_KEY_FILE" help:"PEM private key (RSA 2048+ for PS256, or P-256 for ES256) that signs JARM responses and hybrid ID tokens (not obdcr's assertions to Hydra: those use a key kept in the store); reloaded when it changes (required with the edge)"`
	// IntrospectionTokens admit the bank's resource servers to the edge's introspection.
	IntrospectionTokens string `env:"OBDCR_INTROSPECTION_TOKENS" help:"name:token entries (16+ characters each), comma-separated, for resource servers calling the admin listener's /oauth2/introspect and /oauth2/introspect/check (separate from admin tokens; empty: none admitted)"`
	// TokenHookToken turns on cnf in Hydra's JWT access tokens (tokenhook.go).
	TokenHookToken string `env:"OBDCR_TOKEN_HOOK_TOKEN" help:"16+ characters: serve Hydra's oauth2.token_hook at the admin listener's /oauth2/token-hook (Hydra sends Authorization: Bearer with it) so that JWT access tokens carry cnf.x5t#S256; Hydra then issues tokens only through the edge (empty: off)"`
}

func (e EdgeConfig) validate() error {
	if e.Listen == "" {
		return nil
	}
	if _, err := parseIntrospectionTokens(e.IntrospectionTokens); err != nil {
		return err
	}
	if e.TokenHookToken != "" && len(e.TokenHookToken) < 16 {
		return errors.New("OBDCR_TOKEN_HOOK_TOKEN: at least 16 characters")
	}
	switch {
	case e.PublicURL == "":
		return errors.New("OBDCR_EDGE_PUBLIC_URL: required with OBDCR_EDGE_LISTEN")
	case e.SigningKeyFile == "":
		return errors.New("OBDCR_EDGE_SIGNING_KEY_FILE: required with OBDCR_EDGE_LISTEN")
	case e.MaxConns < 1:
		return fmt.Errorf("OBDCR_EDGE_MAX_CONNS: %d is under 1", e.MaxConns)
	case e.ConnsPerAddr < 1:
		return fmt.Errorf("OBDCR_EDGE_MAX_CONNS_PER_ADDR: %d is under 1", e.ConnsPerAddr)
	case e.ClientCacheTTL < 0 || e.ClientCacheTTL > time.Minute:
		return fmt.Errorf("OBDCR_EDGE_CLIENT_CACHE_TTL: %s is not between 0 and 1m (a client deleted on another replica is honoured this long)", e.ClientCacheTTL)
	case (e.TLSCertFile == "") != (e.TLSKeyFile == ""):
		return errors.New("OBDCR_EDGE_TLS_CERT_FILE, OBDCR_EDGE_TLS_KEY_FILE: set both or neither")
	}
	return policy.CheckURL("OBDCR_EDGE_PUBLIC_URL", e.PublicURL)
}

// HydraAdminAuth is how obdcr reaches Hydra's admin API: its credentials, the
// CAs its certificate chains to, and how many connections it may hold.
type HydraAdminAuth struct {
	Token          string `env:"HYDRA_ADMIN_TOKEN" help:"bearer token for Hydra's admin API (Ory Network API key, Oathkeeper)"`
	TokenFile      string `env:"HYDRA_ADMIN_TOKEN_FILE" help:"a file holding HYDRA_ADMIN_TOKEN, re-read when it changes"`
	BasicAuth      string `env:"HYDRA_ADMIN_BASIC_AUTH" help:"user:password for Hydra's admin API"`
	BasicAuthFile  string `env:"HYDRA_ADMIN_BASIC_AUTH_FILE" help:"a file holding HYDRA_ADMIN_BASIC_AUTH, re-read when it changes"`
	ClientCertFile string `env:"HYDRA_ADMIN_CLIENT_CERT_FILE" help:"client certificate for mTLS to Hydra's admin API, PEM (reloaded when it changes)"`
	ClientKeyFile  string `env:"HYDRA_ADMIN_CLIENT_KEY_FILE" help:"its key, PEM"`
	CAFile         string `env:"HYDRA_ADMIN_CA_FILE" help:"PEM CA bundle that Hydra's admin (and public) TLS certificate chains to (reloaded when it changes)"`
	MaxConns       int    `env:"HYDRA_ADMIN_MAX_CONNS" envDefault:"32" help:"calls to Hydra's admin API at once, per replica (0: no limit); a call past them waits for one to end, so a burst of registrations queues here rather than in Hydra, which serves a create on one of its few database connections; one that waits out its time was never sent (a create so refused made nothing)"`
}

// variables names the variables set, for messages that say what to fix.
func (a HydraAdminAuth) variables() string {
	var set []string
	for name, v := range map[string]string{"HYDRA_ADMIN_TOKEN": a.Token, "HYDRA_ADMIN_TOKEN_FILE": a.TokenFile,
		"HYDRA_ADMIN_BASIC_AUTH": a.BasicAuth, "HYDRA_ADMIN_BASIC_AUTH_FILE": a.BasicAuthFile,
		"HYDRA_ADMIN_CLIENT_CERT_FILE": a.ClientCertFile} {
		if v != "" {
			set = append(set, name)
		}
	}
	slices.Sort(set)
	if len(set) == 0 {
		return "none of HYDRA_ADMIN_TOKEN(_FILE), HYDRA_ADMIN_BASIC_AUTH(_FILE), HYDRA_ADMIN_CLIENT_CERT_FILE is set"
	}
	return strings.Join(set, ", ")
}

func (a HydraAdminAuth) validate() error {
	given := 0
	for _, v := range []string{a.Token, a.TokenFile, a.BasicAuth, a.BasicAuthFile} {
		if v != "" {
			given++
		}
	}
	switch {
	case given > 1:
		return errors.New("HYDRA_ADMIN_TOKEN, HYDRA_ADMIN_TOKEN_FILE, HYDRA_ADMIN_BASIC_AUTH, HYDRA_ADMIN_BASIC_AUTH_FILE: set one at most")
	case a.BasicAuth != "" && !strings.Contains(a.BasicAuth, ":"):
		return errors.New("HYDRA_ADMIN_BASIC_AUTH: must be user:password")
	case (a.ClientCertFile == "") != (a.ClientKeyFile == ""):
		return errors.New("HYDRA_ADMIN_CLIENT_CERT_FILE, HYDRA_ADMIN_CLIENT_KEY_FILE: set both or neither")
	case a.MaxConns < 0:
		return fmt.Errorf("HYDRA_ADMIN_MAX_CONNS: %d: must be 0 (no limit) or more", a.MaxConns)
	}
	return nil
}

// LoadConfig reads the environment for the jurisdictions this build serves
// (Jurisdictions). The error is one line naming the variable.
func LoadConfig(environ map[string]string) (Config, error) {
	return LoadConfigFor(environ, Jurisdictions())
}

// LoadConfigFor reads the environment for the jurisdictions js: obdcr's own
// variables, then each jurisdiction's under OBDCR_<NAME>_.
func LoadConfigFor(environ map[string]string, js []policy.Jurisdiction) (Config, error) {
	var c Config
	opts := env.Options{}
	if environ != nil {
		opts.Environment = environ
	}
	if err := env.ParseWithOptions(&c, opts); err != nil {
		return c, oneLine(err)
	}
	c.jurisdictions, c.envs = js, map[string]policy.JurisdictionEnv{}
	for _, j := range js {
		e := j.Env()
		o := opts
		o.Prefix = envPrefix(j)
		if err := env.ParseWithOptions(e, o); err != nil {
			return c, oneLine(err)
		}
		c.envs[j.Name()] = e
	}
	return c, c.validate()
}

func (c Config) profileOn(name string) bool { return slices.Contains(c.Profiles, name) }

func (c Config) validate() error {
	var known []string
	for _, j := range c.jurisdictions {
		known = append(known, j.Name())
	}
	for _, p := range c.Profiles {
		if !slices.Contains(known, p) {
			return fmt.Errorf("OBDCR_PROFILES: unknown profile %q; known: %s", p, strings.Join(known, ", "))
		}
	}
	for _, j := range c.jurisdictions {
		if err := c.envs[j.Name()].Check(c.profileOn(j.Name())); err != nil {
			return err
		}
	}
	for _, v := range []struct{ name, value string }{{"OBDCR_ISSUER", c.Issuer}, {"HYDRA_ADMIN_URL", c.HydraAdminURL},
		{"HYDRA_PUBLIC_URL", c.HydraPublicURL}, {"OBDCR_PUBLIC_URL", c.PublicURL}} {
		if err := policy.CheckURL(v.name, v.value); err != nil {
			return err
		}
	}
	if _, err := parseHeaderFormat(c.ClientCertFormat, c.XFCCElements); err != nil {
		return err
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(strings.TrimSpace(p)); err != nil {
			return fmt.Errorf("OBDCR_TRUSTED_PROXIES: %q is not a CIDR such as 10.0.0.0/8", p)
		}
	}
	if c.AuditRefusals < 0 {
		return fmt.Errorf("OBDCR_AUDIT_REFUSALS_PER_CERT_HOUR: %d is under 0", c.AuditRefusals)
	}
	if c.ConsoleMaxAge < time.Minute {
		return fmt.Errorf("OBDCR_CONSOLE_SESSION_MAX: %s is under 1m", c.ConsoleMaxAge)
	}
	if c.TraceTrustIncoming != traceTrustProxies && c.TraceTrustIncoming != traceTrustNone {
		return fmt.Errorf("OBDCR_TRACE_TRUST_INCOMING: %q is not proxies or none", c.TraceTrustIncoming)
	}
	if c.TPPMaxConns < 1 {
		return fmt.Errorf("OBDCR_TPP_MAX_CONNS: %d is under 1", c.TPPMaxConns)
	}
	if c.TPPConnsPerAddr < 1 {
		return fmt.Errorf("OBDCR_TPP_MAX_CONNS_PER_ADDR: %d is under 1", c.TPPConnsPerAddr)
	}
	switch {
	case c.AdminToken == "" && c.AdminTokenFile == "":
		return errors.New("OBDCR_ADMIN_TOKEN: required but not set (or set OBDCR_ADMIN_TOKEN_FILE)")
	case c.AdminToken != "" && c.AdminTokenFile != "":
		return errors.New("OBDCR_ADMIN_TOKEN, OBDCR_ADMIN_TOKEN_FILE: set one, not both")
	case c.AdminToken != "":
		if _, err := parseAdminTokens(c.AdminToken); err != nil {
			return err
		}
	}
	if err := c.HydraAdminAuth.validate(); err != nil {
		return err
	}
	if err := c.Edge.validate(); err != nil {
		return err
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		return fmt.Errorf("OBDCR_LOG_LEVEL: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.DSN != "memory" && !strings.HasPrefix(c.DSN, "sqlite://") && !strings.HasPrefix(c.DSN, "postgres://") && !strings.HasPrefix(c.DSN, "postgresql://") {
		return errors.New("OBDCR_DSN: must be memory, sqlite://PATH or postgres://...")
	}
	return nil
}

// oneLine turns env's aggregate error into one line that names the first variable.
func oneLine(err error) error {
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		err = agg.Errors[0]
	}
	var notSet env.EnvVarIsNotSetError
	var empty env.EmptyEnvVarError
	var parse env.ParseError
	switch {
	case errors.As(err, &notSet):
		return fmt.Errorf("%s: required but not set", notSet.Key)
	case errors.As(err, &empty):
		return fmt.Errorf("%s: required but empty", empty.Key)
	case errors.As(err, &parse):
		name := parse.Name
		for _, v := range Variables() {
			if v.Field == parse.Name {
				name = v.Name
			}
		}
		return fmt.Errorf("%s: %v", name, parse.Err)
	}
	return err
}

// Variable documents one environment variable.
type Variable struct {
	Name, Default, Help, Field string
	Required                   bool
}

// Variables lists every variable obdcr reads, in order, for help and docs:
// Config's, then each jurisdiction's of Jurisdictions.
func Variables() []Variable { return VariablesFor(Jurisdictions()) }

// VariablesFor lists Config's variables, then those of the jurisdictions js.
func VariablesFor(js []policy.Jurisdiction) []Variable {
	var out []Variable
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if p, ok := f.Tag.Lookup("envPrefix"); ok {
				walk(f.Type, prefix+p)
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
			if name == "" {
				continue
			}
			out = append(out, Variable{Name: prefix + name, Default: f.Tag.Get("envDefault"), Help: f.Tag.Get("help"),
				Field: f.Name, Required: strings.Contains(opts, "required")})
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	for _, j := range js {
		walk(reflect.TypeOf(j.Env()).Elem(), envPrefix(j))
	}
	return out
}

// Help renders the variables as a table for `obdcr serve --help`.
func Help() string {
	var b strings.Builder
	b.WriteString("Environment (all configuration):\n")
	for _, v := range Variables() {
		def := v.Default
		switch {
		case v.Required:
			def = "required"
		case def == "":
			def = "empty"
		}
		fmt.Fprintf(&b, "  %-32s %-24s %s\n", v.Name, def, v.Help)
	}
	return b.String()
}
