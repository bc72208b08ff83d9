package sandbox

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/obdcr/obdcr/hydra"
)

// GrowthConfig says how far a growth run goes.
type GrowthConfig struct {
	ObdcrURL, AdminURL, AdminToken, HydraAdmin, Audience string
	// TPPs are the counts of distinct TPPs, each with a JWKS of its own, run in turn.
	TPPs []int
	// Count is the registrations each step times, spread over its TPPs, JWKS warm.
	Count       int
	Concurrency int
	// Prefill is how many clients Hydra holds before the first step (made here).
	Prefill int
	// Settle is how long, after a step, background JWKS fetches are counted.
	Settle time.Duration
	// ProfileDir, when set, gets obdcr's CPU and heap profiles of each step
	// (profileStep), taken over ProfileSeconds after the step's figures.
	ProfileDir     string
	ProfileSeconds int
	// ReferenceURL and ReferenceAdminURL, when set, are a second obdcr, started
	// afresh beside the first: after the steps, the first step's TPPs register
	// there in blocks that alternate with the last step's on the first obdcr
	// (PairedGrowth).
	ReferenceURL, ReferenceAdminURL string
}

// growthBlocks is how many blocks a step's timed registrations go in.
const growthBlocks = 5

// blockTimes is what timeInBlocks measured of obdcr.
type blockTimes struct {
	cpuMs     []float64 // obdcr's CPU per registration of each block, sorted
	allocated float64   // bytes obdcr allocated in all
	took      time.Duration
	errors    int
}

// timeInBlocks calls register(0..count-1) in growthBlocks blocks, reading obdcr's
// CPU and allocations around each: the step's figure is the median block's, so
// that a burst of noise on a shared machine moves one block, not the figure.
func timeInBlocks(metrics string, count, concurrency int, register func(int) error) (blockTimes, error) {
	var t blockTimes
	blocks := max(1, min(growthBlocks, count))
	for b := range blocks {
		size := count / blocks
		if b == blocks-1 {
			size = count - size*(blocks-1)
		}
		blk, err := timeBlock(metrics, size, concurrency, func(i int) error { return register(b*(count/blocks) + i) })
		if err != nil {
			return t, err
		}
		t.took += blk.took
		t.allocated += blk.allocated
		t.errors += blk.errors
		t.cpuMs = append(t.cpuMs, blk.cpuMs)
	}
	slices.Sort(t.cpuMs)
	return t, nil
}

// block is what timeBlock measured of one obdcr over one block of registrations.
type block struct {
	cpuMs     float64 // CPU per registration
	allocated float64 // bytes allocated in all
	took      time.Duration
	errors    int
}

// timeBlock calls register(0..size-1) from concurrency workers, reading the CPU
// and allocations of the obdcr whose metrics these are before and after.
func timeBlock(metrics string, size, concurrency int, register func(int) error) (block, error) {
	cpu0, err := MetricSum(metrics, "process_cpu_seconds_total", nil)
	if err != nil {
		return block{}, err
	}
	alloc0, _ := MetricSum(metrics, "go_memstats_alloc_bytes_total", nil)
	start := time.Now()
	p := run(size, concurrency, register)
	took := time.Since(start)
	cpu1, err := MetricSum(metrics, "process_cpu_seconds_total", nil)
	if err != nil {
		return block{}, err
	}
	alloc1, _ := MetricSum(metrics, "go_memstats_alloc_bytes_total", nil)
	return block{cpuMs: (cpu1 - cpu0) * 1000 / float64(max(1, size)), allocated: alloc1 - alloc0, took: took, errors: p.Errors}, nil
}

// growthSet is one step's TPPs, each with a JWKS of its own, ready to register.
// Each TPP connects, registers and goes, as real ones do: no connection is kept,
// so 10,000 TPPs never hold 10,000 idle connections to obdcr (its
// OBDCR_TPP_MAX_CONNS would make the rest wait for them to time out).
type growthSet struct {
	tpps     []*TPP
	clients  []*Client
	ssas     []string
	now      time.Time
	audience string
}

func newGrowthSet(sb *Sandbox, name string, n int, audience string) (*growthSet, error) {
	tpps, err := sb.AddTPPs(name, n)
	if err != nil {
		return nil, err
	}
	s := &growthSet{tpps: tpps, clients: make([]*Client, n), audience: audience}
	for i, t := range tpps {
		if s.clients[i], err = NewClient(t, sb.PKI().Pool()); err != nil {
			return nil, err
		}
		s.clients[i].HTTP.Transport.(*http.Transport).DisableKeepAlives = true
	}
	return s, s.refresh(sb)
}

