// Package au is the Australian Consumer Data Right profile: the CDS security
// profile's client registration, with SSAs from the CDR Register and the
// Register's statuses of data recipients and their software products.
package au

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// Name is the profile's name in the admin API, audit and metrics.
const Name = "au"

// DefaultIssuer is the iss of CDR Register SSAs.
const DefaultIssuer = "cdr-register"

// RegistrationScope is the scope a data recipient's token needs to manage its
// registration; every AU client gets it.
const RegistrationScope = "cdr:registration"

// Scopes are the CDS scopes a data recipient can be granted (the Register's SSA
// says which each one has), for the discovery document.
var Scopes = []string{"openid", "profile", RegistrationScope, "bank:accounts.basic:read", "bank:accounts.detail:read",
	"bank:transactions:read", "bank:payees:read", "bank:regular_payments:read", "common:customer.basic:read",
	"common:customer.detail:read", "energy:accounts.basic:read", "energy:accounts.detail:read", "energy:billing:read"}

// Config is what the deployment supplies.
type Config struct {
	Issuer       string // SSA iss (OBDCR_AU_SSA_ISSUER)
	RegisterJWKS string // OBDCR_AU_SSA_JWKS_URL
	Keys         policy.TrustStore
	Replay       policy.ReplayCache
	// IDTokenAlg is the algorithm Hydra signs ID tokens with; nil checks only the profile's list.
	IDTokenAlg policy.IDTokenAlgSource
	// Statuses is the Register's view of data recipients; nil when no Register
	// URL is configured, and then no status is checked.
	Statuses *StatusBook
}

// Limits: the CDS allows only private_key_jwt (CDS "Client Authentication": no
// tls_client_auth, even with the FAPI edge on), the code flow and PS256/ES256.
var Limits = policy.Limits{
	SigningAlgs:              []string{"PS256", "ES256"},
	TokenEndpointAuthMethods: []string{"private_key_jwt"},
	GrantTypes:               []string{"authorization_code", "client_credentials", "refresh_token"},
	ResponseTypes:            []string{"code"},
	ApplicationTypes:         []string{"web"},
}

// Defaults follow the CDS (v1.36).
func Defaults() policy.Settings {
	return policy.Settings{
		SigningAlgs:              []string{"PS256", "ES256"},
		TokenEndpointAuthMethods: []string{"private_key_jwt"},
		GrantTypes:               []string{"authorization_code", "client_credentials", "refresh_token"},
		ResponseTypes:            []string{"code"},
		ApplicationTypes:         []string{"web"},
		ClockSkew:                policy.Duration(30 * time.Second),
		RequestMaxAge:            policy.Duration(time.Hour),
		AllowDelete:              true,
		RequireActiveStatus:      true,
		// CDR transport certificates come from the Register's CA and are bound to
		// tokens, not named in the SSA: the thumbprint is kept for management calls.
		TransportCertificate: "none",
		// CDS: PAR is the only way to start a flow (since 16 September 2022), with
		// PKCE, and the answer is JARM.
		RequirePAR: true, PKCERequired: true,
		ResponseModes: []string{"jwt", "query.jwt", "fragment.jwt", "form_post.jwt"},
		// CDS "Holder of Key Mechanism": Data Holders must bind access tokens
		// to the client's mTLS certificate; Limits do not let it be switched off.
		BoundTokens: true,
	}
}

// New builds the AU profile. Its order is the reference server's, which TPPs
// rely on: SSA, request signature and claims, redirect URIs, other metadata.
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
		ManagementScope: RegistrationScope,
		Scopes:          Scopes,
		Rules: slices.Concat(
			policy.StatementChecks(c.Keys, c.RegisterJWKS),
			[]policy.Rule{status(c.Statuses)},
			policy.RequestChecks(c.Keys, c.Replay),
			[]policy.Rule{
				policy.TransportCertificate(),
				policy.ClientText(),
				policy.RedirectURIs(policy.RedirectURIPolicy{Max: 20, MaxLength: 1024}),
				policy.AuthMethod(false),
				policy.TLSClientAuth(false),
				policy.AuthSigningAlg(),
				policy.GrantTypes(false, "authorization_code"),
				policy.ResponseTypes("code"),
				policy.IDTokenSigningAlg(c.IDTokenAlg),
				authorizationResponse(),
				idTokenEncryption(),
				requestObjectAlg(),
				policy.ApplicationType("web"),
				scope(),
				policy.HydraLimits(),
			},
		),
	}
}

