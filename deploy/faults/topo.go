package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The topology: each part on a network host of its own (a network namespace),
// every host on one bridge that lives in a namespace too, so that no address
// is ever added to the machine's own network: traffic goes only between the
// namespaces made here.

// prefix names every namespace and link the harness makes; a run starts by
// removing whatever a crashed run left under it.
const prefix = "obf-"

// Subnet is the harness's private network, inside its namespaces only.
const subnet = "10.231.0.0/24"

// host is one network host of the topology.
type host struct {
	Name string // namespace is prefix+Name
	Addr string
}

// NS is the host's namespace.
func (h host) NS() string { return prefix + h.Name }

var (
	hostPG    = host{"pg", "10.231.0.10"}
	hostHydra = host{"hydra", "10.231.0.11"}
	hostSB    = host{"sb", "10.231.0.12"}
	hostLoad  = host{"load", "10.231.0.30"}
	hostObs   = host{"obs", "10.231.0.40"} // the harness itself: it watches, and is never cut
	replicas  = []host{{"r1", "10.231.0.21"}, {"r2", "10.231.0.22"}, {"r3", "10.231.0.23"}}
)

func allHosts() []host {
	return append([]host{hostPG, hostHydra, hostSB, hostLoad, hostObs}, replicas...)
}

const hub = prefix + "hub" // the namespace that holds the bridge

// run runs a command and returns its error with its output.
func run(ctx context.Context, name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// inNS runs a command inside a namespace.
func inNS(ctx context.Context, ns string, args ...string) error {
	return run(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// canNamespace says why namespaces cannot be made here, or "" when they can.
func canNamespace() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "no " + tool + " on PATH"
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	probe := prefix + "probe"
	_ = run(ctx, "ip", "netns", "del", probe)
	if err := run(ctx, "ip", "netns", "add", probe); err != nil {
		return err.Error()
	}
	_ = run(ctx, "ip", "netns", "del", probe)
	return ""
}

// netUp makes the hub with its bridge, and each host with a veth pair on it.
func netUp(ctx context.Context) error {
	steps := [][]string{
		{"ip", "netns", "add", hub},
		{"ip", "netns", "exec", hub, "ip", "link", "set", "lo", "up"},
		{"ip", "netns", "exec", hub, "ip", "link", "add", "br0", "type", "bridge"},
		{"ip", "netns", "exec", hub, "ip", "link", "set", "br0", "up"},
	}
	for _, h := range allHosts() {
		inside, outside := prefix+h.Name+"-v", prefix+h.Name+"-h"
		steps = append(steps,
			[]string{"ip", "netns", "add", h.NS()},
			[]string{"ip", "link", "add", inside, "type", "veth", "peer", "name", outside},
			[]string{"ip", "link", "set", inside, "netns", h.NS()},
			[]string{"ip", "link", "set", outside, "netns", hub},
			[]string{"ip", "netns", "exec", hub, "ip", "link", "set", outside, "master", "br0", "up"},
			[]string{"ip", "netns", "exec", h.NS(), "ip", "link", "set", "lo", "up"},
			[]string{"ip", "netns", "exec", h.NS(), "ip", "link", "set", inside, "name", "eth0"},
			[]string{"ip", "netns", "exec", h.NS(), "ip", "addr", "add", h.Addr + "/24", "dev", "eth0"},
			[]string{"ip", "netns", "exec", h.NS(), "ip", "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// netDown kills every process left in the harness's namespaces (only the
// harness starts processes there), then deletes the namespaces, which takes
// their links with them, and any link a crash left in the machine's namespace.
// It is safe to run when nothing is there.
func netDown(ctx context.Context) []string {
	var problems []string
	names, err := ourNamespaces(ctx)
	if err != nil {
		return []string{err.Error()}
	}
	for _, ns := range names {
		for _, pid := range nsPIDs(ctx, ns) {
			if pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, ns := range names {
		deadline := time.Now().Add(5 * time.Second)
		for len(nsPIDs(ctx, ns)) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if err := run(ctx, "ip", "netns", "del", ns); err != nil {
			problems = append(problems, err.Error())
		}
	}
	out, _ := exec.CommandContext(ctx, "ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		if strings.HasPrefix(name, prefix) {
			if err := run(ctx, "ip", "link", "del", name); err != nil {
				problems = append(problems, err.Error())
			}
		}
	}
	return problems
}

func ourNamespaces(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %v", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	sort.Strings(names)
	return names, nil
}

// nsPIDs are the processes in a namespace.
func nsPIDs(ctx context.Context, ns string) []int {
	out, _ := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cut drops every packet between host h and the addresses peers, both ways,
// with nftables inside h's namespace: a silent partition, as a lost route or a
// firewall makes, not a refused connection.
func cut(ctx context.Context, h host, peers ...string) error {
	set := strings.Join(peers, ", ")
	script := fmt.Sprintf(`table inet obf_cut {
	chain in { type filter hook input priority 0; ip saddr { %s } drop; }
	chain out { type filter hook output priority 0; ip daddr { %s } drop; }
}
`, set, set)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", h.NS(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", h.NS(), err, out)
	}
	return nil
}

// heal removes the partition cut made in h.
func heal(ctx context.Context, h host) error {
	return inNS(ctx, h.NS(), "nft", "delete", "table", "inet", "obf_cut")
}
