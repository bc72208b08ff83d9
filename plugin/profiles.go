package plugin

import (
	"context"
	"log/slog"
	"time"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/au"
	"github.com/obdcr/obdcr/policy/uk"
)

type profileDeps struct {
	keys      policy.TrustStore
	replay    policy.ReplayCache
	fetch     policy.FetchPolicy
	registrar *policy.Registrar
	log       *slog.Logger
	metrics   *metrics // nil offline
	// idTokenAlg is the algorithm Hydra signs ID tokens with; nil offline.
	idTokenAlg policy.IDTokenAlgSource
}

// built is the catalogue's output: the profiles, and background work they need.
type built struct {
	profiles   []*policy.Profile
	background []func(ctx context.Context)
	auStatuses *au.StatusBook
}

// buildProfiles is the catalogue of profiles this build knows. Adding a
// jurisdiction means a package under policy/ and one entry here.
func buildProfiles(cfg Config, d profileDeps) built {
	var b built
	b.profiles = append(b.profiles, uk.New(uk.Config{Issuer: cfg.UK.SSAIssuer, DirectoryJWKS: cfg.UK.SSAJWKSURL, Keys: d.keys, Replay: d.replay, IDTokenAlg: d.idTokenAlg}))

	if cfg.AU.RegisterURL != "" {
		b.auStatuses = au.NewStatusBook(au.StatusBookConfig{
			RegisterURL: cfg.AU.RegisterURL, Interval: cfg.AU.StatusPollInterval, Fetch: d.fetch, Log: d.log,
			Wait: cfg.AU.StatusWait, MinGap: cfg.AU.StatusMinGap,
			Remove: func(ctx context.Context, softwareID string) (string, error) {
				id, err := d.registrar.RemoveSoftware(ctx, au.Name, softwareID)
				if id != "" && d.metrics != nil {
					d.metrics.auRemovals.Inc()
				}
				return id, err
			},
			OnPoll: func(err error) {
				if d.metrics == nil {
					return
				}
				result := "ok"
				if err != nil {
					result = "error"
				}
				d.metrics.registerPolls.WithLabelValues(result).Inc()
			},
			OnLookup: func(result string, waited time.Duration) {
				if d.metrics == nil {
					return
				}
				d.metrics.registerLookups.WithLabelValues(result).Inc()
				if waited > 0 {
					d.metrics.registerWait.Observe(waited.Seconds())
				}
			},
		})
		b.background = append(b.background, b.auStatuses.Run)
	}
	b.profiles = append(b.profiles, au.New(au.Config{Issuer: cfg.AU.SSAIssuer, RegisterJWKS: cfg.AU.SSAJWKSURL, Keys: d.keys, Replay: d.replay, Statuses: b.auStatuses, IDTokenAlg: d.idTokenAlg}))
	return b
}

// OfflineDirectoryJWKS is the JWKS URL offline dry runs give every profile's
// directory; the caller's TrustStore answers it from a local file.
const OfflineDirectoryJWKS = "offline:directory"

// OfflineRegistrar is a registrar for dry runs without a server (obdcr check
// --offline): every profile of the catalogue, enabled with its defaults, keys
// from keys, no Hydra and no Register.
func OfflineRegistrar(issuer string, keys policy.TrustStore) *policy.Registrar {
	cfg := Config{UK: UKConfig{SSAIssuer: uk.DefaultIssuer, SSAJWKSURL: OfflineDirectoryJWKS},
		AU: AUConfig{SSAIssuer: au.DefaultIssuer, SSAJWKSURL: OfflineDirectoryJWKS}}
	replay := policy.NewMemoryReplay(nil)
	r := &policy.Registrar{Replay: replay, Audiences: []string{issuer}}
	b := buildProfiles(cfg, profileDeps{keys: keys, replay: replay, registrar: r})
	r.Profiles = b.profiles
	names := make([]string, len(b.profiles))
	for i, p := range b.profiles {
		names[i] = p.Name
	}
	r.State = policy.NewMemoryState(b.profiles, names)
	return r
}
