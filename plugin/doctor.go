package plugin

import (
	"context"

	"errors"
	"fmt"
	"github.com/caarlos0/env/v10"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy"
)

// The setup check (obdcr doctor, and obdcr serve at start-up): is the Hydra
// obdcr fronts set up so that what the bank publishes is what obdcr enforces,
// and a registered client really gets what its registration says?

// Finding is one check's result.
type Finding = view.Finding

// Severities.
const (
	SeverityOK      = "ok"
	SeverityWarning = "warning"
	SeverityError   = "error"
)

// Setup is what the check looks at.
type Setup struct {
	Admin     *hydra.Admin
	Discovery *hydra.Discovery
	// HydraPublicURL is where Hydra's own registration endpoint is probed.
	HydraPublicURL string
	Issuer         string // OBDCR_ISSUER
	PublicURL      string // OBDCR_PUBLIC_URL
	// Policies are the profiles' states; the enabled ones are checked against.
	Policies []policy.State
	HTTP     *http.Client
	// Edge is set when the FAPI edge is on (OBDCR_EDGE_PUBLIC_URL).
	Edge *EdgeSetup
}

// algs are the signing algorithms the enabled profiles allow, in their order.
func (s Setup) algs() []string {
	var out []string
	for _, st := range s.Policies {
		if st.Enabled {
			out = union(out, st.Settings.SigningAlgs)
		}
	}
	return out
}

// clockSkew is the least clock skew an enabled profile tolerates.
func (s Setup) clockSkew() time.Duration {
	least := time.Duration(0)
	for _, st := range s.Policies {
		if d := time.Duration(st.Settings.ClockSkew); st.Enabled && (least == 0 || d < least) {
			least = d
		}
	}
	return least
}

// Unsupported is what Hydra cannot do, and how obdcr answers a request for it:
// stated once here, shown by obdcr doctor and the README.
var Unsupported = []Finding{
	{Check: "hydra.certificate_bound_tokens", Severity: SeverityOK, Message: "Hydra cannot bind access tokens to certificates (RFC 8705): discovery says tls_client_certificate_bound_access_tokens false; obdcr itself checks the registered certificate on every management call"},
	{Check: "hydra.par", Severity: SeverityOK, Message: "Hydra has no pushed authorization request endpoint: discovery lists none, and require_pushed_authorization_requests true is refused at /register"},
	{Check: "hydra.jarm", Severity: SeverityOK, Message: "Hydra cannot sign authorization responses (JARM): AU's required authorization_signed_response_alg is recorded, flagged as not honoured (a dry-run warning), and response_mode=jwt is answered unsupported_response_mode by Hydra"},
	{Check: "hydra.id_token_encryption", Severity: SeverityOK, Message: "Hydra cannot encrypt ID tokens: id_token_encrypted_response_alg and _enc are refused at /register"},
	{Check: "hydra.s_hash", Severity: SeverityOK, Message: "Hydra puts no s_hash in ID tokens; FAPI clients must check state themselves (the request object carries it signed)"},
}

