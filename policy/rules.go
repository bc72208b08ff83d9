package policy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// The rules every profile composes its chain from. Names are stable: the audit,
// metrics and dry-run reports use them, and admins search by them.
const (
	RuleSSAHeader      = "ssa.header"
	RuleSSASignature   = "ssa.signature"
	RuleSSAClaims      = "ssa.claims"
	RuleSSALifetime    = "ssa.lifetime"
	RuleReqHeader      = "request.header"
	RuleReqSignature   = "request.signature"
	RuleReqIssuer      = "request.iss"
	RuleReqAudience    = "request.aud"
	RuleReqLifetime    = "request.lifetime"
	RuleReqJTI         = "request.jti"
	RuleReqSoftwareID  = "request.software_id"
	RuleTransportCert  = "transport_certificate"
	RuleRedirectURIs   = "redirect_uris"
	RuleAuthMethod     = "token_endpoint_auth_method"
	RuleAuthSigningAlg = "token_endpoint_auth_signing_alg"
	RuleGrantTypes     = "grant_types"
	RuleResponseTypes  = "response_types"
	RuleAppType        = "application_type"
)

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
		if !st.ExpiresAt.IsZero() && ev.Now.After(st.ExpiresAt.Add(skew)) {
			return Refuse(InvalidSoftwareStatement, "software_statement.exp", "the SSA expired at %s; get a fresh one from the directory", st.ExpiresAt.Format(time.RFC3339))
		}
		if max := time.Duration(ev.Settings.SSAMaxAge); max > 0 && ev.Now.Sub(st.IssuedAt) > max+skew {
			return Refuse(InvalidSoftwareStatement, "software_statement.iat", "the SSA was issued %s ago; this server accepts SSAs up to %s old", ev.Now.Sub(st.IssuedAt).Round(time.Second), max)
		}
		return nil
	}}
}

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

func certInJWKS(cert *x509.Certificate, set jwk.Set) bool {
	if set == nil {
		return false
	}
	sum := sha256.Sum256(cert.Raw)
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if k.KeyUsage() != "tls" {
			continue
		}
		if t := k.X509CertThumbprintS256(); t != "" {
			if b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(t, "=")); err == nil && subtle.ConstantTimeCompare(b, sum[:]) == 1 {
				return true
			}
		}
		if chain := k.X509CertChain(); chain != nil && chain.Len() > 0 {
			if first, ok := chain.Get(0); ok {
				if der, err := base64.StdEncoding.DecodeString(string(first)); err == nil && subtle.ConstantTimeCompare(der, cert.Raw) == 1 {
					return true
				}
			}
		}
	}
	return false
}

func subjectMatches(cert *x509.Certificate, st *SoftwareStatement) bool {
	return slices.Contains(cert.Subject.OrganizationalUnit, st.OrgID) && cert.Subject.CommonName == st.SoftwareID
}

// RedirectURIPolicy bounds redirect URIs: the FAPI and OBIE rules, the same for
// every profile so far.
type RedirectURIPolicy struct {
	Max       int // how many
	MaxLength int // characters each
}

// RedirectURIs: each https, exact, no fragment, no localhost, and among the SSA's;
// absent means all of the SSA's.
func RedirectURIs(p RedirectURIPolicy) Rule {
	return Rule{Name: RuleRedirectURIs, Needs: []string{RuleSSAClaims}, Check: func(_ context.Context, ev *Evaluation) error {
		uris, allowed := ev.Granted.RedirectURIs, ev.Statement.RedirectURIs
		if len(uris) == 0 {
			uris = StringList(allowed)
		}
		if len(uris) == 0 {
			return Refuse(InvalidRedirectURI, "redirect_uris", "none requested and the SSA lists none")
		}
		if len(uris) > p.Max {
			return Refuse(InvalidRedirectURI, "redirect_uris", "%d URIs, more than the %d allowed", len(uris), p.Max)
		}
		for _, raw := range uris {
			if err := checkRedirectURI(raw, p.MaxLength); err != nil {
				return Refuse(InvalidRedirectURI, "redirect_uris", "%q %v", truncate(raw, 80), err)
			}
			if !slices.Contains(allowed, raw) {
				return Refuse(InvalidRedirectURI, "redirect_uris", "%q is not among the SSA's redirect URIs (%s)", truncate(raw, 80), strings.Join(allowed, ", "))
			}
		}
		ev.Granted.RedirectURIs = uris
		return nil
	}}
}

