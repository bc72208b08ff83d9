package plugin

import (
	"context"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obdcr/obdcr/plugin/console"
)

// consoleMetrics count console sign-ins; the console keeps refusals written to
// the audit to a budget per source address an hour, and the rest are counted here.
type consoleMetrics struct {
	consoleSignIns   *prometheus.CounterVec
	consoleUnaudited prometheus.Counter
}

// signInOutcomes is the closed set of the outcome label.
var signInOutcomes = []string{"ok", "refused", "throttled"}

func newConsoleMetrics(r *prometheus.Registry) consoleMetrics {
	m := consoleMetrics{
		consoleSignIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obdcr_console_sign_ins_total", Help: "Console sign-ins by outcome: ok, refused (not an admin token) or throttled (refused unread while its address or name backs off).",
		}, []string{"outcome"}),
		consoleUnaudited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "obdcr_console_sign_in_refusals_unaudited_total", Help: "Refused console sign-ins not written to the audit: past their source address's budget of the hour.",
		}),
	}
	for _, o := range signInOutcomes {
		m.consoleSignIns.WithLabelValues(o)
	}
	r.MustRegister(m.consoleSignIns, m.consoleUnaudited)
	return m
}

func (b consoleBackend) KnownName(name string) bool {
	return slices.ContainsFunc(b.s.adminTokens.Get(), func(t adminToken) bool { return t.name == name })
}

// NoteSignIn counts a sign-in and audits a refusal within its budget. The
// refusal stands whether or not the store takes the entry.
func (b consoleBackend) NoteSignIn(ctx context.Context, e console.SignInEvent) {
	if !slices.Contains(signInOutcomes, e.Outcome) {
		return
	}
	b.s.metrics.consoleSignIns.WithLabelValues(e.Outcome).Inc()
	if e.Outcome != "refused" {
		return
	}
	if !e.Audit {
		b.s.metrics.consoleUnaudited.Inc()
		return
	}
	b.s.svc.SignInRefused(ctx, e.Source, e.Name)
}
