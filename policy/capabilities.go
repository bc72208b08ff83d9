package policy

import (
	"context"
	"slices"
	"strings"
)

// RuleHydraLimits names the check of what Hydra cannot do.
const RuleHydraLimits = "hydra.capabilities"

// HydraLimits: a registration never promises what Hydra cannot do. Certificate-
// bound tokens (RFC 8705), pushed authorization requests and ID-token encryption
// are refused, with the reason. A signed or encrypted authorization response
// (JARM) is recorded, since the CDS requires the claim, and flagged as not
// honoured: the dry run shows it as a warning, and the README and obdcr doctor
// say so.
//
// With the FAPI edge on, obdcr itself provides PAR, JARM and certificate-bound
// tokens: they are honoured, a JARM algorithm is accepted only if the edge's key
// signs with it, and every registration says whether its tokens are bound, as
// the profile's bound_tokens setting says (a request asking otherwise is
// refused, naming the claim: the edge binds all of a profile's tokens or none).
func HydraLimits() Rule {
	return Rule{Name: RuleHydraLimits, Check: func(_ context.Context, ev *Evaluation) error {
		g := &ev.Granted
		if len(ev.EdgeAlgs) > 0 {
			return edgeLimits(ev)
		}
		switch {
		case g.TLSClientCertificateBoundAccessTokens != nil && *g.TLSClientCertificateBoundAccessTokens:
			return Refuse(InvalidClientMetadata, "tls_client_certificate_bound_access_tokens",
				"cannot be honoured: this server's tokens are not bound to certificates (its discovery document says false)")
		case g.RequirePushedAuthorizationRequests:
			return Refuse(InvalidClientMetadata, "require_pushed_authorization_requests",
				"cannot be honoured: this server has no pushed authorization request endpoint")
		case g.IDTokenEncryptedResponseAlg != "" || g.IDTokenEncryptedResponseEnc != "":
			return Refuse(InvalidClientMetadata, "id_token_encrypted_response_alg", "cannot be honoured: this server does not encrypt ID tokens")
		}
		if g.AuthorizationSignedResponseAlg != "" || g.AuthorizationEncryptedResponseAlg != "" {
			ev.Warn("authorization_signed_response_alg (JARM) is recorded but not honoured: Hydra answers response_mode=jwt with unsupported_response_mode")
		}
		return nil
	}}
}

// edgeLimits is HydraLimits with the FAPI edge on.
func edgeLimits(ev *Evaluation) error {
	g := &ev.Granted
	bound := ev.Settings.BoundTokens
	switch {
	case bound && g.TLSClientCertificateBoundAccessTokens != nil && !*g.TLSClientCertificateBoundAccessTokens:
		return Refuse(InvalidClientMetadata, "tls_client_certificate_bound_access_tokens",
			"must be true: every access token this server issues is bound to the TLS client certificate of its token request (RFC 8705 §3)")
	case !bound && g.TLSClientCertificateBoundAccessTokens != nil && *g.TLSClientCertificateBoundAccessTokens:
		return Refuse(InvalidClientMetadata, "tls_client_certificate_bound_access_tokens",
			"cannot be honoured: this profile's access tokens are not bound to certificates (its bound_tokens setting is false)")
	case g.IDTokenEncryptedResponseAlg != "" || g.IDTokenEncryptedResponseEnc != "":
		return Refuse(InvalidClientMetadata, "id_token_encrypted_response_alg", "cannot be honoured: this server does not encrypt ID tokens")
	case g.AuthorizationEncryptedResponseAlg != "" || g.AuthorizationEncryptedResponseEnc != "":
		return Refuse(InvalidClientMetadata, "authorization_encrypted_response_alg", "cannot be honoured: this server signs authorization responses but does not encrypt them")
	case g.AuthorizationSignedResponseAlg != "" && !slices.Contains(ev.EdgeAlgs, g.AuthorizationSignedResponseAlg):
		return Refuse(InvalidClientMetadata, "authorization_signed_response_alg", "%s cannot be honoured: authorization responses are signed with %s",
			g.AuthorizationSignedResponseAlg, strings.Join(ev.EdgeAlgs, ", "))
	}
	g.TLSClientCertificateBoundAccessTokens = &bound
	return nil
}
