package policy

import (
	"context"
	"testing"
)

// TestHydraLimitsWithEdge: with the FAPI edge on, PAR, bound tokens and a JARM
// alg the edge signs with are honoured (no refusal, no warning), every
// registration is granted bound tokens and one asking for unbound tokens is
// refused naming the claim; under a profile whose bound_tokens is false it is
// the other way round; without the edge they are refused or flagged as
// before; what neither provides stays refused.
func TestHydraLimitsWithEdge(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name     string
		edge     []string
		g        ClientMetadata
		refused  string
		warnings int
		unbound  bool // the profile's bound_tokens is false
	}{
		{"PAR, edge off", nil, ClientMetadata{RequirePushedAuthorizationRequests: true}, "require_pushed_authorization_requests", 0, false},
		{"PAR, edge on", []string{"PS256"}, ClientMetadata{RequirePushedAuthorizationRequests: true}, "", 0, false},
		{"JARM, edge off", nil, ClientMetadata{AuthorizationSignedResponseAlg: "PS256"}, "", 1, false},
		{"JARM, edge on", []string{"PS256"}, ClientMetadata{AuthorizationSignedResponseAlg: "PS256"}, "", 0, false},
		{"JARM in another alg, edge on", []string{"PS256"}, ClientMetadata{AuthorizationSignedResponseAlg: "ES256"}, "authorization_signed_response_alg", 0, false},
		{"JARM encrypted, edge on", []string{"PS256"}, ClientMetadata{AuthorizationEncryptedResponseAlg: "RSA-OAEP"}, "authorization_encrypted_response_alg", 0, false},
		{"bound tokens, edge off", nil, ClientMetadata{TLSClientCertificateBoundAccessTokens: &yes}, "tls_client_certificate_bound_access_tokens", 0, false},
		{"bound tokens, edge on", []string{"PS256"}, ClientMetadata{TLSClientCertificateBoundAccessTokens: &yes}, "", 0, false},
		{"unbound tokens asked, edge on", []string{"PS256"}, ClientMetadata{TLSClientCertificateBoundAccessTokens: &no}, "tls_client_certificate_bound_access_tokens", 0, false},
		{"bound_tokens false, nothing asked", []string{"PS256"}, ClientMetadata{}, "", 0, true},
		{"bound_tokens false, unbound asked", []string{"PS256"}, ClientMetadata{TLSClientCertificateBoundAccessTokens: &no}, "", 0, true},
		{"bound_tokens false, bound asked", []string{"PS256"}, ClientMetadata{TLSClientCertificateBoundAccessTokens: &yes}, "tls_client_certificate_bound_access_tokens", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := &Evaluation{EdgeAlgs: tc.edge, Granted: tc.g, Settings: Settings{BoundTokens: !tc.unbound}}
			err := HydraLimits().Check(context.Background(), ev)
			switch e, _ := err.(*Error); {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && (e == nil || e.Claim != tc.refused):
				t.Fatalf("got %v, want a refusal of %s", err, tc.refused)
			case len(ev.Warnings) != tc.warnings:
				t.Fatalf("warnings %v, want %d", ev.Warnings, tc.warnings)
			case err == nil && tc.edge != nil && (ev.Granted.TLSClientCertificateBoundAccessTokens == nil || *ev.Granted.TLSClientCertificateBoundAccessTokens == tc.unbound):
				t.Fatalf("with the edge on, a registration is granted tls_client_certificate_bound_access_tokens %v", !tc.unbound)
			}
		})
	}
}
