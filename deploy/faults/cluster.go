package main

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/hydra"
)

// cluster is the running topology: PostgreSQL, Hydra on it, the sandbox, and
// three obdcr replicas on it, each on its own host.
type cluster struct {
	work, bin  string // scratch folder; folder of obdcr, obdcr-sandbox and faults
	hydraBin   string
	sandboxDir string
	sb         *sandbox.Sandbox
	pg         *postgres
	hydra      *proc
	sandbox    *proc
	replicas   []*proc
	db         *sql.DB // obdcr's database, as the harness reads it
	hydraAPI   *hydra.Admin
	probe      *http.Client
}

// startCluster brings every part up, in order, each ready before the next.
func startCluster(ctx context.Context, work, bin, hydraBin string, tppNames map[string]int) (*cluster, error) {
	c := &cluster{work: work, bin: bin, hydraBin: hydraBin, sandboxDir: filepath.Join(work, "sandbox"),
		probe: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}} //nolint:gosec // readiness probes only
	if err := c.makeSandbox(tppNames); err != nil {
		return nil, fmt.Errorf("sandbox files: %w", err)
	}
	var err error
	if c.pg, err = newPostgres(ctx, filepath.Join(work, "pg")); err != nil {
		return nil, fmt.Errorf("initdb: %w", err)
	}
	if err := c.pg.start(); err != nil {
		return nil, err
	}
	if err := c.createDatabases(ctx); err != nil {
		return nil, err
	}
	if err := c.startHydra(ctx, true); err != nil {
		return nil, err
	}
	c.sandbox = &proc{name: "sandbox", host: hostSB, log: filepath.Join(work, "sandbox.log"),
		argv: []string{filepath.Join(bin, "obdcr-sandbox"), "serve", "--dir", c.sandboxDir, "--listen", hostSB.Addr + ":8600", "--hydra-admin", hydraAdmin}}
	if err := c.sandbox.start(); err != nil {
		return nil, err
	}
	if err := c.waitOK(ctx, sandboxURL+"/uk/directory/jwks", 30*time.Second, c.sandbox); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	for i := range replicas {
		p := &proc{name: fmt.Sprintf("obdcr r%d", i+1), host: replicas[i], log: filepath.Join(work, fmt.Sprintf("obdcr-r%d.log", i+1)),
			argv: []string{filepath.Join(bin, "obdcr"), "serve"}, env: replicaEnv(i, c.sandboxDir)}
		c.replicas = append(c.replicas, p)
		if err := c.startReplica(ctx, i); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// makeSandbox writes the sandbox, with a server certificate for the replicas'
// addresses, and every TPP the faults' loads will use.
func (c *cluster) makeSandbox(tppNames map[string]int) error {
	sb, err := sandbox.New(sandboxURL)
	if err != nil {
		return err
	}
	if err := sb.SaveTo(c.sandboxDir); err != nil {
		return err
	}
	if _, err := sandbox.WriteFiles(sb, c.sandboxDir); err != nil {
		return err
	}
	addrs := make([]string, len(replicas))
	for i, r := range replicas {
		addrs[i] = r.Addr
	}
	leaf, err := sb.PKI().Server(addrs...)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.sandboxDir, "replica-cert.pem"), leaf.CertPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.sandboxDir, "replica-key.pem"), leaf.KeyPEM, 0o600); err != nil {
		return err
	}
	for p, n := range tppNames {
		if _, err := sb.AddTPPs(p, n); err != nil {
			return err
		}
	}
	c.sb = sb
	return nil
}

func (c *cluster) createDatabases(ctx context.Context) error {
	admin, err := sql.Open("pgx", pgDSN("postgres"))
	if err != nil {
		return err
	}
	defer admin.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = admin.PingContext(pctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("postgres did not start: %w", err)
	}
	for _, db := range []string{"obdcr", "hydra"} {
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+db); err != nil {
			return err
		}
	}
	c.db, err = sql.Open("pgx", pgDSN("obdcr"))
	return err
}

// startHydra runs Hydra (after its migrations, the first time) and, the first
// time, gives it a PS256 ID-token key as obdcr doctor --fix does.
func (c *cluster) startHydra(ctx context.Context, first bool) error {
	env := hydraEnv(filepath.Join(c.sandboxDir, "ca.pem"))
	env = append(env, "URLS_LOGIN="+sandboxURL+"/hydra/login", "URLS_CONSENT="+sandboxURL+"/hydra/consent")
	if first {
		mig := &proc{name: "hydra migrate", host: hostHydra, env: env, log: filepath.Join(c.work, "hydra.log"),
			argv: []string{c.hydraBin, "migrate", "sql", "up", "-e", "--yes"}}
		if err := mig.start(); err != nil {
			return err
		}
		<-mig.exited()
		if code := mig.cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("hydra migrate sql up exited %d; see %s", code, mig.log)
		}
		c.hydra = &proc{name: "hydra", host: hostHydra, env: env, log: mig.log,
			argv: []string{c.hydraBin, "serve", "all", "--dev", "--sqa-opt-out"}}
	}
	if err := c.hydra.start(); err != nil {
		return err
	}
	if err := c.waitOK(ctx, hydraAdmin+"/health/ready", 60*time.Second, c.hydra); err != nil {
		return fmt.Errorf("hydra: %w", err)
	}
	if !first {
		return nil
	}
	var err error
	if c.hydraAPI, err = hydra.NewAdmin(hydraAdmin, &http.Client{Timeout: 10 * time.Second}); err != nil {
		return err
	}
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = c.hydraAPI.AddSigningKey(kctx, hydra.IDTokenKeySet, "PS256")
	return err
}

func (c *cluster) startReplica(ctx context.Context, i int) error {
	if err := c.replicas[i].start(); err != nil {
		return err
	}
	if err := c.waitOK(ctx, adminURL(i)+"/health/ready", 30*time.Second, c.replicas[i]); err != nil {
		return fmt.Errorf("obdcr r%d: %w", i+1, err)
	}
	return nil
}

// waitOK polls url until it answers 200, p exits, or within passes.
func (c *cluster) waitOK(ctx context.Context, url string, within time.Duration, p *proc) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.exited():
			return fmt.Errorf("%s exited; see %s", p.name, p.log)
		default:
		}
		if last = c.get(ctx, url, nil); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: not ready within %s: %v", url, within, last)
}

// get reads url, expecting 200, and decodes its JSON into into (if set).
func (c *cluster) get(ctx context.Context, url string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := c.probe.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", res.StatusCode)
	}
	if into != nil {
		return json.Unmarshal(b, into)
	}
	return nil
}

// stop ends every part; what is left is removed with the namespaces.
func (c *cluster) stop() {
	for _, r := range c.replicas {
		r.stop(syscall.SIGTERM, 5*time.Second)
	}
	for _, p := range []*proc{c.sandbox, c.hydra} {
		if p != nil {
			p.kill()
		}
	}
	if c.db != nil {
		c.db.Close()
	}
	if c.pg != nil {
		_ = c.pg.freeze(context.Background(), syscall.SIGCONT)
		c.pg.stop(syscall.SIGINT, 10*time.Second)
	}
}

var errNoVersion = errors.New("no uk profile")