// Run checks everything and returns every finding, problems first.
func (s Setup) Run(ctx context.Context) []Finding {
	var out []Finding
	add := func(check, severity, fix, format string, args ...any) {
		out = append(out, Finding{Check: check, Severity: severity, Message: fmt.Sprintf(format, args...), Fix: fix})
	}
	if err := s.Admin.Ready(ctx); err != nil {
		add("hydra.admin", SeverityError, "check HYDRA_ADMIN_URL and that Hydra's admin API is up", "Hydra's admin API does not answer: %v", err)
	} else {
		add("hydra.admin", SeverityOK, "", "Hydra's admin API answers")
	}
	doc, err := s.Discovery.Refresh(ctx)
	if err != nil {
		add("hydra.public", SeverityError, "check HYDRA_PUBLIC_URL and that Hydra's public API is up", "Hydra's discovery document cannot be read: %v", err)
		return sortFindings(out)
	}
	add("hydra.public", SeverityOK, "", "Hydra's public API answers")
	out = append(out, s.registrationEndpoint(ctx), s.idTokenKey(doc))
	if iss := doc.String("issuer"); strings.TrimRight(iss, "/") != strings.TrimRight(s.Issuer, "/") {
		add("hydra.issuer", SeverityError, "set OBDCR_ISSUER to Hydra's issuer (URLS_SELF_ISSUER), or the other way round",
			"Hydra's issuer is %q, OBDCR_ISSUER is %q: request JWTs would be checked against the wrong aud", iss, s.Issuer)
	} else {
		add("hydra.issuer", SeverityOK, "", "Hydra's issuer is OBDCR_ISSUER")
	}
	want := strings.TrimRight(s.PublicURL, "/") + "/register"
	switch got := doc.String("registration_endpoint"); {
	case s.PublicURL == "":
		add("hydra.discovery", SeverityWarning, "set OBDCR_PUBLIC_URL, and route the issuer's /.well-known/openid-configuration to obdcr",
			"OBDCR_PUBLIC_URL is not set: obdcr publishes no discovery document")
	case got != want:
		add("hydra.discovery", SeverityError, "set Hydra's webfinger.oidc_discovery.client_registration_url (WEBFINGER_OIDC_DISCOVERY_CLIENT_REGISTRATION_URL) to "+want,
			"Hydra's discovery registration_endpoint is %q, not obdcr's %q: a client reading Hydra's own document is sent elsewhere", got, want)
	default:
		add("hydra.discovery", SeverityOK, "", "Hydra's discovery points registration at obdcr")
	}
	if off, ok := s.Discovery.ClockOffset(); ok {
		if off < 0 {
			off = -off
		}
		// The Date header has whole seconds: a second of the offset is its own.
		if skew := s.clockSkew(); off > skew+time.Second {
			add("hydra.clock", SeverityError, "synchronise both clocks (NTP)", "Hydra's clock is %s from obdcr's, more than the profiles' clock_skew of %s", off, skew)
		} else {
			add("hydra.clock", SeverityOK, "", "Hydra's clock is within %s of obdcr's", skew+time.Second)
		}
	}
	if s.Edge != nil {
		out = append(out, s.edgeChecks(ctx, doc)...)
	}
	return sortFindings(append(out, s.unsupported()...))
}

// registrationEndpoint: Hydra's own /oauth2/register takes plain JSON with no
// policy at all. The probe is a body Hydra cannot decode, so that an enabled
// endpoint answers 400 and creates nothing; a disabled one answers 404.
func (s Setup) registrationEndpoint(ctx context.Context) Finding {
	f := Finding{Check: "hydra.registration_endpoint"}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(s.HydraPublicURL, "/")+"/oauth2/register", strings.NewReader("{"))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		var res *http.Response
		if res, err = s.HTTP.Do(req); err != nil {
			// Not an answer: whether the endpoint is on is unknown, and saying
			// "on" sent operators hunting a setting that was right.
			f.Severity, f.Message = SeverityError, "could not probe Hydra's own registration endpoint: "+err.Error()
			f.Fix = "check HYDRA_PUBLIC_URL, and HYDRA_ADMIN_CA_FILE when Hydra's public API has a private CA"
			return f
		}
		res.Body.Close()
		if res.StatusCode == http.StatusNotFound {
			f.Severity, f.Message = SeverityOK, "Hydra's own registration endpoint is off"
			return f
		}
		err = fmt.Errorf("POST /oauth2/register answered %d", res.StatusCode)
	}
	f.Severity, f.Fix = SeverityError, "set oidc.dynamic_client_registration.enabled=false (OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED=false) in Hydra"
	f.Message = "Hydra's own registration endpoint is on, so TPPs could bypass every rule: " + err.Error()
	return f
}

