package plugin_test

import (
	"context"
	"encoding/json"
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

// Every series deploy/prometheus/alerts.yml and deploy/grafana/obdcr.json read
// is one a real obdcr exposes, under that name, with those labels and values: a
// renamed metric or label would otherwise leave an alert that never fires and a
// panel that stays empty.
func TestAlertsAndDashboardReadRealSeries(t *testing.T) {
	// An ordinary day: a UK and an AU registration, a refusal, a TPP reading
	// its registration, a Register poll.
	o := startObdcr(t, withRegister)
	ctx := context.Background()
	r := registerTPP(t, o, sandbox.UK)
	if res, err := r.client.Get(ctx, o.URL, r.clientID, r.token); err != nil || res.Status != http.StatusOK {
		t.Fatalf("GET: %v %v", err, res)
	}
	tpp, c := newTPP(t, sandbox.AU)
	if res, err := c.Register(ctx, o.URL, request(t, tpp, nil, nil)); err != nil || res.Status != http.StatusCreated {
		t.Fatalf("AU: %v %v", err, res)
	}
	if res, err := c.Register(ctx, o.URL, request(t, tpp, nil, policytestSet("aud", "https://elsewhere.example"))); err != nil || res.Status != http.StatusBadRequest {
		t.Fatalf("a refusal: %v %v", err, res)
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

	queries := append(alertQueries(t), dashboardQueries(t)...)
	checked := 0
	for _, q := range queries {
		selectors := selectorRE.FindAllStringSubmatch(q.expr, -1)
		if len(selectors) == 0 && !strings.Contains(q.expr, "process_") {
			t.Errorf("%s reads no obdcr series: %s", q.where, q.expr)
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
				t.Errorf("%s reads %s, which obdcr does not expose", q.where, sel[1])
				continue
			}
			for _, m := range matcherRE.FindAllStringSubmatch(sel[2], -1) {
				label, values := m[1], []string{m[3]}
				if label == "job" || label == "instance" {
					continue // Prometheus adds these to every series it scrapes
				}
				if m[2] == "=~" {
					values = strings.Split(m[3], "|")
				}
				for _, v := range values {
					if !hasLabelValue(family, label, v) && !slices.Contains(failureOnlyValues[name+"/"+label], v) {
						t.Errorf("%s matches %s{%s=%q}, which obdcr never shows", q.where, name, label, v)
					}
				}
			}
			checked++
		}
	}
	if checked < 30 {
		t.Fatalf("only %d selectors checked", checked)
	}
}

type query struct{ where, expr string }

func alertQueries(t *testing.T) []query {
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
	var out []query
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out = append(out, query{"alert " + r.Alert, r.Expr})
		}
	}
	return out
}

func dashboardQueries(t *testing.T) []query {
	raw, err := os.ReadFile("../deploy/grafana/obdcr.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	var out []query
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			out = append(out, query{"panel " + p.Title, target.Expr})
		}
	}
	if len(out) < 20 {
		t.Fatalf("the dashboard has %d queries", len(out))
	}
	return out
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
