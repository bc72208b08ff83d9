package deploy_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The scripts behind make test, demo and bench only run whole on a fresh machine;
// a syntax slip in a branch this machine never takes would surface only there.
func TestScriptsParse(t *testing.T) {
	scripts, err := filepath.Glob("scripts/*.sh")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts found: %v", err)
	}
	for _, s := range scripts {
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", s, err, out)
		}
	}
}

// lib.sh's helpers: on_cpus turns HYDRA_CPUS / OBDCR_CPUS into the taskset
// prefix bench.sh pins with; issuer is the bank's issuer the demo and bench
// start Hydra and obdcr with, the edge's URL when EDGE_PORT turns it on.
func TestLibHelpers(t *testing.T) {
	cases := []struct {
		name, call, env, want string
	}{
		{"on_cpus unset: no prefix", "on_cpus HYDRA_CPUS", "", ""},
		{"on_cpus one CPU", "on_cpus HYDRA_CPUS", "HYDRA_CPUS=0", "taskset -c 0"},
		{"on_cpus a range", "on_cpus HYDRA_CPUS", "HYDRA_CPUS=2-3", "taskset -c 2-3"},
		{"issuer, edge off: Hydra's public URL", "issuer", "", "http://127.0.0.1:4444"},
		{"issuer, edge on: the edge's URL", "issuer", "EDGE_PORT=8445", "https://127.0.0.1:8445"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command("bash", "-c", "source scripts/lib.sh && "+c.call)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "HYDRA_PUBLIC_PORT=4444"}
			if c.env != "" {
				cmd.Env = append(cmd.Env, c.env)
			}
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != c.want {
				t.Fatalf("%s = %q, want %q", c.call, got, c.want)
			}
		})
	}
}
