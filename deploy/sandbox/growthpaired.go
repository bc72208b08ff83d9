package sandbox

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// PairedGrowth compares obdcr's CPU per registration at the first step's TPP
// count and at the last's in alternating blocks, each on an obdcr of its own:
// the one that ran the steps, which holds every step's TPPs (11,010 by the
// last) and their registrations, and a reference beside it, started afresh,
// that sees only the first step's TPPs. The stepped one holds more
// registrations too (about six times the reference's), as it did when the
// steps alone were compared: a bank with 10,000 TPPs has at least as many.
//
// The steps alone cannot say it: they run minutes apart, and a shared machine's
// CPUs slow by a third for minutes after sustained load, which moves a step's
// figure by more than the 10 % the comparison must resolve. Here both sides run
// within seconds of each other, in AB, BA, AB… order, so that drift slows both
// alike; each pair gives a ratio, and the figure is their median.
type PairedGrowth struct {
	SmallTPPs int `json:"small_tpps"`
	LargeTPPs int `json:"large_tpps"`
	// CPUMsSmall and CPUMsLarge are each side's median block.
	CPUMsSmall float64 `json:"cpu_ms_per_registration_small"`
	CPUMsLarge float64 `json:"cpu_ms_per_registration_large"`
	// Ratio is the median of the pairs' large ÷ small.
	Ratio       float64   `json:"cpu_large_over_small"`
	PairRatios  []float64 `json:"pair_ratios"`
	BlockSize   int       `json:"registrations_per_block"`
	Errors      int       `json:"errors"`
	SmallBlocks []float64 `json:"cpu_ms_small_blocks"`
	LargeBlocks []float64 `json:"cpu_ms_large_blocks"`
}

// pairedBlocks is how many blocks each side of the paired comparison runs.
const pairedBlocks = 6

// endpoint is one obdcr: where TPPs register, and its metrics.
type endpoint struct{ url, metrics string }

// runPaired registers each of small's TPPs at ref once (its JWKS fetched), then
// times pairedBlocks blocks of perBlock registrations on each side, alternating
// which side goes first.
func runPaired(ctx context.Context, small, large *growthSet, ref, main endpoint, sb *Sandbox, perBlock, concurrency int, progress io.Writer) (*PairedGrowth, error) {
	// The SSAs and requests of both sets are made now, so that neither side's
	// are older than the other's.
	for _, s := range []*growthSet{small, large} {
		if err := s.refresh(sb); err != nil {
			return nil, err
		}
	}
	registerSmall, registerLarge := small.registrar(ctx, ref.url), large.registrar(ctx, main.url)
	warm := run(len(small.tpps), concurrency, registerSmall)
	res := &PairedGrowth{SmallTPPs: len(small.tpps), LargeTPPs: len(large.tpps), BlockSize: perBlock, Errors: warm.Errors}
	fmt.Fprintf(progress, "growth: paired, %d TPPs on a reference obdcr beside %d on the stepped one, %d blocks of %d each...\n",
		res.SmallTPPs, res.LargeTPPs, pairedBlocks, perBlock)
	next := 0 // the large set's TPPs are taken in turn across blocks
	for b := range pairedBlocks {
		var smallB, largeB block
		sides := []func() error{
			func() (err error) {
				smallB, err = timeBlock(ref.metrics, perBlock, concurrency, func(i int) error { return registerSmall(b*perBlock + i) })
				return err
			},
			func() (err error) {
				off := next
				largeB, err = timeBlock(main.metrics, perBlock, concurrency, func(i int) error { return registerLarge(off + i) })
				return err
			},
		}
		if b%2 == 1 {
			slices.Reverse(sides)
		}
		for _, side := range sides {
			if err := side(); err != nil {
				return nil, err
			}
		}
		next += perBlock
		res.Errors += smallB.errors + largeB.errors
		res.SmallBlocks = append(res.SmallBlocks, smallB.cpuMs)
		res.LargeBlocks = append(res.LargeBlocks, largeB.cpuMs)
		if smallB.cpuMs > 0 {
			res.PairRatios = append(res.PairRatios, largeB.cpuMs/smallB.cpuMs)
		}
	}
	if len(res.PairRatios) == 0 {
		return nil, fmt.Errorf("the reference obdcr's CPU did not move over %d blocks of %d registrations: its metrics are not the obdcr at %s", pairedBlocks, perBlock, ref.url)
	}
	res.Ratio, res.CPUMsSmall, res.CPUMsLarge = median(res.PairRatios), median(res.SmallBlocks), median(res.LargeBlocks)
	fmt.Fprintf(progress, "growth: paired: %.2f ms at %d TPPs (blocks %.2f), %.2f ms at %d (blocks %.2f), ratio %.2f (pairs %.2f)\n",
		res.CPUMsSmall, res.SmallTPPs, res.SmallBlocks, res.CPUMsLarge, res.LargeTPPs, res.LargeBlocks, res.Ratio, res.PairRatios)
	return res, nil
}

// median is the middle of vs (the mean of the two middle ones for an even count).
func median(vs []float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// referenceEndpoint is the reference obdcr of cfg, with multiple registrations
// of one software allowed there for the run (restore puts it back).
func referenceEndpoint(cfg GrowthConfig) (endpoint, func(), error) {
	ref := adminAPI{base: strings.TrimRight(cfg.ReferenceAdminURL, "/"), token: cfg.AdminToken}
	restore, err := ref.allowMultiple()
	if err != nil {
		return endpoint{}, nil, fmt.Errorf("the reference obdcr: %w", err)
	}
	return endpoint{url: cfg.ReferenceURL, metrics: ref.base + "/metrics"}, restore, nil
}
