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

// on_cpus turns HYDRA_CPUS / OBDCR_CPUS into the taskset prefix bench.sh pins with.
func TestOnCPUs(t *testing.T) {
	cases := []struct {
		name, env, want string
	}{
		{"unset: no prefix", "", ""},
		{"one CPU", "HYDRA_CPUS=0", "taskset -c 0"},
		{"a range", "HYDRA_CPUS=2-3", "taskset -c 2-3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command("bash", "-c", `source scripts/lib.sh && on_cpus HYDRA_CPUS`)
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			if c.env != "" {
				cmd.Env = append(cmd.Env, c.env)
			}
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != c.want {
				t.Fatalf("on_cpus = %q, want %q", got, c.want)
			}
		})
	}
}
