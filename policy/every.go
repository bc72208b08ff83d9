package policy

import (
	"context"
	"time"
)

// Every calls f each interval until ctx ends, then returns; the first call comes
// after one interval, and none starts once ctx has ended (a tick and the end can
// arrive together). f runs on the caller's goroutine, so a slow call delays the
// next rather than overlapping it. Background upkeep (the policy poll, the JWKS
// idle sweep) runs on it, so each says only what it does, not how it is timed.
func Every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ctx.Err() != nil {
				return
			}
			f(ctx)
		}
	}
}
