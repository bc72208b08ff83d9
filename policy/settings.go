package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Duration is a time.Duration written as "30s" in JSON, as admins type it.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf(`must be a duration such as "30s" or "5m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf(`%q is not a duration such as "30s" or "5m"`, truncate(s, echoLimit))
	}
	*d = Duration(v)
	return nil
}

// Settings are what a policy admin tunes per profile at runtime. A profile's
// defaults follow its specification; Limits says what each may be set to.
type Settings struct {
	SigningAlgs              []string `json:"signing_algs"`
	TokenEndpointAuthMethods []string `json:"token_endpoint_auth_methods"`
	GrantTypes               []string `json:"grant_types"`
	ResponseTypes            []string `json:"response_types"`
	ApplicationTypes         []string `json:"application_types"`
	// Scopes the bank supports; a requested scope outside them is refused (UK)
	// or dropped (AU). Empty: whatever the SSA allows.
	Scopes              []string `json:"scopes"`
	ClockSkew           Duration `json:"clock_skew"`
	SSAMaxAge           Duration `json:"ssa_max_age"`
	RequestMaxAge       Duration `json:"request_max_age"`
	AllowDelete         bool     `json:"allow_delete"`
	RequireActiveStatus bool     `json:"require_active_status"`
	// MultipleRegistrations lets one software_id hold several clients (OBIE allows it).
	MultipleRegistrations bool `json:"multiple_registrations"`
	// TransportCertificate is the proof that the mTLS certificate is the TPP's:
	// "any" (JWKS or subject), "jwks", "subject", or "none".
	TransportCertificate string `json:"transport_certificate"`
	// The FAPI edge's (used only when it is on): whether the authorization
	// endpoint takes request objects only by PAR, whether PKCE is required
	// without PAR too, and the response modes a client may ask for.
	RequirePAR    bool     `json:"require_par"`
	PKCERequired  bool     `json:"pkce_required"`
	ResponseModes []string `json:"response_modes"`
	// BoundTokens: every access token the edge issues to the profile's
	// clients is bound to the certificate of its token request (RFC 8705 §3).
	// A profile's defaults must say true: false is refused unless its Limits
	// allow unbound tokens, so a profile that forgets it fails to load rather
	// than issue bearer tokens.
	BoundTokens bool `json:"bound_tokens"`
}

// ResponseModes are every response_mode the FAPI edge can answer in.
var ResponseModes = []string{"query", "fragment", "form_post", "jwt", "query.jwt", "fragment.jwt", "form_post.jwt"}

// Limits are the values each Settings list may hold for a profile. They encode what
// the specification and Hydra allow, so that no admin can switch on, say,
// tls_client_auth, which Hydra would store but never honour.
type Limits struct {
	SigningAlgs              []string
	TokenEndpointAuthMethods []string
	GrantTypes               []string
	ResponseTypes            []string
	ApplicationTypes         []string
	// MultipleRegistrations says whether the setting of that name may be switched on.
	MultipleRegistrations bool
	// UnboundTokens says whether bound_tokens may be switched off. FAPI 1.0
	// Advanced §5.2.2-5/6 (UK) and the CDS (AU) require certificate-bound
	// tokens, so no shipped profile allows it.
	UnboundTokens bool
}

var transportProofs = []string{"any", "jwks", "subject", "none"}

// echoLimit caps how much of an admin's value an error repeats: a settings error
// is shown in the console, written to the audit and logged, so a megabyte-long
// name must not become a megabyte-long message.
const echoLimit = 64

// Validate returns an error naming the first field that is out of bounds.
func (s Settings) Validate(l Limits) error {
	lists := []struct {
		name     string
		got, may []string
		nonEmpty bool
	}{
		{"signing_algs", s.SigningAlgs, l.SigningAlgs, true},
		{"token_endpoint_auth_methods", s.TokenEndpointAuthMethods, l.TokenEndpointAuthMethods, true},
		{"grant_types", s.GrantTypes, l.GrantTypes, true},
		{"response_types", s.ResponseTypes, l.ResponseTypes, true},
		{"application_types", s.ApplicationTypes, l.ApplicationTypes, true},
		{"response_modes", s.ResponseModes, ResponseModes, false},
	}
	for _, f := range lists {
		if f.nonEmpty && len(f.got) == 0 {
			return fmt.Errorf("%s: must list at least one of %s", f.name, strings.Join(f.may, ", "))
		}
		for _, v := range f.got {
			if !slices.Contains(f.may, v) {
				return fmt.Errorf("%s: %q is not allowed; allowed: %s", f.name, truncate(v, echoLimit), strings.Join(f.may, ", "))
			}
		}
	}
	durations := []struct {
		name     string
		d        Duration
		min, max time.Duration
	}{
		{"clock_skew", s.ClockSkew, 0, 5 * time.Minute},
		{"ssa_max_age", s.SSAMaxAge, 0, 365 * 24 * time.Hour},
		{"request_max_age", s.RequestMaxAge, 0, 24 * time.Hour},
	}
	for _, d := range durations {
		if time.Duration(d.d) < d.min || time.Duration(d.d) > d.max {
			return fmt.Errorf("%s: %s is out of range %s to %s", d.name, time.Duration(d.d), d.min, d.max)
		}
	}
	if s.MultipleRegistrations && !l.MultipleRegistrations {
		return fmt.Errorf("multiple_registrations: this profile's specification allows one registration per software_id")
	}
	if !s.BoundTokens && !l.UnboundTokens {
		return fmt.Errorf("bound_tokens: must be true for this profile: its specification requires certificate-bound access tokens (FAPI 1.0 Advanced §5.2.2-5/6, RFC 8705)")
	}
	if !slices.Contains(transportProofs, s.TransportCertificate) {
		return fmt.Errorf("transport_certificate: %q is not allowed; allowed: %s", truncate(s.TransportCertificate, echoLimit), strings.Join(transportProofs, ", "))
	}
	return nil
}

// Merge applies a partial JSON patch of settings onto s. Unknown fields are refused
// so that a typo does not silently leave a setting as it was.
func (s Settings) Merge(patch json.RawMessage) (Settings, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(patch, &fields); err != nil {
		return s, fmt.Errorf("settings: must be a JSON object")
	}
	known := map[string]bool{}
	for _, name := range settingNames() {
		known[name] = true
	}
	for name := range fields {
		if !known[name] {
			return s, fmt.Errorf("%q: unknown setting; known: %s", truncate(name, echoLimit), strings.Join(settingNames(), ", "))
		}
	}
	out := s.clone()
	for name, raw := range fields {
		one, _ := json.Marshal(map[string]json.RawMessage{name: raw})
		if err := json.Unmarshal(one, &out); err != nil {
			return s, fmt.Errorf("%s: %v", name, unwrapJSONError(err))
		}
	}
	return out, nil
}

func (s Settings) clone() Settings {
	c := s
	c.SigningAlgs = slices.Clone(s.SigningAlgs)
	c.TokenEndpointAuthMethods = slices.Clone(s.TokenEndpointAuthMethods)
	c.GrantTypes = slices.Clone(s.GrantTypes)
	c.ResponseTypes = slices.Clone(s.ResponseTypes)
	c.ApplicationTypes = slices.Clone(s.ApplicationTypes)
	c.Scopes = slices.Clone(s.Scopes)
	c.ResponseModes = slices.Clone(s.ResponseModes)
	return c
}

func settingNames() []string {
	b, _ := json.Marshal(Settings{})
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func unwrapJSONError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "cannot unmarshal "); i >= 0 {
		return "has the wrong type: " + truncate(msg[i+len("cannot unmarshal "):], echoLimit)
	}
	return truncate(msg, 2*echoLimit)
}