// refresh has the directory issue every TPP a new SSA, so that a set made
// minutes ago registers with statements and requests as fresh as a new set's.
func (s *growthSet) refresh(sb *Sandbox) error {
	s.now = time.Now()
	s.ssas = make([]string, len(s.tpps))
	for i, t := range s.tpps {
		var err error
		if s.ssas[i], err = sb.Directory.SSA(t, s.now, nil); err != nil {
			return err
		}
	}
	return nil
}

// registrar returns a function that registers the set's TPP i % n at obdcrURL.
func (s *growthSet) registrar(ctx context.Context, obdcrURL string) func(int) error {
	return func(i int) error {
		t := i % len(s.tpps)
		jwt, err := s.tpps[t].Request(s.ssas[t], s.audience, s.now, nil)
		if err != nil {
			return err
		}
		return expectCreated(s.clients[t].Register(ctx, obdcrURL, jwt))
	}
}

// GrowthStep is one TPP count's figures, from obdcr's own metrics.
type GrowthStep struct {
	TPPs                    int     `json:"tpps"`
	PerSecond               float64 `json:"registrations_per_s"`
	CPUMsPerRegistration    float64 `json:"cpu_ms_per_registration"`
	PeakRSSMiB              float64 `json:"peak_rss_mib"`
	JWKSCached              float64 `json:"jwks_cached"`
	BackgroundFetchesPerMin float64 `json:"background_fetches_per_min"`
	// RegisterPollsPerMin are the CDR Register polls (AU) in the same time.
	RegisterPollsPerMin float64   `json:"register_polls_per_min"`
	CPUMsPerBlock       []float64 `json:"cpu_ms_per_registration_blocks"`
	// AllocKiBPerRegistration is what obdcr allocated per timed registration:
	// its garbage collector's work grows with it.
	AllocKiBPerRegistration float64 `json:"alloc_kib_per_registration"`
	Errors                  int     `json:"errors"`
}

// GrowthResult is a whole growth run.
type GrowthResult struct {
	Prefilled      int          `json:"hydra_clients_prefilled"`
	Steps          []GrowthStep `json:"steps"`
	OrgLookupMs    float64      `json:"admin_lookup_org_id_ms"`
	SoftwareLookup float64      `json:"admin_lookup_software_id_ms"`
	// Paired is the first step's TPP count beside the last's, when a reference
	// obdcr was given.
	Paired *PairedGrowth `json:"paired,omitempty"`
}

