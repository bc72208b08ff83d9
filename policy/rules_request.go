package policy

import (
	"context"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"time"
)

// The signed request's rules: its header and the TPP's signature, who sent it,
// to whom, when, once only, and the TLS certificate it came over.

// RequestHeader applies RFC 8725 to the request's header.
func RequestHeader() Rule {
	return Rule{Name: RuleReqHeader, Check: func(_ context.Context, ev *Evaluation) error {
		if err := ev.Request.CheckHeader(ev.Settings.SigningAlgs); err != nil {
			return Refuse(InvalidClientMetadata, "", "the request JWT %v", err)
		}
		return nil
	}}
}

// RequestSignature verifies the request with the TPP's JWKS that the verified SSA names.
func RequestSignature(keys TrustStore) Rule {
	return Rule{Name: RuleReqSignature, Needs: []string{RuleReqHeader, RuleSSAClaims}, Check: func(ctx context.Context, ev *Evaluation) error {
		u, j := ev.Statement.JWKSURI, ev.Request
		key, err := keys.Key(ctx, u, j.KeyID)
		if errors.Is(err, ErrUnknownKey) {
			return Refuse(InvalidClientMetadata, "", "the request JWT is signed with kid %q, which is not in the software's JWKS %s", j.KeyID, u)
		}
		if err != nil {
			return Refuse(InvalidClientMetadata, "", "the software's JWKS could not be used: %v", err)
		}
		if err := j.Verify(key); err != nil {
			return Refuse(InvalidClientMetadata, "", "the request JWT %v", err)
		}
		// The whole set is cached by the trust store; the certificate rule reads it.
		if set, err := keys.Set(ctx, u); err == nil {
			ev.TPPKeys = set
		}
		return nil
	}}
}

// RequestIssuer: the request's iss is the SSA's software_id (OBIE DCR, CDS).
func RequestIssuer() Rule {
	return Rule{Name: RuleReqIssuer, Needs: []string{RuleSSAClaims}, Check: func(_ context.Context, ev *Evaluation) error {
		if ev.Claims.Issuer == "" {
			return Refuse(InvalidClientMetadata, "iss", "is required and must be the SSA's software_id %q", ev.Statement.SoftwareID)
		}
		if ev.Claims.Issuer != ev.Statement.SoftwareID {
			return Refuse(InvalidClientMetadata, "iss", "%q must equal the SSA's software_id %q", ev.Claims.Issuer, ev.Statement.SoftwareID)
		}
		return nil
	}}
}

// RequestAudience: aud names this authorization server.
func RequestAudience() Rule {
	return Rule{Name: RuleReqAudience, Check: func(_ context.Context, ev *Evaluation) error {
		if len(ev.Claims.Audience) == 0 {
			return Refuse(InvalidClientMetadata, "aud", "is required; use %s", strings.Join(ev.Audiences, " or "))
		}
		for _, a := range ev.Claims.Audience {
			if slices.Contains(ev.Audiences, a) {
				return nil
			}
		}
		return Refuse(InvalidClientMetadata, "aud", "%q does not name this server; use %s", strings.Join(ev.Claims.Audience, " "), strings.Join(ev.Audiences, " or "))
	}}
}

// RequestLifetime: iat and exp present and consistent with now, within clock skew.
func RequestLifetime() Rule {
	return Rule{Name: RuleReqLifetime, Check: func(_ context.Context, ev *Evaluation) error {
		c, skew := ev.Claims, time.Duration(ev.Settings.ClockSkew)
		switch {
		case c.IssuedAt == nil:
			return Refuse(InvalidClientMetadata, "iat", "is required")
		case c.ExpiresAt == nil:
			return Refuse(InvalidClientMetadata, "exp", "is required")
		case c.IssuedAt.After(ev.Now.Add(skew)):
			return Refuse(InvalidClientMetadata, "iat", "is in the future (%s); check the clock", c.IssuedAt.Format(time.RFC3339))
		case ev.Now.After(c.ExpiresAt.Add(skew)):
			return Refuse(InvalidClientMetadata, "exp", "the request expired at %s", c.ExpiresAt.Format(time.RFC3339))
		case c.NotBefore != nil && c.NotBefore.After(ev.Now.Add(skew)):
			// RFC 7519 §4.1.5: not to be accepted before its nbf.
			return Refuse(InvalidClientMetadata, "nbf", "the request is not valid before %s; check the clock", c.NotBefore.Format(time.RFC3339))
		case !c.ExpiresAt.After(c.IssuedAt.Time):
			return Refuse(InvalidClientMetadata, "exp", "must be after iat")
		}
		if max := time.Duration(ev.Settings.RequestMaxAge); max > 0 && ev.Now.Sub(c.IssuedAt.Time) > max+skew {
			return Refuse(InvalidClientMetadata, "iat", "the request was signed %s ago; this server accepts requests up to %s old", ev.Now.Sub(c.IssuedAt.Time).Round(time.Second), max)
		}
		return nil
	}}
}

