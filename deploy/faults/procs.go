package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// proc is a long-running program on one host of the topology, started through
// `ip netns exec`, which execs the program in place: the pid is the program's,
// so a kill -9 reaches it and not a wrapper.
type proc struct {
	name string
	host host
	argv []string
	env  []string
	log  string // file its output is appended to

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.host.NS()}, p.argv...)...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// signal sends sig to the program.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return errors.New(p.name + " is not running")
	}
	return p.cmd.Process.Signal(sig)
}

// exited is closed once the program has ended.
func (p *proc) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// kill ends the program with SIGKILL and waits for it.
func (p *proc) kill() {
	if p.signal(syscall.SIGKILL) == nil {
		<-p.exited()
	}
}

// stop asks the program to end with sig, and kills it if it has not within grace.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if p.signal(sig) != nil {
		return
	}
	select {
	case <-p.exited():
	case <-time.After(grace):
		p.kill()
	}
}

// postgres is the one PostgreSQL cluster, run as the postgres user (it refuses
// root) by setpriv, which execs in place like ip does.
type postgres struct {
	*proc
	dir string
}

func pgBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", errors.New("PostgreSQL is not installed (deploy/scripts/test.sh installs Debian's postgresql)")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

func asPostgres(argv ...string) []string {
	return append([]string{"setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"}, argv...)
}

// newPostgres runs initdb in dir and lets the topology's hosts in.
func newPostgres(ctx context.Context, dir string) (*postgres, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := run(ctx, "chown", "postgres:postgres", dir); err != nil {
		return nil, err
	}
	initdb := asPostgres(filepath.Join(bin, "initdb"), "-D", data, "-U", "obdcr", "--auth=trust", "-E", "UTF8", "--no-sync")
	if err := run(ctx, initdb[0], initdb[1:]...); err != nil {
		return nil, err
	}
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = fmt.Fprintf(hba, "host all all %s trust\n", subnet)
	hba.Close()
	if err != nil {
		return nil, err
	}
	argv := asPostgres(filepath.Join(bin, "postgres"), "-D", data, "-p", "5432", "-k", dir,
		"-c", "listen_addresses="+hostPG.Addr, "-c", "fsync=off", "-c", "max_connections=300")
	return &postgres{proc: &proc{name: "postgres", host: hostPG, argv: argv, log: filepath.Join(dir, "..", "postgres.log")}, dir: dir}, nil
}

// freeze stops (SIGSTOP) or continues (SIGCONT) every process of the cluster,
// the postmaster and each backend: stopping the postmaster alone would leave
// open connections served.
func (p *postgres) freeze(ctx context.Context, sig syscall.Signal) error {
	pids := nsPIDs(ctx, hostPG.NS())
	if len(pids) == 0 {
		return errors.New("no process in " + hostPG.NS())
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal %v to postgres pid %d: %w", sig, pid, err)
		}
	}
	return nil
}

func pgDSN(db string) string {
	return fmt.Sprintf("postgres://obdcr@%s:5432/%s?sslmode=disable", hostPG.Addr, db)
}

// URLs of the topology's services.
var (
	hydraPublic = "http://" + hostHydra.Addr + ":4444"
	hydraAdmin  = "http://" + hostHydra.Addr + ":4445"
	sandboxURL  = "https://" + hostSB.Addr + ":8600"
)

func tppURL(i int) string   { return "https://" + replicas[i].Addr + ":8443" }
func adminURL(i int) string { return "http://" + replicas[i].Addr + ":8444" }

// adminToken is the replicas' admin token; the load's policy changes use it.
const adminToken = "faults-admin-token-0123456789"

func hydraEnv(caFile string) []string {
	return []string{
		"DSN=" + pgDSN("hydra") + "&max_conns=20",
		"SECRETS_SYSTEM=obdcr-faults-system-secret-0123456789",
		"URLS_SELF_ISSUER=" + hydraPublic, "URLS_SELF_PUBLIC=" + hydraPublic,
		"SERVE_PUBLIC_HOST=" + hostHydra.Addr, "SERVE_PUBLIC_PORT=4444",
		"SERVE_ADMIN_HOST=" + hostHydra.Addr, "SERVE_ADMIN_PORT=4445",
		"OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED=false",
		"SSL_CERT_FILE=" + caFile, "LOG_LEVEL=warn",
	}
}

func replicaEnv(i int, sandboxDir string) []string {
	r := replicas[i]
	return []string{
		"OBDCR_LISTEN=" + r.Addr + ":8443", "OBDCR_ADMIN_LISTEN=" + r.Addr + ":8444",
		"OBDCR_PUBLIC_URL=" + tppURL(i),
		"OBDCR_TLS_CERT_FILE=" + filepath.Join(sandboxDir, "replica-cert.pem"),
		"OBDCR_TLS_KEY_FILE=" + filepath.Join(sandboxDir, "replica-key.pem"),
		"OBDCR_TLS_CLIENT_CA_FILE=" + filepath.Join(sandboxDir, "ca.pem"),
		"SSL_CERT_FILE=" + filepath.Join(sandboxDir, "ca.pem"),
		"OBDCR_ISSUER=" + hydraPublic, "HYDRA_ADMIN_URL=" + hydraAdmin, "HYDRA_PUBLIC_URL=" + hydraPublic,
		"OBDCR_PROFILES=uk", "OBDCR_UK_SSA_JWKS_URL=" + sandboxURL + "/uk/directory/jwks",
		"OBDCR_ALLOW_PRIVATE_JWKS=true", "OBDCR_ADMIN_TOKEN=" + adminToken,
		"OBDCR_DSN=" + pgDSN("obdcr"),
		// The load sends many requests from each TPP, which no real TPP does.
		"OBDCR_TPP_RATE_LIMIT=1000/s",
		"OBDCR_LOG_LEVEL=" + envOr("FAULTS_OBDCR_LOG_LEVEL", "warn"),
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
