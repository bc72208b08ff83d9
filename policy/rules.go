package policy

import "slices"

// The rules every profile composes its chain from, one file per concern:
// rules_statement.go (the SSA), rules_request.go (the signed request and its
// transport certificate), rules_metadata.go (what the client may do). Names
// are stable: the audit, metrics and dry-run reports use them, and admins
// search by them.
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

// truncate caps a value a refusal repeats, so that its message stays readable.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// uniq keeps the first of each value, in order: a list granted as registered.
func uniq(in []string) StringList {
	var out StringList
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
