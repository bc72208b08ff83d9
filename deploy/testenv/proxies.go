package testenv

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

// Proxy is a real TLS-terminating proxy (Debian's nginx or haproxy) running one
// of the configurations under deploy/proxies, as the README shows them.
type Proxy struct {
	URL    string
	cmd    *exec.Cmd
	log    *bytes.Buffer
	dir    string
	exited chan struct{}
}

var placeholder = regexp.MustCompile(`\$\{([A-Z_]+)\}`)

// Render fills a configuration's ${NAME} placeholders, and nothing else: the
// proxies' own $variables stay as they are.
func Render(conf string, vars map[string]string) (string, error) {
	var missing error
	out := placeholder.ReplaceAllStringFunc(conf, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := vars[name]
		if !ok {
			missing = fmt.Errorf("no value for ${%s}", name)
		}
		return v
	})
	return out, missing
}

// StartNginx runs nginx with the server configuration file conf (rendered with
// vars, LISTEN set here), inside a minimal main configuration of its own.
func StartNginx(conf string, vars map[string]string) (*Proxy, error) {
	return startProxy(conf, vars, func(dir, rendered string) (*exec.Cmd, error) {
		if err := os.WriteFile(filepath.Join(dir, "obdcr.conf"), []byte(rendered), 0o644); err != nil {
			return nil, err
		}
		user := ""
		if os.Geteuid() == 0 {
			user = "user root;"
		}
		main := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[2]s/obdcr.conf;
}
`, user, dir)
		if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
			return nil, err
		}
		return exec.Command(nginxPath(), "-p", dir, "-c", filepath.Join(dir, "nginx.conf")), nil
	})
}

// StartHAProxy runs haproxy with the configuration file conf, rendered with vars.
func StartHAProxy(conf string, vars map[string]string) (*Proxy, error) {
	return startProxy(conf, vars, func(dir, rendered string) (*exec.Cmd, error) {
		path := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(path, []byte(rendered), 0o644); err != nil {
			return nil, err
		}
		return exec.Command(haproxyPath(), "-f", path, "-db"), nil
	})
}

func nginxPath() string   { return lookPath("nginx", "/usr/sbin/nginx") }
func haproxyPath() string { return lookPath("haproxy", "/usr/sbin/haproxy") }

func lookPath(name, fallback string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return fallback
}

func startProxy(conf string, vars map[string]string, command func(dir, rendered string) (*exec.Cmd, error)) (*Proxy, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		return nil, err
	}
	all := map[string]string{"LISTEN": fmt.Sprintf("127.0.0.1:%d", port)}
	for k, v := range vars {
		all[k] = v
	}
	rendered, err := Render(string(b), all)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "obdcr-proxy-")
	if err != nil {
		return nil, err
	}
	_ = os.Chmod(dir, 0o755)
	cmd, err := command(dir, rendered)
	if err != nil {
		return nil, err
	}
	p := &Proxy{URL: fmt.Sprintf("https://127.0.0.1:%d", port), cmd: cmd, log: &bytes.Buffer{}, dir: dir, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %v (deploy/scripts/test.sh installs Debian's nginx and haproxy)", cmd.Path, err)
	}
	exited := p.exited
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", all["LISTEN"], &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness only
		if err == nil {
			conn.Close()
			return p, nil
		}
		select {
		case <-exited:
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("%s exited: %s%s", cmd.Path, p.log.String(), errLog)
		default:
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("%s did not listen within 10 s: %s", cmd.Path, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log is what the proxy wrote (nginx's error log, HAProxy's output), for failing tests.
func (p *Proxy) Log() string {
	errLog, _ := os.ReadFile(filepath.Join(p.dir, "error.log"))
	return p.log.String() + string(errLog)
}

// Stop ends the proxy (SIGTERM: nginx's master then stops its workers) and
// removes its files.
func (p *Proxy) Stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	}
	_ = os.RemoveAll(p.dir)
}
