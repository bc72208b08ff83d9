package plugin_test

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/obdcr/obdcr/deploy/sandbox"
)

// Label values a healthy obdcr does not show: they appear only while Hydra
// refuses or fails (TestHydraBehindAGuardWithEverythingRotating shows
// "unauthorized"). Every other value a rule matches must be in the scrape.
var failureOnlyValues = map[string][]string{
	"obdcr_hydra_request_duration_seconds/result": {"unauthorized", "server_error", "unreachable"},
}

var (
	selectorRE = regexp.MustCompile(`(obdcr_[a-z0-9_]+)(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
)

// Every series deploy/prometheus/alerts.yml reads is one a real obdcr exposes,
// under that name, with those labels and values: a renamed metric or label
// would otherwise leave an alert that can never fire.
func TestAlertRulesReadRealSeries(t *testing.T) {
	o := startObdcr(t, withRegister)
	for _, profile := range []string{sandbox.UK, sandbox.AU} {
		tpp, c := newTPP(t, profile)
		if res, err := c.Register(context.Background(), o.URL, request(t, tpp, nil, nil)); err != nil || res.Status != http.StatusCreated {
			t.Fatalf("%s: %v %v", profile, err, res)
		}
	}
	waitForPolls(t, o, "ok", 1)

	res, err := http.Get(o.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			selectors := selectorRE.FindAllStringSubmatch(r.Expr, -1)
			if len(selectors) == 0 {
				t.Errorf("%s reads no obdcr series: %s", r.Alert, r.Expr)
			}
			for _, sel := range selectors {
				name := sel[1]
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if f := strings.TrimSuffix(name, suffix); f != name && families[f] != nil {
						name = f
					}
				}
				family := families[name]
				if family == nil {
					t.Errorf("%s reads %s, which obdcr does not expose", r.Alert, sel[1])
					continue
				}
				for _, m := range matcherRE.FindAllStringSubmatch(sel[2], -1) {
					label, values := m[1], []string{m[3]}
					if m[2] == "=~" {
						values = strings.Split(m[3], "|")
					}
					for _, v := range values {
						if !hasLabelValue(family, label, v) && !slices.Contains(failureOnlyValues[name+"/"+label], v) {
							t.Errorf("%s matches %s{%s=%q}, which obdcr never shows", r.Alert, name, label, v)
						}
					}
				}
				checked++
			}
		}
	}
	if checked < 8 {
		t.Fatalf("only %d selectors checked", checked)
	}
}

func hasLabelValue(f *dto.MetricFamily, label, value string) bool {
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return true
			}
		}
	}
	return false
}
