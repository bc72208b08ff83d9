// Package uk is the UK Open Banking profile: OBIE Dynamic Client Registration
// v3.3 with the Open Banking Directory's SSAs, under FAPI 1.0 Advanced.
package uk

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// Name is the profile's name in the admin API, audit and metrics.
const Name = "uk"

// DefaultIssuer is the iss of Open Banking Directory SSAs.
const DefaultIssuer = "OpenBanking Ltd"

// Config is what the deployment supplies.
type Config struct {
	Issuer        string // SSA iss (OBDCR_UK_SSA_ISSUER)
	DirectoryJWKS string // OBDCR_UK_SSA_JWKS_URL
	Keys          policy.TrustStore
	Replay        policy.ReplayCache
	// IDTokenAlg is the algorithm Hydra signs ID tokens with; nil checks only the profile's list.
	IDTokenAlg policy.IDTokenAlgSource
}

// Limits: what the settings may hold. RS256 is absent on purpose (FAPI 1.0 §8.6
// and the OB conformance suite refuse it). tls_client_auth (OBIE DCR) may be
// allowed; it registers only with the FAPI edge on, which authenticates it.
var Limits = policy.Limits{
	SigningAlgs:              []string{"PS256", "ES256"},
	TokenEndpointAuthMethods: []string{"private_key_jwt", "tls_client_auth", "client_secret_basic", "client_secret_post"},
	GrantTypes:               []string{"authorization_code", "client_credentials", "refresh_token"},
	ResponseTypes:            []string{"code id_token", "code"},
	ApplicationTypes:         []string{"web", "mobile", "native"},
	MultipleRegistrations:    true, // OBIE DCR allows several; obdcr's default is one
}

// Defaults follow OBIE DCR v3.3 and FAPI 1.0 Advanced.
func Defaults() policy.Settings {
	return policy.Settings{
		SigningAlgs:              []string{"PS256", "ES256"},
		TokenEndpointAuthMethods: []string{"private_key_jwt"},
		GrantTypes:               []string{"authorization_code", "client_credentials", "refresh_token"},
		ResponseTypes:            []string{"code id_token", "code"},
		ApplicationTypes:         []string{"web", "mobile"},
		ClockSkew:                policy.Duration(30 * time.Second),
		SSAMaxAge:                policy.Duration(24 * time.Hour),
		RequestMaxAge:            policy.Duration(time.Hour),
		AllowDelete:              true,
		RequireActiveStatus:      true,
		TransportCertificate:     "any",
		// FAPI 1.0 Advanced: a request object by value or by PAR, any response mode.
		ResponseModes: slices.Clone(policy.ResponseModes),
		// FAPI 1.0 Advanced §5.2.2-5/6: sender-constrained tokens, by mTLS;
		// Limits do not let it be switched off.
		BoundTokens: true,
	}
}

// roleScopes are the OB scopes each software role may ask for.
var roleScopes = map[string][]string{
	"AISP":  {"accounts"},
	"PISP":  {"payments"},
	"CBPII": {"fundsconfirmations"},
}

// New builds the UK profile.
func New(c Config) *policy.Profile {
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	return &policy.Profile{
		Name:            Name,
		Issuer:          c.Issuer,
		Limits:          Limits,
		Defaults:        Defaults(),
		DecodeStatement: policy.StatementDecoder[statement](),
		Respond:         respond,
		CodeNeedsJARM:   true,
		Scopes:          []string{"openid", "accounts", "payments", "fundsconfirmations"},
		Rules: slices.Concat(
			policy.StatementChecks(c.Keys, c.DirectoryJWKS),
			[]policy.Rule{orgStatus()},
			policy.RequestChecks(c.Keys, c.Replay),
			[]policy.Rule{
				policy.TransportCertificate(),
				policy.ClientText(),
				policy.RedirectURIs(policy.RedirectURIPolicy{Max: 20, MaxLength: 256}),
				policy.AuthMethod(true),
				policy.AuthSigningAlg(),
				policy.TLSClientAuth(true),
				policy.GrantTypes(true),
				policy.ResponseTypes("code id_token"),
				scope(),
				policy.ApplicationType(""),
				policy.IDTokenSigningAlg(c.IDTokenAlg),
				policy.AlgRule("request_object_signing_alg", true),
				policy.HydraLimits(),
			},
		),
	}
}

