package testenv

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// Postgres is a throwaway PostgreSQL cluster in a folder of its own.
type Postgres struct {
	DSN    string // postgres://obdcr@127.0.0.1:PORT/postgres?sslmode=disable
	dir    string
	bin    string
	runAs  *user.User
	port   int
	nextDB int
}

// pgBin finds PostgreSQL's server programs: on PATH, else Debian's folder.
func pgBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return "", errors.New("PostgreSQL is not installed: deploy/scripts/test.sh installs Debian's postgresql")
	}
	sort.Strings(matches)
	return filepath.Dir(matches[len(matches)-1]), nil
}

// StartPostgres runs initdb in a new folder and starts a server on a free
// loopback port. PostgreSQL refuses to run as root, so as root it runs as the
// postgres user that Debian's package makes.
func StartPostgres() (*Postgres, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "obdcr-pg-")
	if err != nil {
		return nil, err
	}
	p := &Postgres{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and there is no postgres user to run PostgreSQL as: %v", err)
		}
		p.runAs = u
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if out, err := p.run("initdb", "-D", filepath.Join(dir, "data"), "-U", "obdcr", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if p.port, err = FreePort(); err != nil {
		return nil, err
	}
	if err := p.Resume(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return nil, fmt.Errorf("%v\n%s", err, log)
	}
	p.DSN = p.dsn("postgres")
	return p, nil
}

func (p *Postgres) dsn(db string) string {
	return fmt.Sprintf("postgres://obdcr@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

func (p *Postgres) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(p.bin, prog)
	var cmd *exec.Cmd
	if p.runAs != nil {
		cmd = exec.Command("runuser", append([]string{"-u", p.runAs.Username, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = p.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// NewDatabase creates an empty database and returns its DSN, so tests that share
// the cluster do not share tables.
func (p *Postgres) NewDatabase() (string, error) {
	p.nextDB++
	name := fmt.Sprintf("t%d_%d", os.Getpid(), p.nextDB)
	db, err := sql.Open("pgx", p.DSN)
	if err != nil {
		return "", err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return p.dsn(name), nil
}

// Pause stops the server, keeping its data; Resume starts it again on the same port.
func (p *Postgres) Pause() error {
	out, err := p.run("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "fast", "-w", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// Resume starts the server (again), on its port.
func (p *Postgres) Resume() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", p.port, p.dir)
	if out, err := p.run("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-o", opts, "-l", filepath.Join(p.dir, "log"), "-w", "-t", "60", "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s", err, out)
	}
	return nil
}

// Stop shuts the server down and removes its folder.
func (p *Postgres) Stop() {
	_, _ = p.run("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "immediate", "stop")
	os.RemoveAll(p.dir)
}

// PostgresDatabase starts a cluster of the test's own, stopped when the test
// ends, and returns the DSN of a fresh database in it, and the cluster.
func PostgresDatabase(t testing.TB) (string, *Postgres) {
	t.Helper()
	pg, err := StartPostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	dsn, err := pg.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return dsn, pg
}
