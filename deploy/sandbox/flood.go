package sandbox

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Flood modes: what an attacker sends, as the Hardening II review did.
const (
	FloodMethods    = "methods"    // random method tokens, no certificate
	FloodManagement = "management" // management calls with 30 KiB of path and token, no certificate
	FloodRefusals   = "refusals"   // refused registrations from one TPP's certificate
	FloodClaims     = "claims"     // 64 KiB requests of 6,000 upper-case claim names, with a certificate
	FloodSignIn     = "sign-in"    // 30 MiB console sign-ins, multipart and urlencoded by turns, no token
)

// FloodModes lists every mode, in the order a full run sends them.
var FloodModes = []string{FloodMethods, FloodManagement, FloodRefusals, FloodClaims, FloodSignIn}

// signInFloodCount caps the sign-in flood's requests whatever --count says:
// six 30 MiB multipart sign-ins took obdcr from 73 to 466 MiB before its forms
// were capped, so ten, eight at once, show it; thousands would only time the
// loopback.
const (
	signInFloodCount = 10
	signInFloodBody  = 30 << 20
)

// FloodConfig says what a flood sends.
type FloodConfig struct {
	ObdcrURL, AdminURL, AdminToken string
	Mode                           string
	Count, Concurrency             int
}

// FloodResult is what a flood did to obdcr, read from its own metrics and audit.
type FloodResult struct {
	Mode          string         `json:"mode"`
	Requests      int            `json:"requests"`
	Statuses      map[string]int `json:"statuses"`
	RSSBeforeMiB  float64        `json:"rss_before_mib"`
	RSSPeakMiB    float64        `json:"rss_peak_mib"`
	SeriesBefore  int            `json:"series_before"`
	SeriesAfter   int            `json:"series_after"`
	AuditBefore   int            `json:"audit_before"`
	AuditAfter    int            `json:"audit_after"`
	ElapsedSecond float64        `json:"elapsed_s"`
}

// RunFlood sends one flood and measures obdcr's resident memory (sampled every
// 50 ms), its request series and its audit, before and after.
func RunFlood(ctx context.Context, sb *Sandbox, cfg FloodConfig) (*FloodResult, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Mode == FloodSignIn {
		cfg.Count = min(cfg.Count, signInFloodCount)
	}
	send, err := floodSender(sb, cfg)
	if err != nil {
		return nil, err
	}
	metrics := strings.TrimRight(cfg.AdminURL, "/") + "/metrics"
	admin := adminAPI{base: strings.TrimRight(cfg.AdminURL, "/"), token: cfg.AdminToken}
	res := &FloodResult{Mode: cfg.Mode, Requests: cfg.Count, Statuses: map[string]int{}}
	rss := func() float64 {
		v, _ := MetricSum(metrics, "process_resident_memory_bytes", nil)
		return v / (1 << 20)
	}
	series := func() int {
		n, _ := MetricSeries(metrics, "obdcr_http_request_duration_seconds")
		return n
	}
	// One request first: the series and the first audit entry any flood of its
	// kind may make; what the flood then adds is what it must not.
	send(ctx, -1)
	if res.AuditBefore, err = admin.auditLen(); err != nil {
		return nil, err
	}
	series() // the series of the scrape and the audit read themselves
	res.RSSBeforeMiB, res.SeriesBefore = rss(), series()
	peakMiB := samplePeakRSS(metrics, 50*time.Millisecond)
	var mu sync.Mutex
	start := time.Now()
	run(cfg.Count, cfg.Concurrency, func(i int) error {
		status := send(ctx, i)
		mu.Lock()
		res.Statuses[status]++
		mu.Unlock()
		return nil
	})
	res.ElapsedSecond = time.Since(start).Seconds()
	res.RSSPeakMiB = max(peakMiB(), res.RSSBeforeMiB, rss())
	res.SeriesAfter = series()
	if res.AuditAfter, err = admin.auditLen(); err != nil {
		return nil, err
	}
	return res, nil
}

