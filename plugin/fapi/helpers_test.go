package fapi_test

import (
	"crypto/tls"
	"net/url"
	"slices"
)

func tlsRoots() *tls.Config {
	return &tls.Config{RootCAs: env.Sandbox.PKI().Pool(), MinVersion: tls.VersionTLS12}
}

func keys(v url.Values) []string {
	out := make([]string, 0, len(v))
	for k := range v {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
