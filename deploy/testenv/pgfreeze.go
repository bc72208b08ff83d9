package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Freeze stops every process of the cluster (SIGSTOP to the postmaster and each
// of its children, which are each in a session of their own). Connections stay open and
// the kernel still accepts new ones, but nothing answers: a paused database, as
// a hung host or a network cut looks to its clients. Thaw continues it.
func (p *Postgres) Freeze() error { return p.signal(syscall.SIGSTOP) }

// Thaw continues a frozen cluster.
func (p *Postgres) Thaw() error { return p.signal(syscall.SIGCONT) }

func (p *Postgres) signal(sig syscall.Signal) error {
	b, err := os.ReadFile(filepath.Join(p.dir, "data", "postmaster.pid"))
	if err != nil {
		return err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 1 {
		return fmt.Errorf("postmaster.pid: %q", line)
	}
	for _, child := range children(pid) {
		_ = syscall.Kill(child, sig)
	}
	return syscall.Kill(pid, sig)
}

// children are the processes whose parent is pid, read from /proc.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		fields := strings.Fields(string(b)[i+1:])
		if len(fields) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == pid {
			if child, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
				out = append(out, child)
			}
		}
	}
	return out
}