// floodSender returns what sends request i of a mode, and names its outcome.
func floodSender(sb *Sandbox, cfg FloodConfig) (func(ctx context.Context, i int) string, error) {
	anon := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency,
		TLSClientConfig: &tls.Config{RootCAs: sb.PKI().Pool()}}}
	do := func(c *http.Client, req *http.Request) string {
		r, err := c.Do(req)
		if err != nil {
			return "error"
		}
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return fmt.Sprint(r.StatusCode)
	}
	base := strings.TrimRight(cfg.ObdcrURL, "/")
	switch cfg.Mode {
	case FloodMethods:
		return func(ctx context.Context, i int) string {
			r := rand.New(rand.NewPCG(uint64(i+1), 7))
			m := make([]byte, 8+r.IntN(56))
			for j := range m {
				m[j] = byte('A' + r.IntN(26))
			}
			req, _ := http.NewRequestWithContext(ctx, string(m), base+"/register", nil)
			return do(anon, req)
		}, nil
	case FloodManagement:
		long := strings.Repeat("A", 15<<10)
		return func(ctx context.Context, i int) string {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/register/%s%d", base, long, i), nil)
			req.Header.Set("Authorization", "Bearer "+long)
			return do(anon, req)
		}, nil
	case FloodRefusals, FloodClaims:
		t, err := sb.TPP("flood")
		if err != nil {
			if t, err = sb.AddTPP(UK, "flood"); err != nil {
				return nil, err
			}
		}
		c, err := NewClient(t, sb.PKI().Pool())
		if err != nil {
			return nil, err
		}
		c.HTTP.Transport.(*http.Transport).MaxIdleConnsPerHost = cfg.Concurrency
		body := "not.a.jwt"
		if cfg.Mode == FloodClaims {
			body = upperCaseClaims(64 << 10)
		}
		return func(ctx context.Context, i int) string {
			res, err := c.Register(ctx, base, body)
			if err != nil {
				return "error"
			}
			return fmt.Sprint(res.Status)
		}, nil
	case FloodSignIn:
		login := strings.TrimRight(cfg.AdminURL, "/") + "/console/login"
		// i < 0 is the warm-up: one of each kind, so that the flood's statuses
		// are series the warm-up made.
		return func(ctx context.Context, i int) string {
			status := ""
			for _, multipart := range []bool{i%2 == 0, i < 0} {
				body, contentType := signInBody(multipart)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, login, body)
				req.Header.Set("Content-Type", contentType)
				status = do(anon, req)
				if i >= 0 {
					break
				}
			}
			return status
		}, nil
	}
	return nil, fmt.Errorf("unknown flood %q; one of %s", cfg.Mode, strings.Join(FloodModes, ", "))
}

// signInBody is a 30 MiB sign-in form, made as it is sent: a multipart form of
// one field, or an urlencoded one.
func signInBody(multipart bool) (io.Reader, string) {
	filler := io.LimitReader(zeros{}, signInFloodBody)
	if multipart {
		return io.MultiReader(strings.NewReader("--flood\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n"),
			filler, strings.NewReader("\r\n--flood--\r\n")), "multipart/form-data; boundary=flood"
	}
	return io.MultiReader(strings.NewReader("token="), filler), "application/x-www-form-urlencoded"
}

// zeros reads as endless "0"s.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}

// samplePeakRSS reads obdcr's resident memory from its metrics every interval
// until the returned func is called, which answers the peak seen, in MiB.
func samplePeakRSS(metrics string, every time.Duration) func() float64 {
	var peak atomic.Uint64
	sample := func() {
		if v, err := MetricSum(metrics, "process_resident_memory_bytes", nil); err == nil && uint64(v) > peak.Load() {
			peak.Store(uint64(v))
		}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() float64 {
		close(done)
		<-stopped
		sample() // a run shorter than every is still read once
		return float64(peak.Load()) / (1 << 20)
	}
}

// upperCaseClaims is an unsigned request JWT of at most size bytes whose payload
// is as many short upper-case claim names as fit (about 4,500 in 64 KiB): before
// the cap, each was compared with every other.
func upperCaseClaims(size int) string {
	header := b64([]byte(`{"alg":"PS256","typ":"JWT"}`))
	var p strings.Builder
	p.WriteByte('{')
	for i := 0; ; i++ {
		name := fmt.Sprintf(`"%c%c%c":0`, 'A'+i/676%26, 'A'+i/26%26, 'A'+i%26)
		if (p.Len()+len(name)+2)*4/3+len(header)+8 > size || i == 26*26*26 {
			break
		}
		if i > 0 {
			p.WriteByte(',')
		}
		p.WriteString(name)
	}
	p.WriteByte('}')
	return header + "." + b64([]byte(p.String())) + ".c2ln"
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (a adminAPI) auditLen() (int, error) {
	b, err := a.do(http.MethodGet, "/admin/audit?limit=1000", "")
	if err != nil {
		return 0, err
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(b, &entries); err != nil {
		return 0, err
	}
	return len(entries), nil
}
