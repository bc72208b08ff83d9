package plugin

import (
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/uk"
)

type profileDeps struct {
	keys   policy.TrustStore
	replay policy.ReplayCache
}

// buildProfiles is the catalogue of profiles this build knows. Adding a
// jurisdiction means a package under policy/ and one entry here.
func buildProfiles(cfg Config, d profileDeps) ([]*policy.Profile, error) {
	return []*policy.Profile{
		uk.New(uk.Config{Issuer: cfg.UK.SSAIssuer, DirectoryJWKS: cfg.UK.SSAJWKSURL, Keys: d.keys, Replay: d.replay}),
	}, nil
}
