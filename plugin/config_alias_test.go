package plugin_test

import "github.com/obdcr/obdcr/plugin"

type serverConfig = plugin.Config
