package plugin

// unsupported is Unsupported as it stands for this deployment: with the FAPI
// edge on (OBDCR_EDGE_LISTEN), obdcr itself provides what Hydra cannot for
// bound tokens, PAR, JARM and s_hash, and the finding says so rather than
// telling an operator the bank cannot do it.
func (s Setup) unsupported() []Finding {
	if s.Edge == nil {
		return Unsupported
	}
	out := make([]Finding, 0, len(Unsupported))
	for _, f := range Unsupported {
		if msg, ok := edgeProvides[f.Check]; ok {
			f.Message = msg
		}
		out = append(out, f)
	}
	return out
}

// edgeProvides are the Unsupported findings' messages with the edge on.
var edgeProvides = map[string]string{
	"hydra.certificate_bound_tokens": "Hydra cannot bind access tokens to certificates (RFC 8705); the FAPI edge does: its token endpoint binds each access token to the token request's TLS client certificate (profile setting bound_tokens), /userinfo, the management API and /oauth2/introspect check the binding, and discovery says tls_client_certificate_bound_access_tokens true",
	"hydra.par":                      "Hydra has no pushed authorization request endpoint; the FAPI edge provides one (POST /oauth2/par on the TPP listener, in discovery and mtls_endpoint_aliases), and require_pushed_authorization_requests is honoured",
	"hydra.jarm":                     "Hydra cannot sign authorization responses (JARM); the FAPI edge does, with OBDCR_EDGE_SIGNING_KEY_FILE's key, in the response modes the profiles allow (response_modes), and authorization_signed_response_alg is honoured",
	"hydra.s_hash":                   "Hydra puts no s_hash in ID tokens; the FAPI edge signs the front-channel ID token of code id_token again with c_hash and s_hash",
}