// RequestJTI: a jti is present and was not used before. The registrar consumes
// the jti atomically once every rule has passed, so that a dry run or a refused
// request does not burn it; that claim is the check on a real request, refusing
// under this rule's name with this answer. Only a dry run, which claims nothing,
// looks here: looking on every request too was a store read per registration (a
// round trip on PostgreSQL) that the claim repeats.
func RequestJTI(replay ReplayCache) Rule {
	return Rule{Name: RuleReqJTI, Check: func(ctx context.Context, ev *Evaluation) error {
		if ev.Claims.ID == "" {
			return Refuse(InvalidClientMetadata, "jti", "is required, and must be new for every request")
		}
		if !ev.DryRun {
			return nil
		}
		seen, err := replay.Seen(ctx, ReplayKey(ev.Profile.Name, ev.Claims.Issuer, ev.Claims.ID))
		if err != nil {
			return &Unavailable{Dependency: "store", Err: err}
		}
		if seen {
			return Refuse(InvalidClientMetadata, "jti", "%q has been used already; every request needs a new jti", ev.Claims.ID)
		}
		return nil
	}}
}

// RequestSoftwareID: software_id, when sent, is the SSA's. On PUT it must also be
// the registration's: a client cannot be moved to another software.
func RequestSoftwareID() Rule {
	return Rule{Name: RuleReqSoftwareID, Needs: []string{RuleSSAClaims}, Check: func(_ context.Context, ev *Evaluation) error {
		if id := ev.Claims.SoftwareID; id != "" && id != ev.Statement.SoftwareID {
			return Refuse(InvalidClientMetadata, "software_id", "%q must equal the SSA's software_id %q", id, ev.Statement.SoftwareID)
		}
		if ev.Current != nil && ev.Current.SoftwareID != ev.Statement.SoftwareID {
			return Refuse(InvalidClientMetadata, "software_id", "the SSA is for software %q, but this client is registered for %q", ev.Statement.SoftwareID, ev.Current.SoftwareID)
		}
		return nil
	}}
}

// TransportCertificate: the mTLS certificate is the TPP's, proved by the TPP's
// JWKS publishing it (a tls key whose x5c or x5t#S256 matches), or by the OBIE
// certificate profile (OU = org_id, CN = software_id).
func TransportCertificate() Rule {
	return Rule{Name: RuleTransportCert, Needs: []string{RuleSSAClaims}, Check: func(_ context.Context, ev *Evaluation) error {
		mode := ev.Settings.TransportCertificate
		if mode == "none" {
			return nil
		}
		cert := ev.Certificate
		if cert == nil && ev.DryRun {
			return &Skip{Reason: "no transport certificate was given to the dry run"}
		}
		if cert == nil {
			return Refuse(UnapprovedSoftwareStatement, "", "no TLS client certificate was presented")
		}
		inJWKS := certInJWKS(cert, ev.TPPKeys)
		bySubject := subjectMatches(cert, ev.Statement)
		ok := map[string]bool{"any": inJWKS || bySubject, "jwks": inJWKS, "subject": bySubject}[mode]
		if ok {
			return nil
		}
		want := map[string]string{
			"any":     "published as a tls key in the software's JWKS, or with subject OU=" + ev.Statement.OrgID + ", CN=" + ev.Statement.SoftwareID,
			"jwks":    "published as a tls key (x5c or x5t#S256) in the software's JWKS",
			"subject": "with subject OU=" + ev.Statement.OrgID + ", CN=" + ev.Statement.SoftwareID,
		}[mode]
		return Refuse(UnapprovedSoftwareStatement, "", "the TLS client certificate (%s) is not the transport certificate of software %s: it must be %s",
			cert.Subject.String(), ev.Statement.SoftwareID, want)
	}}
}

func certInJWKS(cert *x509.Certificate, set *KeySet) bool {
	return set.CertKey(cert, "tls") != nil
}

func subjectMatches(cert *x509.Certificate, st *SoftwareStatement) bool {
	return namesSoftware(cert.Subject.OrganizationalUnit, cert.Subject.CommonName, st)
}

// namesSoftware: a subject names the SSA's organisation (an OU) and software
// (the CN), as OB transport certificates do.
func namesSoftware(ous []string, cn string, st *SoftwareStatement) bool {
	return slices.Contains(ous, st.OrgID) && cn == st.SoftwareID
}

// RequestChecks are the checks of the signed request itself, in the order the
// CDS reference server gives its errors: header, signature, iss, aud, lifetime,
// jti, software_id.
func RequestChecks(keys TrustStore, replay ReplayCache) []Rule {
	return []Rule{RequestHeader(), RequestSignature(keys), RequestIssuer(), RequestAudience(), RequestLifetime(), RequestJTI(replay), RequestSoftwareID()}
}
