package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/obdcr/obdcr/hydra"
)

// LoadConfig says what a load run drives.
type LoadConfig struct {
	ObdcrURL    string // TPP listener
	AdminURL    string // obdcr admin listener: settings and metrics
	AdminToken  string
	HydraAdmin  string // Hydra's admin API, driven alone for comparison
	Audience    string
	Concurrency int
	Count       int
	TPPs        int // distinct TPPs; each registers Count/TPPs times
	// OpenLoopSeconds, when set, adds open-loop runs of that length: obdcr +
	// Hydra beside Hydra alone at half of Hydra's measured capacity, then rising
	// rates until obdcr + Hydra's p99 passes 250 ms (steps of half that length).
	OpenLoopSeconds float64
}

// Phase is one side's figures.
type Phase struct {
	Count     int           `json:"count"`
	Errors    int           `json:"errors"`
	Elapsed   time.Duration `json:"-"`
	PerSecond float64       `json:"per_second"`
	P50       time.Duration `json:"-"`
	P99       time.Duration `json:"-"`
	P50ms     float64       `json:"p50_ms"`
	P99ms     float64       `json:"p99_ms"`
	CPU       CPUPerOp      `json:"cpu_ms_per_op"`
}

// CPUPerOp is the CPU time (user and system) each process spent per operation
// of a phase. On a machine the processes share, throughput follows the sum, so
// this says where a difference in rates comes from, and it is far steadier
// than the rates themselves.
type CPUPerOp struct {
	Obdcr float64 `json:"obdcr"`
	Hydra float64 `json:"hydra"`
	Load  float64 `json:"load_tool"`
}

// cpuClock reads the CPU seconds obdcr and Hydra report on their metrics
// endpoints (process_cpu_seconds_total), and this process's own.
type cpuClock struct{ obdcr, hydra string }

type cpuReading struct{ obdcr, hydra, load float64 }

func (c cpuClock) read() (cpuReading, error) {
	var r cpuReading
	var err error
	if r.obdcr, err = MetricSum(c.obdcr, "process_cpu_seconds_total", nil); err != nil {
		return r, err
	}
	if r.hydra, err = MetricSum(c.hydra, "process_cpu_seconds_total", nil); err != nil {
		return r, err
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return r, err
	}
	r.load = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return r, nil
}

// timed runs a phase between two CPU readings.
func (c cpuClock) timed(n, concurrency int, f func(i int) error) (Phase, error) {
	before, err := c.read()
	if err != nil {
		return Phase{}, fmt.Errorf("reading CPU time: %w", err)
	}
	p := run(n, concurrency, f)
	after, err := c.read()
	if err != nil {
		return Phase{}, fmt.Errorf("reading CPU time: %w", err)
	}
	ms := func(a, b float64) float64 { return (b - a) * 1000 / float64(n) }
	p.CPU = CPUPerOp{Obdcr: ms(before.obdcr, after.obdcr), Hydra: ms(before.hydra, after.hydra), Load: ms(before.load, after.load)}
	return p, nil
}

// LoadResult is a whole run.
type LoadResult struct {
	Concurrency                int             `json:"concurrency"`
	Obdcr                      Phase           `json:"obdcr_and_hydra"`
	Hydra                      Phase           `json:"hydra_alone"`
	ObdcrOverHydra             float64         `json:"obdcr_over_hydra"`
	JWKSFetchesPerRegistration float64         `json:"jwks_fetches_per_registration"`
	OpenLoop                   *OpenLoopResult `json:"open_loop,omitempty"`
}