func checkRedirectURI(raw string, maxLen int) error {
	if len(raw) > maxLen {
		return fmt.Errorf("is longer than %d characters", maxLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URI")
	}
	switch {
	case u.Scheme != "https":
		return errors.New("must use https")
	case u.Host == "":
		return errors.New("must name a host")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("must not have a fragment")
	case u.User != nil:
		return errors.New("must not carry credentials")
	}
	// A trailing dot names the same host, and any loopback address is localhost.
	h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return errors.New("must not point at localhost")
	}
	if ip, err := netip.ParseAddr(h); err == nil && ip.Unmap().IsLoopback() {
		return errors.New("must not point at localhost")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// tlsAuthReason says why a method that FAPI allows cannot be registered here.
var unsupportedAuth = map[string]string{
	"tls_client_auth":             "Hydra cannot authenticate clients by certificate (RFC 8705); register with private_key_jwt",
	"self_signed_tls_client_auth": "Hydra cannot authenticate clients by certificate (RFC 8705); register with private_key_jwt",
	"client_secret_jwt":           "Hydra cannot verify client_secret_jwt assertions; register with private_key_jwt",
}

// AuthMethod: token_endpoint_auth_method among what the profile allows and Hydra
// can honour. required says whether it may be absent (then the first allowed).
func AuthMethod(required bool) Rule {
	return Rule{Name: RuleAuthMethod, Check: func(_ context.Context, ev *Evaluation) error {
		m, allowed := ev.Granted.TokenEndpointAuthMethod, ev.Settings.TokenEndpointAuthMethods
		if m == "" {
			if required {
				return Refuse(InvalidClientMetadata, "token_endpoint_auth_method", "is required; allowed: %s", strings.Join(allowed, ", "))
			}
			m = allowed[0]
		}
		if why, ok := unsupportedAuth[m]; ok && !slices.Contains(allowed, m) {
			return Refuse(InvalidClientMetadata, "token_endpoint_auth_method", "%s is not supported: %s", m, why)
		}
		if !slices.Contains(allowed, m) {
			return Refuse(InvalidClientMetadata, "token_endpoint_auth_method", "%q is not allowed; allowed: %s", m, strings.Join(allowed, ", "))
		}
		ev.Granted.TokenEndpointAuthMethod = m
		return nil
	}}
}

// AuthSigningAlg: with private_key_jwt, the assertion algorithm is required and allowed.
func AuthSigningAlg() Rule {
	return Rule{Name: RuleAuthSigningAlg, Needs: []string{RuleAuthMethod}, Check: func(_ context.Context, ev *Evaluation) error {
		if ev.Granted.TokenEndpointAuthMethod != "private_key_jwt" {
			if ev.Granted.TokenEndpointAuthSigningAlg != "" {
				return Refuse(InvalidClientMetadata, "token_endpoint_auth_signing_alg", "applies only to private_key_jwt")
			}
			return nil
		}
		return SigningAlgClaim("token_endpoint_auth_signing_alg", true)(ev)
	}}
}

// SigningAlgClaim returns a check that a claim holding a JWS algorithm is among
// the profile's signing algorithms (PS256, ES256 by default; FAPI 1.0 §8.6).
func SigningAlgClaim(claim string, required bool) func(ev *Evaluation) error {
	return func(ev *Evaluation) error {
		v := metadataField(&ev.Granted, claim)
		if *v == "" {
			if required {
				return Refuse(InvalidClientMetadata, claim, "is required; allowed: %s", strings.Join(ev.Settings.SigningAlgs, ", "))
			}
			return nil
		}
		if !slices.Contains(ev.Settings.SigningAlgs, *v) {
			return Refuse(InvalidClientMetadata, claim, "%q is not allowed; allowed: %s", *v, strings.Join(ev.Settings.SigningAlgs, ", "))
		}
		return nil
	}
}

// AlgRule makes a whole rule of SigningAlgClaim.
func AlgRule(claim string, required bool) Rule {
	check := SigningAlgClaim(claim, required)
	return Rule{Name: claim, Check: func(_ context.Context, ev *Evaluation) error { return check(ev) }}
}

func metadataField(m *ClientMetadata, claim string) *string {
	switch claim {
	case "token_endpoint_auth_signing_alg":
		return &m.TokenEndpointAuthSigningAlg
	case "id_token_signed_response_alg":
		return &m.IDTokenSignedResponseAlg
	case "request_object_signing_alg":
		return &m.RequestObjectSigningAlg
	case "authorization_signed_response_alg":
		return &m.AuthorizationSignedResponseAlg
	}
	panic("policy: no algorithm claim " + claim)
}

// GrantTypes: every grant type among the profile's; must lists what is required.
func GrantTypes(required bool, must ...string) Rule {
	return Rule{Name: RuleGrantTypes, Check: func(_ context.Context, ev *Evaluation) error {
		gts, allowed := ev.Granted.GrantTypes, ev.Settings.GrantTypes
		if len(gts) == 0 {
			if required {
				return Refuse(InvalidClientMetadata, "grant_types", "is required; allowed: %s", strings.Join(allowed, ", "))
			}
			gts = StringList{"authorization_code"}
		}
		for _, g := range gts {
			if !slices.Contains(allowed, g) {
				return Refuse(InvalidClientMetadata, "grant_types", "%q is not allowed; allowed: %s", g, strings.Join(allowed, ", "))
			}
		}
		for _, m := range must {
			if !slices.Contains(gts, m) {
				return Refuse(InvalidClientMetadata, "grant_types", "must include %s", m)
			}
		}
		ev.Granted.GrantTypes = uniq(gts)
		return nil
	}}
}

// ResponseTypes: each among the profile's; absent means def. A response type
// needs the authorization_code grant.
func ResponseTypes(def string) Rule {
	return Rule{Name: RuleResponseTypes, Needs: []string{RuleGrantTypes}, Check: func(_ context.Context, ev *Evaluation) error {
		rts, allowed := ev.Granted.ResponseTypes, ev.Settings.ResponseTypes
		if len(rts) == 0 {
			if !slices.Contains(ev.Granted.GrantTypes, "authorization_code") {
				return nil
			}
			rts = StringList{def}
		}
		for _, r := range rts {
			if !slices.Contains(allowed, r) {
				return Refuse(InvalidClientMetadata, "response_types", "%q is not allowed; allowed: %s", r, strings.Join(allowed, ", "))
			}
		}
		if !slices.Contains(ev.Granted.GrantTypes, "authorization_code") {
			return Refuse(InvalidClientMetadata, "response_types", "%s needs the authorization_code grant type", strings.Join(rts, ", "))
		}
		ev.Granted.ResponseTypes = uniq(rts)
		return nil
	}}
}

// ApplicationType: among the profile's; absent means def, or refused when def is "".
func ApplicationType(def string) Rule {
	return Rule{Name: RuleAppType, Check: func(_ context.Context, ev *Evaluation) error {
		t, allowed := ev.Granted.ApplicationType, ev.Settings.ApplicationTypes
		if t == "" {
			if def == "" {
				return Refuse(InvalidClientMetadata, "application_type", "is required; allowed: %s", strings.Join(allowed, ", "))
			}
			t = def
		}
		if !slices.Contains(allowed, t) {
			return Refuse(InvalidClientMetadata, "application_type", "%q is not allowed; allowed: %s", t, strings.Join(allowed, ", "))
		}
		ev.Granted.ApplicationType = t
		return nil
	}}
}

func uniq(in []string) StringList {
	var out StringList
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// StatementChecks are the SSA checks every profile starts with: RFC 8725 header,
// the directory's signature, the claims, the lifetime.
func StatementChecks(keys TrustStore, directoryJWKS string) []Rule {
	return []Rule{SSAHeader(), SSASignature(keys, directoryJWKS), SSAClaims(), SSALifetime()}
}

// RequestChecks are the checks of the signed request itself, in the order the
// CDS reference server gives its errors: header, signature, iss, aud, lifetime,
// jti, software_id.
func RequestChecks(keys TrustStore, replay ReplayCache) []Rule {
	return []Rule{RequestHeader(), RequestSignature(keys), RequestIssuer(), RequestAudience(), RequestLifetime(), RequestJTI(replay), RequestSoftwareID()}
}
