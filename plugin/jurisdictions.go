package plugin

import (
	"strings"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/au"
	"github.com/obdcr/obdcr/policy/uk"
)

// Jurisdictions are the regimes this build serves, in the order messages name
// them. A new jurisdiction is a package under policy/ that implements
// policy.Jurisdiction, and one line here: its variables, profile, background
// work, metrics and console health come from the package.
func Jurisdictions() []policy.Jurisdiction {
	return []policy.Jurisdiction{
		uk.Jurisdiction{},
		au.Jurisdiction{},
	}
}

// envPrefix is the prefix of a jurisdiction's variables: OBDCR_UK_, OBDCR_AU_.
func envPrefix(j policy.Jurisdiction) string {
	return "OBDCR_" + strings.ToUpper(j.Name()) + "_"
}

// Env is the named jurisdiction's variables as read (tests adjust them); nil
// for a jurisdiction the configuration was not read for.
func (c Config) Env(name string) policy.JurisdictionEnv { return c.envs[name] }