// statement is the Open Banking Directory's SSA.
type statement struct {
	policy.StatementBase
	SoftwareID             string             `json:"software_id"`
	SoftwareClientID       string             `json:"software_client_id"`
	SoftwareClientName     string             `json:"software_client_name"`
	SoftwareClientURI      string             `json:"software_client_uri"`
	SoftwareLogoURI        string             `json:"software_logo_uri"`
	SoftwarePolicyURI      string             `json:"software_policy_uri"`
	SoftwareTosURI         string             `json:"software_tos_uri"`
	SoftwareVersion        policy.LooseString `json:"software_version"`
	SoftwareJWKSEndpoint   string             `json:"software_jwks_endpoint"`
	SoftwareRedirectURIs   policy.StringList  `json:"software_redirect_uris"`
	SoftwareRoles          policy.StringList  `json:"software_roles"`
	OrgID                  string             `json:"org_id"`
	OrgName                string             `json:"org_name"`
	OrgStatus              string             `json:"org_status"`
	SoftwareOnBehalfOfOrg  string             `json:"software_on_behalf_of_org"`
	SoftwareEnvironment    string             `json:"software_environment"`
	SoftwareMode           string             `json:"software_mode"`
	SoftwareJWKSRevokedURL string             `json:"software_jwks_revoked_endpoint"`
}

// Statement maps the Open Banking Directory's claim names.
func (s *statement) Statement() (*policy.SoftwareStatement, error) {
	return &policy.SoftwareStatement{
		SoftwareID: s.SoftwareID, OrgID: s.OrgID, OrgName: s.OrgName, OrgStatus: s.OrgStatus,
		ClientName: s.SoftwareClientName, ClientURI: s.SoftwareClientURI, LogoURI: s.SoftwareLogoURI,
		PolicyURI: s.SoftwarePolicyURI, TosURI: s.SoftwareTosURI,
		JWKSURI: s.SoftwareJWKSEndpoint, RedirectURIs: s.SoftwareRedirectURIs, Roles: s.SoftwareRoles,
	}, nil
}

// orgStatus: only an Active organisation may register (OB Directory org_status).
func orgStatus() policy.Rule {
	return policy.Rule{Name: "ssa.org_status", Needs: []string{policy.RuleSSAClaims}, Check: func(_ context.Context, ev *policy.Evaluation) error {
		if !ev.Settings.RequireActiveStatus {
			return nil
		}
		if s := ev.Statement.OrgStatus; !strings.EqualFold(s, "Active") {
			if s == "" {
				s = "absent"
			}
			return policy.Refuse(policy.UnapprovedSoftwareStatement, "software_statement.org_status",
				"organisation %s is %s in the directory; only Active organisations may register", ev.Statement.OrgID, s)
		}
		return nil
	}}
}

// scope: each requested scope is openid or one the SSA's roles grant, and one the
// bank supports; absent means all of those.
func scope() policy.Rule {
	return policy.Rule{Name: "scope", Needs: []string{policy.RuleSSAClaims}, Check: func(_ context.Context, ev *policy.Evaluation) error {
		allowed := []string{"openid"}
		for _, role := range ev.Statement.Roles {
			allowed = append(allowed, roleScopes[strings.ToUpper(role)]...)
		}
		if len(ev.Settings.Scopes) > 0 {
			allowed = slices.DeleteFunc(allowed, func(s string) bool { return !slices.Contains(ev.Settings.Scopes, s) })
		}
		requested := policy.Scopes(ev.Granted.Scope)
		if len(ev.Granted.Scope) > 256 {
			return policy.Refuse(policy.InvalidClientMetadata, "scope", "is longer than 256 characters")
		}
		if len(requested) == 0 {
			requested = allowed
		}
		for _, s := range requested {
			if !slices.Contains(allowed, s) {
				return policy.Refuse(policy.InvalidClientMetadata, "scope", "%q is not granted by the software's roles (%s); allowed: %s",
					s, strings.Join(ev.Statement.Roles, ", "), strings.Join(allowed, " "))
			}
		}
		ev.Granted.Scope = strings.Join(requested, " ")
		return nil
	}}
}

// respond flattens every SSA claim to the top level, as OBIE DCR v3.3 shows.
func respond(r *policy.Registration) map[string]any {
	out := policy.ResponseBase(r)
	if r.Statement != nil {
		names := make([]string, 0, len(r.Statement.Claims))
		for k := range r.Statement.Claims {
			switch k {
			case "iss", "iat", "exp", "jti", "nbf":
			default:
				names = append(names, k)
			}
		}
		policy.FlattenClaims(out, r.Statement.Claims, names...)
	}
	return out
}
