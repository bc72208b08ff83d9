package plugin_test

import "github.com/obdcr/obdcr/policy"

func clientIDFor(profile, softwareID string) string { return policy.ClientIDFor(profile, softwareID) }
