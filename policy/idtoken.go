package policy

import (
	"context"
	"slices"
	"strings"
)

// RuleIDTokenAlg names the check of id_token_signed_response_alg.
const RuleIDTokenAlg = "id_token_signed_response_alg"

// IDTokenAlgSource says which algorithm the authorization server signs ID tokens
// with. Hydra has no per-client setting: it signs every client's ID tokens with
// its newest hydra.openid.id-token key.
type IDTokenAlgSource func(ctx context.Context) (string, error)

// IDTokenSigningAlg: id_token_signed_response_alg is required, allowed by the
// profile, and the algorithm Hydra really signs with, so that the registration
// never promises what the tokens will not be. With source nil (an offline dry
// run), only the profile's list is checked.
func IDTokenSigningAlg(source IDTokenAlgSource) Rule {
	allowed := SigningAlgClaim(RuleIDTokenAlg, true)
	return Rule{Name: RuleIDTokenAlg, Check: func(ctx context.Context, ev *Evaluation) error {
		if err := allowed(ev); err != nil {
			return err
		}
		if source == nil {
			return nil
		}
		signs, err := source(ctx)
		if err != nil {
			return &Unavailable{Dependency: "hydra", Err: err}
		}
		if got := ev.Granted.IDTokenSignedResponseAlg; got != signs {
			if !slices.Contains(ev.Settings.SigningAlgs, signs) {
				return Refuse(InvalidClientMetadata, RuleIDTokenAlg,
					"%q cannot be honoured: this server signs ID tokens with %s, which this profile does not allow (%s); the bank must add a %s key to Hydra (obdcr doctor --fix)",
					got, signs, strings.Join(ev.Settings.SigningAlgs, ", "), ev.Settings.SigningAlgs[0])
			}
			return Refuse(InvalidClientMetadata, RuleIDTokenAlg, "%q cannot be honoured: this server signs every ID token with %s; ask for %s", got, signs, signs)
		}
		return nil
	}}
}
