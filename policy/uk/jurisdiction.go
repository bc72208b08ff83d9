package uk

import (
	"errors"

	"github.com/obdcr/obdcr/policy"
)

// Jurisdiction is the UK as obdcr serves it: OBDCR_UK_* and the UK profile.
type Jurisdiction struct{}

func (Jurisdiction) Name() string { return Name }

func (Jurisdiction) Env() policy.JurisdictionEnv { return &Env{} }

// Env is the deployment's OBDCR_UK_* variables.
type Env struct {
	SSAIssuer  string `env:"SSA_ISSUER" envDefault:"OpenBanking Ltd" help:"SSA iss that selects the UK profile"`
	SSAJWKSURL string `env:"SSA_JWKS_URL" help:"directory JWKS that signs UK SSAs (required if UK is enabled)"`
}

func (e *Env) Check(enabled bool) error {
	if enabled && e.SSAJWKSURL == "" {
		return errors.New("OBDCR_UK_SSA_JWKS_URL: required when the uk profile is enabled (OBDCR_PROFILES)")
	}
	return policy.CheckURL("OBDCR_UK_SSA_JWKS_URL", e.SSAJWKSURL)
}

func (e *Env) DirectoryJWKS() string { return e.SSAJWKSURL }

func (e *Env) Offline(directoryJWKS string) { e.SSAJWKSURL = directoryJWKS }

func (e *Env) Build(d policy.JurisdictionDeps) policy.Built {
	return policy.Built{Profile: New(Config{Issuer: e.SSAIssuer, DirectoryJWKS: e.SSAJWKSURL, Keys: d.Keys, Replay: d.Replay, IDTokenAlg: d.IDTokenAlg})}
}