// RunGrowth fills Hydra with Prefill clients, then for each TPP count makes
// that many TPPs (one shared signing key, their own JWKS URLs and certificates),
// registers each once (its JWKS fetched), times Count more registrations spread
// over them, and counts obdcr's background JWKS fetches for Settle after. With a
// reference obdcr, it then compares the first step's TPPs there with the last
// step's here in alternating blocks (runPaired). Last, it times the admin API's
// lookups with everything in Hydra.
func RunGrowth(ctx context.Context, sb *Sandbox, cfg GrowthConfig, progress io.Writer) (*GrowthResult, error) {
	admin := adminAPI{base: strings.TrimRight(cfg.AdminURL, "/"), token: cfg.AdminToken}
	restore, err := admin.allowMultiple()
	if err != nil {
		return nil, err
	}
	defer restore()
	metrics := admin.base + "/metrics"
	var ref endpoint
	if cfg.ReferenceURL != "" {
		var restoreRef func()
		if ref, restoreRef, err = referenceEndpoint(cfg); err != nil {
			return nil, err
		}
		defer restoreRef()
	}
	res := &GrowthResult{}
	if cfg.Prefill > 0 {
		fmt.Fprintf(progress, "growth: %d clients into Hydra...\n", cfg.Prefill)
		h, err := hydra.NewAdmin(cfg.HydraAdmin, &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency}})
		if err != nil {
			return nil, err
		}
		p := run(cfg.Prefill, cfg.Concurrency, func(i int) error {
			_, err := h.Create(ctx, hydra.Client{ID: uuid.NewString(), Name: "prefill", Owner: fmt.Sprintf("prefill-org-%d", i%1000),
				GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthSigningAlg: "PS256",
				JWKSURI: "https://prefill.example/jwks"})
			return err
		})
		if p.Errors > 0 {
			return nil, fmt.Errorf("%d of %d prefill creates failed", p.Errors, cfg.Prefill)
		}
		res.Prefilled = cfg.Prefill
	}
	var last *TPP
	var sets []*growthSet
	for _, n := range cfg.TPPs {
		fmt.Fprintf(progress, "growth: %d TPPs...\n", n)
		set, err := newGrowthSet(sb, fmt.Sprintf("growth-%d-%s", n, base62(6)), n, cfg.Audience)
		if err != nil {
			return nil, err
		}
		sets = append(sets, set)
		last = set.tpps[0]
		register := set.registrar(ctx, cfg.ObdcrURL)
		warm := run(n, cfg.Concurrency, register) // each TPP once: its JWKS fetched
		fmt.Fprintf(progress, "growth: %d TPPs registered once; timing %d registrations...\n", n, cfg.Count)
		step := GrowthStep{TPPs: n, Errors: warm.Errors}
		peakMiB := samplePeakRSS(metrics, 100*time.Millisecond)
		timed, err := timeInBlocks(metrics, cfg.Count, cfg.Concurrency, register)
		if err != nil {
			return nil, err
		}
		step.PeakRSSMiB = peakMiB()
		step.Errors += timed.errors
		step.AllocKiBPerRegistration = timed.allocated / 1024 / float64(cfg.Count)
		step.PerSecond = float64(cfg.Count) / timed.took.Seconds()
		perBlock := timed.cpuMs
		step.CPUMsPerRegistration, step.CPUMsPerBlock = median(perBlock), perBlock
		step.JWKSCached, _ = MetricSum(metrics, "obdcr_jwks_cached", nil)
		software := map[string]string{"source": "software"}
		f0, _ := MetricSum(metrics, "obdcr_jwks_fetches_total", software)
		r0, _ := MetricSum(metrics, "obdcr_cdr_register_polls_total", nil)
		time.Sleep(cfg.Settle)
		f1, _ := MetricSum(metrics, "obdcr_jwks_fetches_total", software)
		r1, _ := MetricSum(metrics, "obdcr_cdr_register_polls_total", nil)
		if cfg.Settle > 0 {
			step.BackgroundFetchesPerMin = (f1 - f0) / cfg.Settle.Minutes()
			step.RegisterPollsPerMin = (r1 - r0) / cfg.Settle.Minutes()
		}
		fmt.Fprintf(progress, "growth: %d TPPs: %.1f registrations/s, %.2f ms obdcr CPU each (blocks %.2f), %.0f KiB allocated each, peak RSS %.1f MiB, %0.f JWKS held, %.1f background JWKS fetches and %.1f Register polls a minute\n",
			n, step.PerSecond, step.CPUMsPerRegistration, perBlock, step.AllocKiBPerRegistration, step.PeakRSSMiB, step.JWKSCached, step.BackgroundFetchesPerMin, step.RegisterPollsPerMin)
		res.Steps = append(res.Steps, step)
		if cfg.ProfileDir != "" {
			fmt.Fprintf(progress, "growth: %d TPPs: profiling obdcr for %ds...\n", n, max(1, cfg.ProfileSeconds))
			if err := profileStep(admin, cfg.ProfileDir, n, max(1, cfg.ProfileSeconds), cfg.Concurrency, register); err != nil {
				return nil, err
			}
		}
	}
	if ref.url != "" && len(sets) > 1 {
		res.Paired, err = runPaired(ctx, sets[0], sets[len(sets)-1], ref, endpoint{url: cfg.ObdcrURL, metrics: metrics}, sb,
			max(1, cfg.Count/growthBlocks), cfg.Concurrency, progress)
		if err != nil {
			return nil, err
		}
	}
	if last != nil {
		timeIt := func(path string) (float64, error) {
			start := time.Now()
			if _, err := admin.do(http.MethodGet, path, ""); err != nil {
				return 0, err
			}
			return float64(time.Since(start).Microseconds()) / 1000, nil
		}
		if res.OrgLookupMs, err = timeIt("/admin/registrations?org_id=" + last.OrgID); err != nil {
			return nil, err
		}
		if res.SoftwareLookup, err = timeIt("/admin/registrations?software_id=" + last.SoftwareID); err != nil {
			return nil, err
		}
	}
	return res, nil
}
