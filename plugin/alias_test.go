package plugin_test

import "github.com/obdcr/obdcr/plugin"

type testenvConfig = plugin.Config