// statement is the CDR Register's SSA.
type statement struct {
	policy.StatementBase
	OrgID               string            `json:"org_id"`
	OrgName             string            `json:"org_name"`
	ClientName          string            `json:"client_name"`
	ClientDescription   string            `json:"client_description"`
	ClientURI           string            `json:"client_uri"`
	RedirectURIs        policy.StringList `json:"redirect_uris"`
	LogoURI             string            `json:"logo_uri"`
	TosURI              string            `json:"tos_uri"`
	PolicyURI           string            `json:"policy_uri"`
	JWKSURI             string            `json:"jwks_uri"`
	RevocationURI       string            `json:"revocation_uri"`
	RecipientBaseURI    string            `json:"recipient_base_uri"`
	SoftwareID          string            `json:"software_id"`
	SoftwareRoles       policy.StringList `json:"software_roles"`
	Scope               string            `json:"scope"`
	LegalEntityID       string            `json:"legal_entity_id"`
	LegalEntityName     string            `json:"legal_entity_name"`
	SectorIdentifierURI string            `json:"sector_identifier_uri"`
}

// Statement maps the CDR Register's claim names; its SSAs must carry exp.
func (s *statement) Statement() (*policy.SoftwareStatement, error) {
	if s.ExpiresAt == nil {
		return nil, policy.ClaimError("exp", "is required: CDR Register SSAs live 10 minutes")
	}
	return &policy.SoftwareStatement{
		SoftwareID: s.SoftwareID, OrgID: s.OrgID, OrgName: s.OrgName, LegalEntityID: s.LegalEntityID,
		ClientName: s.ClientName, ClientURI: s.ClientURI, LogoURI: s.LogoURI, PolicyURI: s.PolicyURI, TosURI: s.TosURI,
		JWKSURI: s.JWKSURI, RedirectURIs: s.RedirectURIs, Roles: s.SoftwareRoles, Scope: strings.Fields(s.Scope),
	}, nil
}

// status refuses a software product or data recipient the Register does not list
// as ACTIVE. One it has not listed yet waits for a fresh poll; if none can be had
// in time the request fails as unavailable (503), never as "not known".
func status(book *StatusBook) policy.Rule {
	return policy.Rule{Name: "cdr_register.status", Needs: []string{policy.RuleSSAClaims}, Check: func(ctx context.Context, ev *policy.Evaluation) error {
		if book == nil || !ev.Settings.RequireActiveStatus {
			return nil
		}
		st := ev.Statement
		var s Standing
		if ev.DryRun {
			// A dry run does not make the Register work: it judges on what is known.
			known, ok := book.Known(st.SoftwareID, st.LegalEntityID)
			if !ok {
				return &policy.Skip{Reason: "not judged: the Register has not listed it yet"}
			}
			s = known
		} else {
			var err error
			if s, err = book.Lookup(ctx, st.SoftwareID, st.LegalEntityID); err != nil {
				return &policy.Unavailable{Dependency: "cdr-register", Err: err}
			}
		}
		if s.Product != "ACTIVE" {
			return policy.Refuse(policy.UnapprovedSoftwareStatement, "software_statement.software_id",
				"software product %s is %s at the CDR Register; only ACTIVE software products may register", st.SoftwareID, orUnknown(s.Product))
		}
		if st.LegalEntityID != "" && s.Entity != "ACTIVE" {
			return policy.Refuse(policy.UnapprovedSoftwareStatement, "software_statement.legal_entity_id",
				"data recipient %s is %s at the CDR Register; only ACTIVE data recipients may register", st.LegalEntityID, orUnknown(s.Entity))
		}
		return nil
	}}
}

func orUnknown(s string) string {
	if s == "" {
		return "not known"
	}
	return s
}

