package policy

import "context"

// RuleHydraLimits names the check of what Hydra cannot do.
const RuleHydraLimits = "hydra.capabilities"

// HydraLimits: a registration never promises what Hydra cannot do. Certificate-
// bound tokens (RFC 8705), pushed authorization requests and ID-token encryption
// are refused, with the reason. A signed or encrypted authorization response
// (JARM) is recorded, since the CDS requires the claim, and flagged as not
// honoured: the dry run shows it as a warning, and the README and obdcr doctor
// say so.
func HydraLimits() Rule {
	return Rule{Name: RuleHydraLimits, Check: func(_ context.Context, ev *Evaluation) error {
		g := &ev.Granted
		switch {
		case g.TLSClientCertificateBoundAccessTokens:
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
