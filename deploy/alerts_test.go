package deploy

import (
	"os/exec"
	"testing"
)

// The alerting rules parse, and each fires on the failure it names and stays
// quiet beside it (deploy/prometheus/alerts_test.yml), in Prometheus's own
// evaluator. plugin/alerts_integration_test.go checks the series they read
// against a real obdcr.
func TestAlertRules(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed; deploy/scripts/test.sh installs Debian's prometheus")
	}
	for _, args := range [][]string{{"check", "rules", "prometheus/alerts.yml"}, {"test", "rules", "prometheus/alerts_test.yml"}} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
