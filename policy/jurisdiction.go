package policy

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
)

// Jurisdiction is a regime as a deployment plugs it in: its profile's name,
// the variables it reads (OBDCR_<NAME>_*), and how its profile and the work
// that runs beside it are built from them. A jurisdiction is one package under
// policy/ that implements this, and one line in the list plugin serves from;
// nothing else names it.
type Jurisdiction interface {
	// Name is the profile's name: OBDCR_PROFILES, the admin API, audit and
	// metrics. Its upper case names its variables' prefix.
	Name() string
	// Env is a fresh value of the jurisdiction's variables: a pointer to a
	// struct whose fields carry caarlos0/env tags (env, envDefault, help), named
	// without the OBDCR_<NAME>_ prefix. obdcr reads it, lists it in
	// `obdcr serve --help` and the README, and builds from it.
	Env() JurisdictionEnv
}

// JurisdictionEnv is a jurisdiction's variables once read.
type JurisdictionEnv interface {
	// Check refuses values that cannot work, naming the variable; enabled says
	// whether OBDCR_PROFILES turns the profile on.
	Check(enabled bool) error
	// DirectoryJWKS is the URL of the JWKS that signs the jurisdiction's SSAs:
	// kept fresh in the background, and counted as the directory's.
	DirectoryJWKS() string
	// Offline points it at a local directory JWKS and at no outside service,
	// for dry runs without a server (obdcr check --offline).
	Offline(directoryJWKS string)
	// Build makes the profile and what runs beside it.
	Build(d JurisdictionDeps) Built
}

// JurisdictionDeps are what the server shares with every jurisdiction.
type JurisdictionDeps struct {
	Keys      TrustStore
	Replay    ReplayCache
	Fetch     FetchPolicy
	Registrar *Registrar
	Log       *slog.Logger
	// IDTokenAlg is the algorithm Hydra signs ID tokens with; nil offline.
	IDTokenAlg IDTokenAlgSource
	// Metrics registers the jurisdiction's own series on the server's
	// registry; nil offline, where nothing is exported.
	Metrics prometheus.Registerer
}

// Built is a jurisdiction's part of a running server.
type Built struct {
	Profile *Profile
	// Background runs until ctx ends (a register's status poll).
	Background []func(ctx context.Context)
	// Health are outside services the profile depends on, shown in the policy
	// console's overview beside Hydra and the store.
	Health []HealthCheck
}

// HealthCheck says how an outside service is doing: a line of detail, or why
// it is not well.
type HealthCheck struct {
	Name  string
	Check func() (detail string, err error)
}

// RegisterMetrics registers collectors when r is set; offline builds pass none.
func RegisterMetrics(r prometheus.Registerer, cs ...prometheus.Collector) {
	if r != nil {
		r.MustRegister(cs...)
	}
}

// CheckURL refuses a value of variable name that is set but not an http(s) URL.
func CheckURL(name, v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an http(s) URL", name, v)
	}
	return nil
}
