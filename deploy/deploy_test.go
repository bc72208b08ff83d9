// Package deploy_test checks what platform teams deploy from: docker-compose.yml,
// the Kubernetes manifests, the Hydra configuration and the scripts.
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/obdcr/obdcr/plugin"
)

type doc = map[string]any

// get walks a decoded YAML document by keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(doc)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func decodeAll(t *testing.T, b []byte) []doc {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []doc
	for {
		var d doc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if d != nil {
			out = append(out, d)
		}
	}
}

func knownVariables() map[string]bool {
	known := map[string]bool{}
	for _, v := range plugin.Variables() {
		known[v.Name] = true
	}
	return known
}

func TestDockerComposeConfig(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose is not installed; deploy/scripts/test.sh installs Debian's docker-compose")
	}
	cmd := exec.Command(bin, "-f", "../docker-compose.yml", "config")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, stderr.String())
	}
	cfg := decodeAll(t, out)[0]
	services, _ := get(cfg, "services").(doc)
	for _, name := range []string{"postgres", "hydra-migrate", "hydra", "sandbox", "obdcr-1", "obdcr-2"} {
		if services[name] == nil {
			t.Errorf("no service %s", name)
		}
	}
	if get(services, "hydra", "image") != "oryd/hydra:v2.3.0" {
		t.Errorf("hydra image %v", get(services, "hydra", "image"))
	}
	if get(services, "hydra", "depends_on", "hydra-migrate", "condition") != "service_completed_successfully" {
		t.Error("Hydra does not wait for its migrations")
	}
	dsn1, dsn2 := get(services, "obdcr-1", "environment", "OBDCR_DSN"), get(services, "obdcr-2", "environment", "OBDCR_DSN")
	if dsn1 == nil || dsn1 != dsn2 || !strings.HasPrefix(dsn1.(string), "postgres://") {
		t.Errorf("the replicas do not share one PostgreSQL DSN: %v %v", dsn1, dsn2)
	}
	known := knownVariables()
	for _, svc := range []string{"obdcr-1", "obdcr-2"} {
		env, _ := get(services, svc, "environment").(doc)
		for k := range env {
			if !known[k] && k != "SSL_CERT_FILE" {
				t.Errorf("%s sets %s, which obdcr does not read", svc, k)
			}
		}
		if get(services, svc, "read_only") != true {
			t.Errorf("%s: root filesystem is not read-only", svc)
		}
	}
	composeMonitoring(t, services)
}

