package plugin_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/plugin"
	"github.com/obdcr/obdcr/policy"
)

// obdcr doctor names each half-made registration older than a request's budget
// (younger ones may still be completing), and says when it could not ask.
func TestHalfMadeFinding(t *testing.T) {
	now := time.Now()
	old := policy.CreateAttempt{ClientID: "c-old", SoftwareID: "s1", NotedAt: now.Add(-30 * time.Second)}
	young := policy.CreateAttempt{ClientID: "c-young", SoftwareID: "s2", NotedAt: now.Add(-time.Second)}
	cases := []struct {
		name     string
		list     []policy.CreateAttempt
		err      error
		severity string
		names    string
		lacks    string
	}{
		{name: "none", severity: plugin.SeverityOK, names: "no half-made"},
		{name: "one still completing", list: []policy.CreateAttempt{young}, severity: plugin.SeverityOK, lacks: "c-young"},
		{name: "one half-made", list: []policy.CreateAttempt{old, young}, severity: plugin.SeverityWarning, names: "c-old", lacks: "c-young"},
		{name: "admin API unreachable", err: errors.New("connection refused"), severity: plugin.SeverityOK, names: "not checked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := plugin.HalfMadeFinding(c.list, c.err, now)
			if f.Check != "obdcr.half_made" || f.Severity != c.severity || !strings.Contains(f.Message, c.names) ||
				(c.lacks != "" && strings.Contains(f.Message, c.lacks)) {
				t.Fatalf("%+v", f)
			}
		})
	}
}