// idTokenKey: Hydra signs every ID token with its newest hydra.openid.id-token
// key; a default Hydra's is RS256, which FAPI and both profiles refuse.
func (s Setup) idTokenKey(doc hydra.Document) Finding {
	f := Finding{Check: "hydra.id_token_alg"}
	algs := doc.Strings("id_token_signing_alg_values_supported")
	if len(algs) > 0 && slices.Contains(s.algs(), algs[0]) {
		f.Severity, f.Message = SeverityOK, "Hydra signs ID tokens with "+algs[0]+", which the enabled profiles allow"
		return f
	}
	signs := "no algorithm it states"
	if len(algs) > 0 {
		signs = algs[0]
	}
	f.Severity = SeverityError
	f.Message = fmt.Sprintf("Hydra signs ID tokens with %s, which no enabled profile allows (%s): every registration is refused rather than promise it", signs, strings.Join(s.algs(), ", "))
	f.Fix = fmt.Sprintf("add a %s key: POST to Hydra's admin API /admin/keys/%s with {\"alg\":%q,\"use\":\"sig\"} (obdcr doctor --fix does this). %s",
		s.preferredAlg(), hydra.IDTokenKeySet, s.preferredAlg(), idTokenKeyImpact)
	return f
}

// idTokenKeyImpact is what adding an ID-token key does beyond obdcr: Hydra has
// one ID-token key set for all its clients, and signs with the newest key.
const idTokenKeyImpact = "Hydra signs every client's ID tokens with its newest key, so this changes the ID-token alg of ALL its clients, including those obdcr did not register (the bank's own apps): their relying parties must accept the new alg first"

// Plan says what Fix would do for these findings, with its effect on Hydra's
// other clients, so that obdcr doctor can say it before it acts.
func (s Setup) Plan(findings []Finding) []string {
	var plan []string
	for _, f := range findings {
		if f.Check == "hydra.id_token_alg" && f.Severity == SeverityError {
			plan = append(plan, fmt.Sprintf("add a %s key to Hydra's %s set. %s", s.preferredAlg(), hydra.IDTokenKeySet, idTokenKeyImpact))
		}
		if f.Check == CheckEdgeRegistrations && f.Severity == SeverityError && s.Edge != nil && s.Edge.KeyErr == nil {
			plan = append(plan, s.edgePlan())
		}
	}
	return plan
}

func (s Setup) preferredAlg() string {
	if algs := s.algs(); len(algs) > 0 {
		return algs[0]
	}
	return "PS256"
}

// Fix does what the findings say it may, and only that: when the ID-token key's
// alg is not allowed, it adds a key of the preferred allowed alg; when
// registrations reach Hydra around the edge, it reshapes their Hydra clients as
// edge registrations. It deletes no key, no client and no token.
func (s Setup) Fix(ctx context.Context, findings []Finding) ([]string, error) {
	var done []string
	for _, f := range findings {
		if f.Check == CheckEdgeRegistrations && f.Severity == SeverityError && s.Edge != nil && s.Edge.KeyErr == nil {
			moved, err := s.fixEdge(ctx)
			if done = append(done, moved...); err != nil {
				return done, fmt.Errorf("moving registrations behind the edge: %w", err)
			}
			continue
		}
		if f.Check != "hydra.id_token_alg" || f.Severity != SeverityError {
			continue
		}
		kid, err := s.Admin.AddSigningKey(ctx, hydra.IDTokenKeySet, s.preferredAlg())
		if err != nil {
			return done, fmt.Errorf("adding a %s ID-token key: %w", s.preferredAlg(), err)
		}
		done = append(done, fmt.Sprintf("added a %s key (kid %s) to Hydra's %s set", s.preferredAlg(), kid, hydra.IDTokenKeySet))
	}
	return done, nil
}

// Problems counts the findings that are not ok.
func Problems(findings []Finding) int {
	n := 0
	for _, f := range findings {
		if f.Severity != SeverityOK {
			n++
		}
	}
	return n
}

