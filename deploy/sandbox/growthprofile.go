package sandbox

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// profileStep, after a growth step's timed registrations, takes obdcr's CPU
// profile over seconds while registrations go on without pause, then its heap
// profile, into dir as cpu-<tpps>.pprof and heap-<tpps>.pprof: the steps' pairs,
// diffed with go tool pprof -diff_base, say what grows with the TPPs held.
// These registrations are not in the step's figures.
func profileStep(admin adminAPI, dir string, tpps int, seconds, concurrency int, register func(int) error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var next atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range max(1, concurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
					_ = register(int(next.Add(1)))
				}
			}
		}()
	}
	cpu, err := admin.do(http.MethodGet, fmt.Sprintf("/admin/debug/pprof/profile?seconds=%d", seconds), "")
	close(done)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	// What the heap holds after the registrations, once collected.
	time.Sleep(100 * time.Millisecond)
	heap, err := admin.do(http.MethodGet, "/admin/debug/pprof/heap?gc=1", "")
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("cpu-%d.pprof", tpps)), cpu, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, fmt.Sprintf("heap-%d.pprof", tpps)), heap, 0o644)
}
