package au

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obdcr/obdcr/policy"
)

// Jurisdiction is Australia's Consumer Data Right as obdcr serves it:
// OBDCR_AU_*, the AU profile, the CDR Register's status poll and its metrics.
type Jurisdiction struct{}

func (Jurisdiction) Name() string { return Name }

func (Jurisdiction) Env() policy.JurisdictionEnv { return &Env{} }

// Env is the deployment's OBDCR_AU_* variables.
type Env struct {
	SSAIssuer          string        `env:"SSA_ISSUER" envDefault:"cdr-register" help:"SSA iss that selects the AU profile"`
	SSAJWKSURL         string        `env:"SSA_JWKS_URL" help:"CDR Register JWKS that signs AU SSAs (required if AU is enabled)"`
	RegisterURL        string        `env:"REGISTER_URL" help:"CDR Register base URL for status polling, /cdr-register/v1/... appended (empty: no polling)"`
	StatusPollInterval time.Duration `env:"STATUS_POLL_INTERVAL" envDefault:"2m" help:"how often statuses are polled"`
	StatusWait         time.Duration `env:"STATUS_WAIT" envDefault:"10s" help:"how long a registration of a not-yet-listed product waits for a fresh Register poll before the 503"`
	StatusMinGap       time.Duration `env:"STATUS_MIN_GAP" envDefault:"1s" help:"least time between two on-demand polls for products not yet known (requests wait for the next poll; none is refused for it)"`
}

func (e *Env) Check(enabled bool) error {
	if enabled && e.SSAJWKSURL == "" {
		return errors.New("OBDCR_AU_SSA_JWKS_URL: required when the au profile is enabled (OBDCR_PROFILES)")
	}
	if err := policy.CheckURL("OBDCR_AU_SSA_JWKS_URL", e.SSAJWKSURL); err != nil {
		return err
	}
	if err := policy.CheckURL("OBDCR_AU_REGISTER_URL", e.RegisterURL); err != nil {
		return err
	}
	switch {
	case e.StatusPollInterval < time.Second:
		return fmt.Errorf("OBDCR_AU_STATUS_POLL_INTERVAL: %s is under 1s", e.StatusPollInterval)
	case e.StatusWait <= 0 || e.StatusWait > time.Minute:
		return fmt.Errorf("OBDCR_AU_STATUS_WAIT: %s is not between 0 and 1m", e.StatusWait)
	case e.StatusMinGap < 0 || e.StatusMinGap > e.StatusPollInterval:
		return fmt.Errorf("OBDCR_AU_STATUS_MIN_GAP: %s is not between 0 and OBDCR_AU_STATUS_POLL_INTERVAL", e.StatusMinGap)
	}
	return nil
}

func (e *Env) DirectoryJWKS() string { return e.SSAJWKSURL }

func (e *Env) Offline(directoryJWKS string) { e.SSAJWKSURL, e.RegisterURL = directoryJWKS, "" }

// Build makes the AU profile and, with a Register URL, the status book that
// polls it, with its metrics.
func (e *Env) Build(d policy.JurisdictionDeps) policy.Built {
	var b policy.Built
	var book *StatusBook
	if e.RegisterURL != "" {
		m := newRegisterMetrics(d.Metrics)
		book = NewStatusBook(StatusBookConfig{
			RegisterURL: e.RegisterURL, Interval: e.StatusPollInterval, Fetch: d.Fetch, Log: d.Log,
			Wait: e.StatusWait, MinGap: e.StatusMinGap,
			Remove: func(ctx context.Context, softwareID string) (string, error) {
				id, err := d.Registrar.RemoveSoftware(ctx, Name, softwareID)
				if id != "" {
					m.removals.Inc()
				}
				return id, err
			},
			OnPoll: m.poll, OnLookup: m.lookup,
		})
		b.Background = append(b.Background, book.Run)
		b.Health = append(b.Health, policy.HealthCheck{Name: "CDR Register", Check: func() (string, error) {
			last := book.LastPoll()
			if last.IsZero() {
				return "", errors.New("not polled yet")
			}
			return "last poll " + last.UTC().Format(time.RFC3339), nil
		}})
	}
	b.Profile = New(Config{Issuer: e.SSAIssuer, RegisterJWKS: e.SSAJWKSURL, Keys: d.Keys, Replay: d.Replay, Statuses: book, IDTokenAlg: d.IDTokenAlg})
	return b
}

// registerMetrics are the CDR Register poll's series (deploy/prometheus/alerts.yml
// reads the polls'; they start at zero so that a first failure counts).
type registerMetrics struct {
	polls    *prometheus.CounterVec
	lookups  *prometheus.CounterVec
	wait     prometheus.Histogram
	removals prometheus.Counter
}

func newRegisterMetrics(r prometheus.Registerer) registerMetrics {
	m := registerMetrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obdcr_cdr_register_polls_total", Help: "CDR Register status polls by result.",
		}, []string{"result"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obdcr_cdr_register_lookups_total", Help: "AU status lookups by result: found, not_found (a fresh poll did not list it), unavailable (no fresh poll in time).",
		}, []string{"result"}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "obdcr_cdr_register_lookup_wait_seconds", Help: "How long lookups of software products not yet known waited for a fresh CDR Register poll.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 5, 10, 30},
		}),
		removals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "obdcr_cdr_removed_registrations_total", Help: "Registrations removed because the CDR Register lists their software product as REMOVED.",
		}),
	}
	m.polls.WithLabelValues("ok")
	m.polls.WithLabelValues("error")
	policy.RegisterMetrics(r, m.polls, m.lookups, m.wait, m.removals)
	return m
}

func (m registerMetrics) poll(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.polls.WithLabelValues(result).Inc()
}

func (m registerMetrics) lookup(result string, waited time.Duration) {
	m.lookups.WithLabelValues(result).Inc()
	if waited > 0 {
		m.wait.Observe(waited.Seconds())
	}
}
