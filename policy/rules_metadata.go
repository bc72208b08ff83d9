package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// The client metadata's rules: what the registered client may do, within the
// profile's live settings and what Hydra can honour.

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

// unsupportedAuth says why a method that FAPI allows cannot be registered here.
var unsupportedAuth = map[string]string{
	"tls_client_auth":             "Hydra cannot authenticate clients by certificate (RFC 8705), and the FAPI edge (OBDCR_EDGE_LISTEN), which can, is off; register with private_key_jwt",
	"self_signed_tls_client_auth": "the TPP listener takes only certificates from a trusted CA, so a self-signed one never reaches it; register with private_key_jwt or tls_client_auth",
	"client_secret_jwt":           "Hydra cannot verify client_secret_jwt assertions; register with private_key_jwt",
}

// AuthMethod: token_endpoint_auth_method among what the profile allows and Hydra
// (or, for tls_client_auth, the FAPI edge) can honour. required says whether it may be absent (then the first allowed).
func AuthMethod(required bool) Rule {
	return Rule{Name: RuleAuthMethod, Check: func(_ context.Context, ev *Evaluation) error {
		m, allowed := ev.Granted.TokenEndpointAuthMethod, ev.Settings.TokenEndpointAuthMethods
		if m == "" {
			if required {
				return Refuse(InvalidClientMetadata, "token_endpoint_auth_method", "is required; allowed: %s", strings.Join(allowed, ", "))
			}
			m = allowed[0]
		}
		// With the edge on, tls_client_auth is the edge's to authenticate.
		edgeAuth := m == "tls_client_auth" && len(ev.EdgeAlgs) > 0
		if why, ok := unsupportedAuth[m]; ok && !edgeAuth && (!slices.Contains(allowed, m) || m == "tls_client_auth") {
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
