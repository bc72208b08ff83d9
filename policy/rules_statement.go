package policy

import (
	"context"
	"errors"
	"time"
)

// The software statement's rules: the directory's signature on it, the claims
// every later rule reads, its age. Each refusal is invalid_software_statement.

// SSAHeader applies RFC 8725 to the SSA's header.
func SSAHeader() Rule {
	return Rule{Name: RuleSSAHeader, Check: func(_ context.Context, ev *Evaluation) error {
		if err := ev.StatementJWS.CheckHeader(ev.Settings.SigningAlgs); err != nil {
			return Refuse(InvalidSoftwareStatement, "software_statement", "%v", err)
		}
		return nil
	}}
}

// SSASignature verifies the SSA with the directory's JWKS, key chosen by kid.
func SSASignature(keys TrustStore, jwksURL string) Rule {
	return Rule{Name: RuleSSASignature, Needs: []string{RuleSSAHeader}, Check: func(ctx context.Context, ev *Evaluation) error {
		j := ev.StatementJWS
		key, err := keys.Key(ctx, jwksURL, j.KeyID)
		if errors.Is(err, ErrUnknownKey) {
			return Refuse(InvalidSoftwareStatement, "software_statement", "kid %q is not a signing key of the directory (%s)", j.KeyID, jwksURL)
		}
		if err != nil {
			// The directory being down is obdcr's problem, not the TPP's.
			return &Unavailable{Dependency: "directory", Err: err}
		}
		if err := j.Verify(key); err != nil {
			return Refuse(InvalidSoftwareStatement, "software_statement", "%v", err)
		}
		return nil
	}}
}

// SSAClaims decodes the verified SSA with the profile's decoder and requires the
// claims every later rule depends on.
func SSAClaims() Rule {
	return Rule{Name: RuleSSAClaims, Needs: []string{RuleSSASignature}, Check: func(_ context.Context, ev *Evaluation) error {
		st, err := ev.Profile.DecodeStatement(ev.StatementClaims)
		if err != nil {
			claim := ClaimOf(err)
			if claim == "" {
				claim = "software_statement"
			} else {
				claim = "software_statement." + claim
			}
			return Refuse(InvalidSoftwareStatement, claim, "%v", trimClaim(err))
		}
		st.Raw = ev.Claims.SoftwareStatement
		for _, c := range []struct{ name, v string }{{"jti", st.ID}, {"software_id", st.SoftwareID}, {"org_id", st.OrgID}} {
			if c.v == "" {
				return Refuse(InvalidSoftwareStatement, "software_statement."+c.name, "is required")
			}
		}
		if st.IssuedAt.IsZero() {
			return Refuse(InvalidSoftwareStatement, "software_statement.iat", "is required")
		}
		if st.JWKSURI == "" {
			return Refuse(InvalidSoftwareStatement, "software_statement", "names no JWKS for the software's keys")
		}
		ev.Statement = st
		return nil
	}}
}

// SSALifetime checks iat, exp and the profile's maximum SSA age.
func SSALifetime() Rule {
	return Rule{Name: RuleSSALifetime, Needs: []string{RuleSSAClaims}, Check: func(_ context.Context, ev *Evaluation) error {
		st, skew := ev.Statement, time.Duration(ev.Settings.ClockSkew)
		if st.IssuedAt.After(ev.Now.Add(skew)) {
			return Refuse(InvalidSoftwareStatement, "software_statement.iat", "is in the future (%s)", st.IssuedAt.Format(time.RFC3339))
		}
		if !st.NotBefore.IsZero() && st.NotBefore.After(ev.Now.Add(skew)) {
			return Refuse(InvalidSoftwareStatement, "software_statement.nbf", "the SSA is not valid before %s (RFC 7519 §4.1.5)", st.NotBefore.Format(time.RFC3339))
		}
		if !st.ExpiresAt.IsZero() && ev.Now.After(st.ExpiresAt.Add(skew)) {
			return Refuse(InvalidSoftwareStatement, "software_statement.exp", "the SSA expired at %s; get a fresh one from the directory", st.ExpiresAt.Format(time.RFC3339))
		}
		if max := time.Duration(ev.Settings.SSAMaxAge); max > 0 && ev.Now.Sub(st.IssuedAt) > max+skew {
			return Refuse(InvalidSoftwareStatement, "software_statement.iat", "the SSA was issued %s ago; this server accepts SSAs up to %s old", ev.Now.Sub(st.IssuedAt).Round(time.Second), max)
		}
		return nil
	}}
}

// StatementChecks are the SSA checks every profile starts with: RFC 8725 header,
// the directory's signature, the claims, the lifetime.
func StatementChecks(keys TrustStore, directoryJWKS string) []Rule {
	return []Rule{SSAHeader(), SSASignature(keys, directoryJWKS), SSAClaims(), SSALifetime()}
}
