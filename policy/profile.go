package policy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

// Profile is one jurisdiction's registration policy: data, plus an ordered chain
// of rules in the manner of PingFederate's client-registration policies. A new
// profile (Brazil, say) is a new Profile value; nothing else needs to change.
type Profile struct {
	Name     string // "uk", "au": the admin API and audit use it
	Issuer   string // the SSA iss that selects this profile
	Limits   Limits
	Defaults Settings
	Rules    []Rule
	// DecodeStatement turns a verified SSA's claims into a SoftwareStatement.
	DecodeStatement func(claims RawClaims) (*SoftwareStatement, error)
	// Respond shapes the RFC 7591 answer: each specification flattens a different
	// set of SSA claims to the top level.
	Respond func(r *Registration) map[string]any
	// Scopes are the scopes this profile can grant, for the discovery document.
	Scopes []string
	// ManagementScope is the scope a token needs for GET, PUT and DELETE
	// /register/{client_id}; "" when the specification asks for none (UK).
	ManagementScope string
	// CodeNeedsJARM: the FAPI edge takes response_type code only with a JWT
	// response mode (FAPI 1.0 Advanced §5.2.2-2: UK); code id_token needs none.
	CodeNeedsJARM bool
}

// Rule is one link of a profile's chain. Check refuses with an *Error, or fails
// with another error (a dependency down) that stops the chain at once.
type Rule struct {
	Name string
	// Needs names earlier rules whose result this one relies on; if any did not
	// pass, this rule is skipped rather than run on data that is not there.
	Needs []string
	Check func(ctx context.Context, ev *Evaluation) error
}

// Evaluation is one request on its way through a profile's chain. Rules read the
// request and statement and narrow Granted, the metadata that will be registered.
type Evaluation struct {
	Now         time.Time
	Profile     *Profile
	Settings    Settings
	Audiences   []string          // accepted request aud values
	Certificate *x509.Certificate // the TLS client certificate
	DryRun      bool
	// Current is the registration a PUT replaces; nil on POST.
	Current *Registration

	Request      *JWS
	Claims       *RequestClaims
	StatementJWS *JWS
	// StatementClaims are the SSA's claims as parsed, not yet verified or decoded.
	StatementClaims RawClaims
	Statement       *SoftwareStatement // set by the statement rule once verified
	TPPKeys         *KeySet            // set once the request signature verified
	Granted         ClientMetadata
	// Warnings are what rules recorded but the server will not honour; a dry
	// run shows them on the rule that found them.
	Warnings []string
	// EdgeAlgs: the FAPI edge is on and signs JARM with these (Registrar.EdgeAlgs).
	EdgeAlgs []string
}

// Warn records something a rule lets through but the server will not honour.
func (ev *Evaluation) Warn(format string, args ...any) {
	ev.Warnings = append(ev.Warnings, fmt.Sprintf(format, args...))
}

// Skip is returned by a rule that cannot be judged with what a dry run was given
// (the TPP's certificate, say); the report shows it skipped, with the reason.
type Skip struct{ Reason string }

func (s *Skip) Error() string { return "skipped: " + s.Reason }

// Verdict is a rule's result in a dry run.
type Verdict string

const (
	Pass    Verdict = "pass"
	Fail    Verdict = "fail"
	Skipped Verdict = "skipped"
)

// RuleResult is one line of a dry-run report.
type RuleResult struct {
	Rule    string  `json:"rule"`
	Verdict Verdict `json:"verdict"`
	Message string  `json:"message,omitempty"`
}

// Evaluate runs the chain in order. With all false it stops at the first refusal,
// as a registration must; with all true it goes on, so a dry run can list every
// problem at once. It returns the first refusal, or the first other failure.
func (p *Profile) Evaluate(ctx context.Context, ev *Evaluation, all bool) (_ []RuleResult, err error) {
	ctx, span := startSpan(ctx, "policy.rules", attribute.String("obdcr.profile", p.Name))
	defer func() { endSpan(span, err) }()
	traced := tracing(ctx)
	results := make([]RuleResult, 0, len(p.Rules))
	passed := make([]string, 0, len(p.Rules))
	var first *Error
	for i, r := range p.Rules {
		if missing := firstMissing(r.Needs, passed); missing != "" {
			results = append(results, RuleResult{Rule: r.Name, Verdict: Skipped, Message: "skipped: " + missing + " did not pass"})
			continue
		}
		warned := len(ev.Warnings)
		rctx, rspan := ctx, noSpan
		if traced {
			rctx, rspan = startSpan(ctx, "rule "+r.Name)
		}
		err := r.Check(rctx, ev)
		endSpan(rspan, err)
		if err == nil {
			passed = append(passed, r.Name)
			res := RuleResult{Rule: r.Name, Verdict: Pass}
			if len(ev.Warnings) > warned {
				res.Message = "warning: " + strings.Join(ev.Warnings[warned:], "; ")
			}
			results = append(results, res)
			continue
		}
		var skip *Skip
		if errors.As(err, &skip) {
			results = append(results, RuleResult{Rule: r.Name, Verdict: Skipped, Message: skip.Error()})
			continue
		}
		var refusal *Error
		if !errors.As(err, &refusal) {
			return results, err
		}
		if refusal.Rule == "" {
			refusal.Rule = r.Name
		}
		results = append(results, RuleResult{Rule: r.Name, Verdict: Fail, Message: refusal.Description})
		if first == nil {
			first = refusal
		}
		if !all {
			for _, rest := range p.Rules[i+1:] {
				results = append(results, RuleResult{Rule: rest.Name, Verdict: Skipped, Message: "skipped: stopped at " + r.Name})
			}
			break
		}
	}
	if first != nil {
		return results, first
	}
	return results, nil
}

func firstMissing(needs []string, passed []string) string {
	for _, n := range needs {
		if !slices.Contains(passed, n) {
			return n
		}
	}
	return ""
}

// RuleNames lists the chain in order, for documentation and the admin API.
func (p *Profile) RuleNames() []string {
	names := make([]string, len(p.Rules))
	for i, r := range p.Rules {
		names[i] = r.Name
	}
	return names
}
