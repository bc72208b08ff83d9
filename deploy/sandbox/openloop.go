package sandbox

import (
	"errors"
	"slices"
	"sync"
	"time"
)

// Latency is what an open-loop run at a fixed rate saw: requests start on
// schedule whether or not earlier ones have answered, and each is timed from
// its scheduled start, so that a slow server cannot hide its queue (no
// coordinated omission).
type Latency struct {
	Rate   float64 `json:"rate_per_s"`
	Sent   int     `json:"sent"`
	Errors int     `json:"errors"`
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
	P999ms float64 `json:"p999_ms"`
	// FirstError says what the first failed call met, so that a side's
	// errors are told apart (the load tool's bound, a refusal, a timeout).
	FirstError string `json:"first_error,omitempty"`
}

// maxInFlight bounds an open-loop run: past it a request counts as failed
// rather than growing the load tool without bound.
const maxInFlight = 2048

var errOverload = errors.New("over the load tool's in-flight bound")

// openLoop calls f(0..n-1) at rate per second, each in its own goroutine.
func openLoop(rate float64, n int, f func(i int) error) Latency {
	var s samples
	s.add(rate, 0, n, f)
	return s.latency(rate)
}

// alternate runs a and b at rate in turn, rounds times each, n calls of each in
// all, and pools each side's latencies: noise on a shared machine that comes and
// goes falls on both sides alike, rather than on whichever ran second.
func alternate(rate float64, n, rounds int, a, b func(i int) error) (Latency, Latency) {
	var sa, sb samples
	per := max(1, n/rounds)
	for from := 0; from < n; from += per {
		count := min(per, n-from)
		sa.add(rate, from, count, a)
		sb.add(rate, from, count, b)
	}
	return sa.latency(rate), sb.latency(rate)
}

// samples are the latencies and errors of open-loop calls.
type samples struct {
	lat    []time.Duration
	errors int
	first  error
}

// add calls f(from..from+n-1) at rate per second, each in its own goroutine,
// each timed from its scheduled start.
func (s *samples) add(rate float64, from, n int, f func(i int) error) {
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxInFlight)
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		time.Sleep(time.Until(at))
		select {
		case slots <- struct{}{}:
		default:
			errs[i], lat[i] = errOverload, time.Since(at)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			errs[i] = f(from + i)
			lat[i] = time.Since(at)
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			s.errors++
			if s.first == nil {
				s.first = e
			}
		}
	}
	s.lat = append(s.lat, lat...)
}

func (s *samples) latency(rate float64) Latency {
	n := len(s.lat)
	l := Latency{Rate: rate, Sent: n, Errors: s.errors}
	if s.first != nil {
		l.FirstError = s.first.Error()
	}
	if n == 0 {
		return l
	}
	slices.Sort(s.lat)
	ms := func(q float64) float64 {
		return float64(s.lat[min(n-1, int(float64(n)*q))].Microseconds()) / 1000
	}
	l.P50ms, l.P99ms, l.P999ms = ms(0.50), ms(0.99), ms(0.999)
	return l
}

// OpenLoopResult compares obdcr + Hydra with Hydra alone at half of Hydra's
// measured capacity, and finds the rate where obdcr + Hydra's p99 passes 250 ms.
type OpenLoopResult struct {
	HalfCapacity   float64   `json:"half_capacity_per_s"`
	Obdcr          Latency   `json:"obdcr_and_hydra"`
	Hydra          Latency   `json:"hydra_alone"`
	P99Ratio       float64   `json:"p99_ratio"`
	Knee           float64   `json:"knee_per_s"`
	KneeSteps      []Latency `json:"knee_steps"`
	KneeP99LimitMS float64   `json:"knee_p99_limit_ms"`
}

// kneeP99 is the p99 at which the knee search stops.
const kneeP99 = 250 * time.Millisecond