// RunLoad runs registrations through obdcr, then the same number of client creates
// against Hydra alone, at the same concurrency, and compares them. The requests
// are signed before the clock starts: the run measures obdcr, not the simulator.
func RunLoad(ctx context.Context, sb *Sandbox, cfg LoadConfig, progress io.Writer) (*LoadResult, error) {
	if cfg.TPPs <= 0 {
		cfg.TPPs = 8
	}
	admin := adminAPI{base: strings.TrimRight(cfg.AdminURL, "/"), token: cfg.AdminToken}
	// Several registrations per software_id let a few TPPs stand for many, with
	// their JWKS warm: the steady state of a running bank.
	restore, err := admin.allowMultiple()
	if err != nil {
		return nil, err
	}
	defer restore()

	fmt.Fprintf(progress, "load: %d TPPs, signing %d requests...\n", cfg.TPPs, cfg.Count)
	var tpps []*TPP
	var clients []*Client
	for i := 0; i < cfg.TPPs; i++ {
		name := fmt.Sprintf("load-%d", i)
		t, err := sb.TPP(name)
		if err != nil {
			if t, err = sb.AddTPP(UK, name); err != nil {
				return nil, err
			}
		}
		c, err := NewClient(t, sb.PKI().Pool())
		if err != nil {
			return nil, err
		}
		c.HTTP.Transport.(*http.Transport).MaxIdleConnsPerHost = cfg.Concurrency
		tpps, clients = append(tpps, t), append(clients, c)
	}
	now := time.Now()
	ssas := make([]string, len(tpps))
	for i, t := range tpps {
		if ssas[i], err = sb.Directory.SSA(t, now, nil); err != nil {
			return nil, err
		}
	}
	sign := func(i int) (string, error) {
		return tpps[i%len(tpps)].Request(ssas[i%len(tpps)], cfg.Audience, now, nil)
	}
	warmID := ""
	for i := range tpps { // warm-up: each TPP's JWKS fetched once
		jwt, err := sign(i)
		if err != nil {
			return nil, err
		}
		res, err := clients[i].Register(ctx, cfg.ObdcrURL, jwt)
		if err != nil || res.Status != http.StatusCreated {
			return nil, fmt.Errorf("warm-up registration failed: %v %v", err, res)
		}
		warmID, _ = res.JSON()["client_id"].(string)
	}
	signN := func(n int) ([]string, error) {
		out := make([]string, n)
		for i := range out {
			var err error
			if out[i], err = sign(i); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	// register(jwts)(i) sends jwts[i] through obdcr, each TPP in turn.
	register := func(jwts []string) func(i int) error {
		return func(i int) error { return expectCreated(clients[i%len(clients)].Register(ctx, cfg.ObdcrURL, jwts[i])) }
	}
	jwts, err := signN(cfg.Count)
	if err != nil {
		return nil, err
	}
	fetchesBefore, err := admin.jwksFetches()
	if err != nil {
		return nil, err
	}
	clock := cpuClock{obdcr: admin.base + "/metrics", hydra: strings.TrimRight(cfg.HydraAdmin, "/") + "/admin/metrics/prometheus"}

	res := &LoadResult{Concurrency: cfg.Concurrency}
	fmt.Fprintf(progress, "load: %d registrations through obdcr at concurrency %d...\n", cfg.Count, cfg.Concurrency)
	res.Obdcr, err = clock.timed(cfg.Count, cfg.Concurrency, register(jwts))
	if err != nil {
		return nil, err
	}
	fetchesAfter, err := admin.jwksFetches()
	if err != nil {
		return nil, err
	}
	res.JWKSFetchesPerRegistration = (fetchesAfter - fetchesBefore) / float64(cfg.Count)

	// Hydra alone, creating exactly the client obdcr made (a new id each time), so
	// that the difference is what obdcr adds.
	h, err := hydra.NewAdmin(cfg.HydraAdmin, &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency}})
	if err != nil {
		return nil, err
	}
	template, err := h.Get(ctx, warmID)
	if err != nil {
		return nil, fmt.Errorf("reading a client obdcr made: %w", err)
	}
	template.Secret = ""
	hydraAlone := func(int) error {
		c := template
		c.ID = uuid.NewString()
		_, err := h.Create(ctx, c)
		return err
	}
	fmt.Fprintf(progress, "load: %d client creates against Hydra alone at concurrency %d...\n", cfg.Count, cfg.Concurrency)
	res.Hydra, err = clock.timed(cfg.Count, cfg.Concurrency, hydraAlone)
	if err != nil {
		return nil, err
	}
	if res.Hydra.PerSecond > 0 {
		res.ObdcrOverHydra = res.Obdcr.PerSecond / res.Hydra.PerSecond
	}
	if cfg.OpenLoopSeconds > 0 && res.Hydra.PerSecond > 0 {
		ol := &OpenLoopResult{HalfCapacity: res.Hydra.PerSecond / 2, KneeP99LimitMS: float64(kneeP99.Milliseconds())}
		n := max(1, int(ol.HalfCapacity*cfg.OpenLoopSeconds))
		jwts, err := signN(n)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "load: open loop at %.0f/s (half of Hydra's capacity), %.0fs each of obdcr + Hydra and Hydra alone, in %d alternating rounds...\n",
			ol.HalfCapacity, cfg.OpenLoopSeconds, openLoopRounds)
		ol.Obdcr, ol.Hydra = alternate(ol.HalfCapacity, n, openLoopRounds, register(jwts), hydraAlone)
		if ol.Hydra.P99ms > 0 {
			ol.P99Ratio = ol.Obdcr.P99ms / ol.Hydra.P99ms
		}
		// The knee: rising rates, in steps of a tenth of Hydra's capacity.
		for step := 5; step <= 15; step++ {
			rate := res.Hydra.PerSecond * float64(step) / 10
			jwts, err := signN(max(1, int(rate*cfg.OpenLoopSeconds/2)))
			if err != nil {
				return nil, err
			}
			l := openLoop(rate, len(jwts), register(jwts))
			fmt.Fprintf(progress, "load: knee search at %.0f/s: p99 %.1f ms, %d errors\n", rate, l.P99ms, l.Errors)
			ol.KneeSteps = append(ol.KneeSteps, l)
			if l.P99ms > float64(kneeP99.Milliseconds()) || l.Errors > 0 {
				break
			}
			ol.Knee = rate
		}
		res.OpenLoop = ol
	}
	return res, nil
}

