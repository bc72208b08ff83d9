package main

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// The faults. Each begins, lasts d, and ends with a heal; run returns when it
// healed and what it did, in a few words for the report.
type fault struct {
	name       string
	what       string
	target     int  // the replica hit; -1 for none
	clientPath bool // it cuts or kills the path between the load and target
	run        func(ctx context.Context, c *cluster, d time.Duration) (healed time.Time, notes string, err error)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// partition cuts replica i from peer for d, then heals it.
func partition(i int, peer host) func(ctx context.Context, c *cluster, d time.Duration) (time.Time, string, error) {
	return func(ctx context.Context, c *cluster, d time.Duration) (time.Time, string, error) {
		if err := cut(ctx, replicas[i], peer.Addr); err != nil {
			return time.Now(), "", err
		}
		sleepCtx(ctx, d)
		err := heal(ctx, replicas[i])
		return time.Now(), fmt.Sprintf("nft drop both ways between r%d and %s for %s", i+1, peer.Name, d), err
	}
}

func catalogue() []fault {
	return []fault{
		{name: "pg-cut-r1", what: "r1 partitioned from PostgreSQL", target: 0, run: partition(0, hostPG)},
		{name: "hydra-cut-r2", what: "r2 partitioned from Hydra", target: 1, run: partition(1, hostHydra)},
		{name: "client-split-r3", what: "the load client split from r3", target: 2, clientPath: true, run: partition(2, hostLoad)},
		{name: "kill9-r1", what: "kill -9 of r1, repeatedly, and restart", target: 0, clientPath: true, run: killReplica(0)},
		{name: "pg-restart", what: "PostgreSQL stopped (fast) and started", target: -1, run: restartPostgres},
		{name: "pg-pause", what: "PostgreSQL paused (SIGSTOP of every process) past the timeouts", target: -1, run: pausePostgres},
		{name: "hydra-kill", what: "Hydra killed (-9) and restarted", target: -1, run: killHydra},
	}
}

// killReplica kills replica i with SIGKILL while the load runs through it,
// restarts it a second later, and again once it is ready, for d.
func killReplica(i int) func(ctx context.Context, c *cluster, d time.Duration) (time.Time, string, error) {
	return func(ctx context.Context, c *cluster, d time.Duration) (time.Time, string, error) {
		end := time.Now().Add(d)
		kills := 0
		var healed time.Time
		for kills == 0 || time.Now().Before(end) {
			c.replicas[i].kill()
			kills++
			sleepCtx(ctx, time.Second)
			healed = time.Now()
			if err := c.startReplica(ctx, i); err != nil {
				return healed, "", err
			}
			sleepCtx(ctx, 2*time.Second) // requests in flight again before the next kill
		}
		return healed, fmt.Sprintf("%d kills of r%d, each restarted 1 s later and killed 2 s after it was ready", kills, i+1), nil
	}
}

func restartPostgres(ctx context.Context, c *cluster, d time.Duration) (time.Time, string, error) {
	c.pg.stop(syscall.SIGINT, 10*time.Second) // fast shutdown: sessions are ended
	down := time.Now()
	sleepCtx(ctx, d/2)
	healed := time.Now()
	err := c.pg.start()
	return healed, fmt.Sprintf("down %s (fast shutdown), then started on the same data", healed.Sub(down).Round(time.Second)), err
}

func pausePostgres(ctx context.Context, c *cluster, d time.Duration) (time.Time, string, error) {
	if err := c.pg.freeze(ctx, syscall.SIGSTOP); err != nil {
		return time.Now(), "", err
	}
	sleepCtx(ctx, d)
	healed := time.Now()
	err := c.pg.freeze(ctx, syscall.SIGCONT)
	return healed, fmt.Sprintf("every PostgreSQL process stopped for %s, obdcr's request budget is 10 s", d), err
}

func killHydra(ctx context.Context, c *cluster, d time.Duration) (time.Time, string, error) {
	c.hydra.kill()
	sleepCtx(ctx, d/2)
	healed := time.Now()
	err := c.startHydra(ctx, false)
	return healed, fmt.Sprintf("down %s, then started again on the same database", (d / 2).Round(time.Second)), err
}