// composeMonitoring: the compose file's Prometheus scrapes every replica's admin
// listener with the alerts beside its configuration, and its Grafana reads that
// Prometheus and loads the dashboard from where the provisioning looks.
func composeMonitoring(t *testing.T, services doc) {
	t.Helper()
	mounts := func(svc string) map[string]string { // target -> source
		out := map[string]string{}
		vols, _ := get(services, svc, "volumes").([]any)
		for _, v := range vols {
			parts := strings.Split(v.(string), ":")
			if len(parts) >= 2 {
				out[parts[1]] = parts[0]
			}
		}
		return out
	}
	if src := mounts("prometheus")["/etc/prometheus"]; !strings.HasSuffix(src, "/deploy/prometheus") {
		t.Errorf("Prometheus's configuration comes from %q, not deploy/prometheus", src)
	}
	raw, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	prom := decodeAll(t, raw)[0]
	targets := map[string]bool{}
	for _, tg := range get(prom, "scrape_configs", 0, "static_configs", 0, "targets").([]any) {
		targets[tg.(string)] = true
	}
	for _, svc := range []string{"obdcr-1", "obdcr-2"} {
		listen, _ := get(services, svc, "environment", "OBDCR_ADMIN_LISTEN").(string)
		port := listen[strings.LastIndex(listen, ":")+1:]
		if !targets[svc+":"+port] {
			t.Errorf("Prometheus does not scrape %s's admin listener %s:%s (targets %v)", svc, svc, port, targets)
		}
	}
	if out, err := exec.Command(promtool(t), "check", "config", "prometheus/prometheus.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}

	grafana := mounts("grafana")
	if !strings.HasSuffix(grafana["/etc/grafana/provisioning"], "/deploy/grafana/provisioning") {
		t.Errorf("Grafana's provisioning comes from %q", grafana["/etc/grafana/provisioning"])
	}
	raw, _ = os.ReadFile("grafana/provisioning/dashboards/obdcr.yml")
	dashPath, _ := get(decodeAll(t, raw)[0], "providers", 0, "options", "path").(string)
	if !strings.HasSuffix(grafana[dashPath], "/deploy/grafana") {
		t.Errorf("Grafana looks for dashboards in %q, where %q is mounted", dashPath, grafana[dashPath])
	}
	raw, _ = os.ReadFile("grafana/provisioning/datasources/prometheus.yml")
	ds := decodeAll(t, raw)[0]
	port := fmt.Sprint(get(services, "prometheus", "ports", 0, "target"))
	if get(ds, "datasources", 0, "url") != "http://prometheus:"+port || get(ds, "datasources", 0, "type") != "prometheus" {
		t.Errorf("Grafana's data source %v is not the compose file's Prometheus (port %v)", get(ds, "datasources", 0), port)
	}
}

func TestKubernetesManifests(t *testing.T) {
	files, _ := filepath.Glob("k8s/*.yaml")
	var docs []doc
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, decodeAll(t, b)...)
	}
	byKind := map[string][]doc{}
	for _, d := range docs {
		k, _ := d["kind"].(string)
		byKind[k] = append(byKind[k], d)
	}
	if len(byKind["Deployment"]) != 1 {
		t.Fatalf("%d Deployments", len(byKind["Deployment"]))
	}
	dep := byKind["Deployment"][0]
	if r, _ := get(dep, "spec", "replicas").(int); r < 2 {
		t.Errorf("replicas %v, want 2 or more", get(dep, "spec", "replicas"))
	}
	pod := get(dep, "spec", "template", "spec")
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("the pod may run as root")
	}
	containers, _ := get(pod, "containers").([]any)
	if len(containers) == 0 {
		t.Fatal("no containers")
	}
	for _, c := range containers {
		checks := map[string]bool{
			"readiness probe on /health/ready": get(c, "readinessProbe", "httpGet", "path") == "/health/ready",
			"liveness probe on /health/alive":  get(c, "livenessProbe", "httpGet", "path") == "/health/alive",
			"cpu and memory requests":          get(c, "resources", "requests", "cpu") != nil && get(c, "resources", "requests", "memory") != nil,
			"cpu and memory limits":            get(c, "resources", "limits", "cpu") != nil && get(c, "resources", "limits", "memory") != nil,
			"read-only root filesystem":        get(c, "securityContext", "readOnlyRootFilesystem") == true,
			"no privilege escalation":          get(c, "securityContext", "allowPrivilegeEscalation") == false,
			"all capabilities dropped":         get(c, "securityContext", "capabilities", "drop", 0) == "ALL",
			"non-root":                         get(c, "securityContext", "runAsNonRoot") == true,
		}
		for what, ok := range checks {
			if !ok {
				t.Errorf("container %v: no %s", get(c, "name"), what)
			}
		}
	}
	labels, _ := get(dep, "spec", "template", "metadata", "labels").(doc)
	matches := func(sel any) bool {
		m, _ := sel.(doc)
		if len(m) == 0 {
			return false
		}
		for k, v := range m {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	if len(byKind["PodDisruptionBudget"]) != 1 || !matches(get(byKind["PodDisruptionBudget"][0], "spec", "selector", "matchLabels")) {
		t.Error("no PodDisruptionBudget selecting the obdcr pods")
	}
	if v, _ := get(byKind["PodDisruptionBudget"][0], "spec", "minAvailable").(int); v < 1 {
		t.Error("the PodDisruptionBudget keeps no replica available")
	}
	services := byKind["Service"]
	if len(services) == 0 {
		t.Error("no Service")
	}
	for _, s := range services {
		if !matches(get(s, "spec", "selector")) {
			t.Errorf("Service %v does not select the obdcr pods", get(s, "metadata", "name"))
		}
	}
	known := knownVariables()
	for _, kind := range []string{"ConfigMap", "Secret"} {
		for _, d := range byKind[kind] {
			name := get(d, "metadata", "name")
			if name != "obdcr" {
				continue
			}
			data, _ := get(d, "data").(doc)
			if data == nil {
				data, _ = get(d, "stringData").(doc)
			}
			for k := range data {
				if !known[k] && !strings.HasPrefix(k, "OTEL_") { // the OpenTelemetry SDK's own
					t.Errorf("%s %v sets %s, which obdcr does not read", kind, name, k)
				}
			}
		}
	}
}

func TestHydraConfig(t *testing.T) {
	b, err := os.ReadFile("hydra/hydra.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfgs := []doc{decodeAll(t, b)[0]}
	k8s, _ := os.ReadFile("k8s/hydra-config.yaml")
	inner, _ := get(decodeAll(t, k8s)[0], "data", "hydra.yml").(string)
	cfgs = append(cfgs, decodeAll(t, []byte(inner))[0])
	for i, c := range cfgs {
		if get(c, "oidc", "dynamic_client_registration", "enabled") != false {
			t.Errorf("config %d: Hydra's own registration endpoint is not off", i)
		}
		if u, _ := get(c, "webfinger", "oidc_discovery", "client_registration_url").(string); !strings.HasSuffix(u, "/register") {
			t.Errorf("config %d: discovery's registration_endpoint does not point at obdcr: %q", i, u)
		}
		// FAPI 2.0 Security Profile §5.3.2.1: codes live at most 60 seconds.
		if ttl, _ := get(c, "ttl", "auth_code").(string); ttl != "60s" {
			t.Errorf("config %d: ttl.auth_code is %q, want 60s", i, ttl)
		}
	}
}

// The issuer's /.well-known/openid-configuration is routed to obdcr, and Hydra
// gets an allowed ID-token key, in compose and on Kubernetes alike.
func TestDiscoveryRoutedToObdcr(t *testing.T) {
	conf, err := os.ReadFile("proxies/discovery-nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "location = /.well-known/openid-configuration {\n        # obdcr's TPP listener asks for a client certificate but needs none here.\n        proxy_pass https://obdcr-1:8443;") {
		t.Errorf("the compose edge does not send discovery to obdcr:\n%s", conf)
	}
	compose, _ := os.ReadFile("../docker-compose.yml")
	cfg := decodeAll(t, compose)[0]
	if get(cfg, "services", "edge", "ports", 0) != "4444:4444" || get(cfg, "services", "hydra-keys", "command", 1) != "--fix" {
		t.Errorf("compose: edge %v, hydra-keys %v", get(cfg, "services", "edge"), get(cfg, "services", "hydra-keys"))
	}
	b, err := os.ReadFile("k8s/discovery.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := decodeAll(t, b)
	routed, fixed := false, false
	for _, d := range docs {
		switch d["kind"] {
		case "Ingress":
			p := get(d, "spec", "rules", 0, "http", "paths", 0)
			if get(p, "path") == "/.well-known/openid-configuration" && get(p, "pathType") == "Exact" && get(p, "backend", "service", "name") == "obdcr" {
				routed = true
			}
		case "Job":
			args, _ := get(d, "spec", "template", "spec", "containers", 0, "args").([]any)
			fixed = len(args) == 2 && args[0] == "doctor" && args[1] == "--fix"
		}
	}
	if !routed || !fixed {
		t.Errorf("k8s: discovery routed to obdcr %v, doctor --fix job %v", routed, fixed)
	}
}

// Secrets and certificates reach obdcr as files it reloads; the admin listener
// stays inside the cluster.
func TestKubernetesFilesAndNetwork(t *testing.T) {
	files, _ := filepath.Glob("k8s/*.yaml")
	byKind := map[string][]doc{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range decodeAll(t, b) {
			k, _ := d["kind"].(string)
			byKind[k] = append(byKind[k], d)
		}
	}
	var mounts []string
	container := get(byKind["Deployment"][0], "spec", "template", "spec", "containers", 0)
	vms, _ := get(container, "volumeMounts").([]any)
	for _, m := range vms {
		mounts = append(mounts, get(m, "mountPath").(string))
	}
	var config doc
	for _, cm := range byKind["ConfigMap"] {
		if get(cm, "metadata", "name") == "obdcr" {
			config, _ = get(cm, "data").(doc)
		}
	}
	for k, v := range config {
		if !strings.HasSuffix(k, "_FILE") {
			continue
		}
		mounted := false
		for _, m := range mounts {
			mounted = mounted || strings.HasPrefix(v.(string), m+"/")
		}
		if !mounted {
			t.Errorf("%s=%v is on no mounted volume (%v)", k, v, mounts)
		}
	}
	if config["OBDCR_ADMIN_TOKEN_FILE"] == nil || config["HYDRA_ADMIN_TOKEN_FILE"] == nil {
		t.Error("the admin tokens do not come from files")
	}
	certs := map[any]bool{}
	for _, c := range byKind["Certificate"] {
		certs[get(c, "spec", "secretName")] = true
	}
	if !certs["obdcr-tls"] || !certs["obdcr-hydra-client"] {
		t.Errorf("cert-manager Certificates for the server and Hydra client certificates: %v", certs)
	}
	if len(byKind["NetworkPolicy"]) != 1 {
		t.Fatal("no NetworkPolicy")
	}
	rules, _ := get(byKind["NetworkPolicy"][0], "spec", "ingress").([]any)
	for _, r := range rules {
		ports, _ := get(r, "ports").([]any)
		for _, p := range ports {
			if get(p, "port") != 8444 {
				continue
			}
			from, _ := get(r, "from").([]any)
			if len(from) == 0 {
				t.Error("the admin port is open to everyone")
			}
			for _, f := range from {
				if get(f, "ipBlock") != nil {
					t.Error("the admin port is open to an ipBlock")
				}
			}
		}
	}
}

// The proxy configurations the tests run are the README's examples, word for word.
func TestREADMEShowsTheProxyConfigurations(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"proxies/nginx-mtls.conf", "proxies/haproxy.cfg"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), "`deploy/"+f+"`") || !strings.Contains(string(readme), string(b)) {
			t.Errorf("the README does not show deploy/%s as it is", f)
		}
	}
}