// expectCreated is a registration's outcome as an error: none for 201.
func expectCreated(r *Response, err error) error {
	if err == nil && r.Status != http.StatusCreated {
		err = fmt.Errorf("HTTP %d: %s", r.Status, r.Body)
	}
	return err
}

// openLoopRounds is how many turns each side of the half-capacity comparison takes.
const openLoopRounds = 4

// run calls f(0..n-1) from c workers and times each call.
func run(n, c int, f func(i int) error) Phase {
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				errs[i] = f(i)
				lat[i] = time.Since(t)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	p := Phase{Count: n, Elapsed: time.Since(start)}
	for _, e := range errs {
		if e != nil {
			p.Errors++
		}
	}
	slices.Sort(lat)
	p.PerSecond = float64(n-p.Errors) / p.Elapsed.Seconds()
	p.P50, p.P99 = lat[n*50/100], lat[min(n-1, n*99/100)]
	p.P50ms, p.P99ms = float64(p.P50.Microseconds())/1000, float64(p.P99.Microseconds())/1000
	return p
}

// adminAPI is the little of obdcr's admin API a load run needs.
type adminAPI struct{ base, token string }

func (a adminAPI) do(method, path, body string) ([]byte, error) {
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: HTTP %d %s", method, path, res.StatusCode, b)
	}
	return b, nil
}

// allowMultiple switches UK's multiple_registrations on, and returns what puts it back.
func (a adminAPI) allowMultiple() (func(), error) {
	b, err := a.do(http.MethodGet, "/admin/policies", "")
	if err != nil {
		return nil, fmt.Errorf("load needs obdcr's admin API (--admin-url, OBDCR_ADMIN_TOKEN): %w", err)
	}
	var policies []struct {
		Profile  string `json:"profile"`
		Settings struct {
			Multiple bool `json:"multiple_registrations"`
		} `json:"settings"`
	}
	_ = json.Unmarshal(b, &policies)
	was := false
	for _, p := range policies {
		if p.Profile == UK {
			was = p.Settings.Multiple
		}
	}
	if _, err := a.do(http.MethodPut, "/admin/policies/uk", `{"settings":{"multiple_registrations":true}}`); err != nil {
		return nil, err
	}
	return func() {
		_, _ = a.do(http.MethodPut, "/admin/policies/uk", fmt.Sprintf(`{"settings":{"multiple_registrations":%v}}`, was))
	}, nil
}

// jwksFetches reads obdcr's own count of JWKS fetched over the network.
// Before any fetch the counter has no samples at all.
func (a adminAPI) jwksFetches() (float64, error) {
	n, err := MetricSum(a.base+"/metrics", "obdcr_jwks_fetches_total", nil)
	if errors.Is(err, ErrNoMetric) {
		return 0, nil
	}
	return n, err
}

// ErrNoMetric: the endpoint has no metric of that name (a counter not yet counted).
var ErrNoMetric = errors.New("no such metric")

// MetricSum adds up the samples of a counter or gauge on a Prometheus endpoint
// whose labels include every pair of match (nil: every sample); for a
// histogram, the observations counted.
func MetricSum(url, name string, match map[string]string) (float64, error) {
	f, err := metricFamily(url, name)
	if err != nil {
		return 0, err
	}
	var total float64
	for _, m := range f.GetMetric() {
		if labelsMatch(m.GetLabel(), match) {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total, nil
}

// MetricSeries counts the series (label sets) of a metric family; 0 when absent.
func MetricSeries(url, name string) (int, error) {
	f, err := metricFamily(url, name)
	if errors.Is(err, ErrNoMetric) {
		return 0, nil
	}
	return len(f.GetMetric()), err
}

func metricFamily(url, name string) (*dto.MetricFamily, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// Uncompressed: the load tool reads metrics up to ten times a second, and a
	// gzip writer per answer (about a megabyte) would be garbage obdcr's GC pays
	// for in the very figures being read.
	req.Header.Set("Accept-Encoding", "identity")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", url, res.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	f, ok := families[name]
	if !ok {
		return nil, fmt.Errorf("%s: %s: %w", url, name, ErrNoMetric)
	}
	return f, nil
}

func labelsMatch(labels []*dto.LabelPair, match map[string]string) bool {
	found := 0
	for _, l := range labels {
		if v, ok := match[l.GetName()]; ok && v == l.GetValue() {
			found++
		}
	}
	return found == len(match)
}
