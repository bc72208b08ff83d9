package plugin

import (
	"context"

	"github.com/caarlos0/env/v10"

	"github.com/obdcr/obdcr/policy"
)

// built is what the configured jurisdictions make: the profiles, the work
// that runs beside them, and their outside services' health.
type built struct {
	profiles   []*policy.Profile
	background []func(ctx context.Context)
	health     []policy.HealthCheck
}

// buildProfiles builds every jurisdiction the configuration was read for.
func buildProfiles(cfg Config, d policy.JurisdictionDeps) built {
	var b built
	for _, j := range cfg.jurisdictions {
		out := cfg.envs[j.Name()].Build(d)
		b.profiles = append(b.profiles, out.Profile)
		b.background = append(b.background, out.Background...)
		b.health = append(b.health, out.Health...)
	}
	return b
}

// directories are the JWKS URLs that sign the jurisdictions' SSAs.
func (c Config) directories() []string {
	var out []string
	for _, j := range c.jurisdictions {
		if u := c.envs[j.Name()].DirectoryJWKS(); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// OfflineDirectoryJWKS is the JWKS URL offline dry runs give every profile's
// directory; the caller's TrustStore answers it from a local file.
const OfflineDirectoryJWKS = "offline:directory"

// OfflineRegistrar is a registrar for dry runs without a server (obdcr check
// --offline): every profile this build serves, enabled with its defaults, keys
// from keys, no Hydra and no Register.
func OfflineRegistrar(issuer string, keys policy.TrustStore) *policy.Registrar {
	cfg := Config{jurisdictions: Jurisdictions(), envs: map[string]policy.JurisdictionEnv{}}
	for _, j := range cfg.jurisdictions {
		e := j.Env()
		// The defaults of its variables, and none from this process's environment.
		_ = env.ParseWithOptions(e, env.Options{Environment: map[string]string{}})
		e.Offline(OfflineDirectoryJWKS)
		cfg.envs[j.Name()] = e
	}
	replay := policy.NewMemoryReplay(nil)
	r := &policy.Registrar{Replay: replay, Audiences: []string{issuer}}
	b := buildProfiles(cfg, policy.JurisdictionDeps{Keys: keys, Replay: replay, Registrar: r})
	r.Profiles = b.profiles
	r.State = policy.NewMemoryState(b.profiles, profileNames(b.profiles))
	return r
}