func sortFindings(f []Finding) []Finding {
	rank := map[string]int{SeverityError: 0, SeverityWarning: 1, SeverityOK: 2}
	slices.SortStableFunc(f, func(a, b Finding) int { return rank[a.Severity] - rank[b.Severity] })
	return f
}

// ErrSetupProblems: obdcr doctor found something wrong.
var ErrSetupProblems = errors.New("setup problems found")

// DoctorConfig is what obdcr doctor reads from the environment: the same
// variables obdcr serve reads, and no more than the check needs.
type DoctorConfig struct {
	HydraAdminURL  string   `env:"HYDRA_ADMIN_URL" envDefault:"http://127.0.0.1:4445"`
	HydraPublicURL string   `env:"HYDRA_PUBLIC_URL" envDefault:"http://127.0.0.1:4444"`
	Issuer         string   `env:"OBDCR_ISSUER,required"`
	PublicURL      string   `env:"OBDCR_PUBLIC_URL"`
	Profiles       []string `env:"OBDCR_PROFILES" envDefault:"uk,au" envSeparator:","`
	// HydraAdminAuth: the doctor reaches Hydra as obdcr serve does.
	HydraAdminAuth HydraAdminAuth `envPrefix:""`
}

// NewDoctor builds the check from the environment. live are the profiles'
// states as the running obdcr has them; nil takes each profile's defaults,
// enabled as OBDCR_PROFILES says.
func NewDoctor(environ map[string]string, live []policy.State) (Setup, error) {
	var c DoctorConfig
	if err := env.ParseWithOptions(&c, env.Options{Environment: environ}); err != nil {
		return Setup{}, oneLine(err)
	}
	if err := c.HydraAdminAuth.validate(); err != nil {
		return Setup{}, err
	}
	hc, err := newHydraClients(c.HydraAdminAuth, c.HydraAdminURL, c.HydraPublicURL, hydraClientOptions{})
	if err != nil {
		return Setup{}, err
	}
	if live == nil {
		for _, p := range OfflineRegistrar(c.Issuer, nil).Profiles {
			live = append(live, policy.State{Enabled: slices.Contains(c.Profiles, p.Name), Settings: p.Defaults})
		}
	}
	return Setup{Admin: hc.admin, Discovery: hc.discovery, HydraPublicURL: c.HydraPublicURL,
		Issuer: c.Issuer, PublicURL: c.PublicURL, Policies: live, HTTP: hc.public}, nil
}

// setup is the check of the Hydra this server fronts, with its live policy.
func (s *Server) setup(ctx context.Context) Setup {
	var states []policy.State
	for _, p := range s.registrar.Profiles {
		if st, err := s.registrar.State.State(ctx, p.Name); err == nil {
			states = append(states, st)
		}
	}
	setup := Setup{Admin: s.hydra, Discovery: s.discovery, HydraPublicURL: s.cfg.HydraPublicURL, Issuer: s.cfg.Issuer,
		PublicURL: s.cfg.PublicURL, Policies: states, HTTP: s.hydraPublic}
	setup.Edge = s.edgeSetup.Load()
	return setup
}

// watchSetup runs the setup check at start-up and every few minutes: what it
// finds is logged as warnings and counted in obdcr_setup_problems.
func (s *Server) watchSetup(ctx context.Context) {
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		findings := s.setup(cctx).Run(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.metrics.setupProblems.Set(float64(Problems(findings)))
		s.findings.Store(&findings)
		for _, f := range findings {
			if f.Severity != SeverityOK {
				s.log.Warn("setup: "+f.Message, "check", f.Check, "severity", f.Severity, "fix", f.Fix)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Minute):
		}
	}
}

// SetupFindings are the last setup check's findings; nil until the first ends.
func (s *Server) SetupFindings() []Finding {
	if f := s.findings.Load(); f != nil {
		return *f
	}
	return nil
}