// authorizationResponse: with the code flow the CDS requires a signed (JARM)
// authorization response, and allows it encrypted with the listed algorithms.
func authorizationResponse() policy.Rule {
	signed := policy.SigningAlgClaim("authorization_signed_response_alg", true)
	return policy.Rule{Name: "authorization_response", Needs: []string{policy.RuleResponseTypes}, Check: func(_ context.Context, ev *policy.Evaluation) error {
		g := &ev.Granted
		if slices.Contains(g.ResponseTypes, "code") {
			if err := signed(ev); err != nil {
				return err
			}
		}
		alg, enc := g.AuthorizationEncryptedResponseAlg, g.AuthorizationEncryptedResponseEnc
		if enc != "" && alg == "" {
			return policy.Refuse(policy.InvalidClientMetadata, "authorization_encrypted_response_alg", "is required when authorization_encrypted_response_enc is sent")
		}
		if alg == "" {
			return nil
		}
		if !slices.Contains([]string{"RSA-OAEP", "RSA-OAEP-256"}, alg) {
			return policy.Refuse(policy.InvalidClientMetadata, "authorization_encrypted_response_alg", "%q is not allowed; allowed: RSA-OAEP, RSA-OAEP-256", alg)
		}
		if enc == "" {
			g.AuthorizationEncryptedResponseEnc = "A128CBC-HS256"
		} else if !slices.Contains([]string{"A256GCM", "A128CBC-HS256"}, enc) {
			return policy.Refuse(policy.InvalidClientMetadata, "authorization_encrypted_response_enc", "%q is not allowed; allowed: A256GCM, A128CBC-HS256", enc)
		}
		return nil
	}}
}

// idTokenEncryption: the CDS retired ID token encryption with the code flow (and Hydra cannot encrypt ID tokens).
func idTokenEncryption() policy.Rule {
	return policy.Rule{Name: "id_token_encryption", Needs: []string{policy.RuleResponseTypes}, Check: func(_ context.Context, ev *policy.Evaluation) error {
		for claim, v := range map[string]string{
			"id_token_encrypted_response_alg": ev.Granted.IDTokenEncryptedResponseAlg,
			"id_token_encrypted_response_enc": ev.Granted.IDTokenEncryptedResponseEnc,
		} {
			if v != "" {
				return policy.Refuse(policy.InvalidClientMetadata, claim, "must not be used with the code response type")
			}
		}
		return nil
	}}
}

// requestObjectAlg is optional in the CDS; absent means the first allowed, so that
// Hydra never accepts an unsigned request object.
func requestObjectAlg() policy.Rule {
	check := policy.SigningAlgClaim("request_object_signing_alg", false)
	return policy.Rule{Name: "request_object_signing_alg", Check: func(_ context.Context, ev *policy.Evaluation) error {
		if err := check(ev); err != nil {
			return err
		}
		if ev.Granted.RequestObjectSigningAlg == "" {
			ev.Granted.RequestObjectSigningAlg = ev.Settings.SigningAlgs[0]
		}
		return nil
	}}
}

// scope: the SSA's scopes, less those not requested and those the Data Holder does
// not support, dropped silently as the CDS says; cdr:registration always stays.
func scope() policy.Rule {
	return policy.Rule{Name: "scope", Needs: []string{policy.RuleSSAClaims}, Check: func(_ context.Context, ev *policy.Evaluation) error {
		granted := ev.Statement.Scope
		if req := policy.Scopes(ev.Granted.Scope); len(req) > 0 {
			granted = slices.DeleteFunc(slices.Clone(granted), func(s string) bool { return !slices.Contains(req, s) })
		}
		if sup := ev.Settings.Scopes; len(sup) > 0 {
			granted = slices.DeleteFunc(granted, func(s string) bool { return !slices.Contains(sup, s) })
		}
		if !slices.Contains(granted, RegistrationScope) {
			granted = append(granted, RegistrationScope)
		}
		ev.Granted.Scope = strings.Join(granted, " ")
		return nil
	}}
}

// responseClaims are the SSA claims the CDS returns at the top level.
var responseClaims = []string{"software_id", "software_roles", "org_id", "org_name", "client_name", "client_description",
	"client_uri", "logo_uri", "tos_uri", "policy_uri", "jwks_uri", "revocation_uri", "recipient_base_uri",
	"sector_identifier_uri", "legal_entity_id", "legal_entity_name"}

func respond(r *policy.Registration) map[string]any {
	out := policy.ResponseBase(r)
	if r.Statement != nil {
		policy.FlattenClaims(out, r.Statement.Claims, responseClaims...)
	}
	return out
}
