package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/policy"
)

func TestIDTokenSigningAlg(t *testing.T) {
	signs := func(alg string, err error) policy.IDTokenAlgSource {
		return func(context.Context) (string, error) { return alg, err }
	}
	cases := []struct {
		name      string
		source    policy.IDTokenAlgSource
		requested string
		mention   string // "" approves; "unavailable" wants a dependency failure
	}{
		{"Hydra signs what is asked", signs("PS256", nil), "PS256", ""},
		{"Hydra signs another allowed alg", signs("PS256", nil), "ES256", "signs every ID token with PS256"},
		{"Hydra signs an alg the profile refuses", signs("RS256", nil), "PS256", "signs ID tokens with RS256, which this profile does not allow"},
		{"not allowed at all", signs("PS256", nil), "RS256", "not allowed"},
		{"missing", signs("PS256", nil), "", "is required"},
		{"Hydra's alg unknown", signs("", errors.New("no discovery")), "PS256", "unavailable"},
		{"offline: the list only", nil, "ES256", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := &policy.Evaluation{Settings: policy.Settings{SigningAlgs: []string{"PS256", "ES256"}}}
			ev.Granted.IDTokenSignedResponseAlg = c.requested
			err := policy.IDTokenSigningAlg(c.source).Check(context.Background(), ev)
			var un *policy.Unavailable
			switch {
			case c.mention == "":
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			case c.mention == "unavailable":
				if !errors.As(err, &un) {
					t.Fatalf("want a dependency failure, got %v", err)
				}
			default:
				e, ok := policy.AsError(err)
				if !ok || e.Code != policy.InvalidClientMetadata || e.Claim != "id_token_signed_response_alg" || !strings.Contains(e.Description, c.mention) {
					t.Fatalf("want a refusal naming the claim and %q, got %v", c.mention, err)
				}
			}
		})
	}
}
