package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/policy"
)

// The load client: closed-loop TPPs that register, read, update and delete
// their registration over and over, each request to the next replica, plus an
// admin changing the UK policy every PolicyEvery. It runs on its own host and
// logs every request it sends, one JSON line each.

// loadConfig is what the harness hands the load process, as a JSON file.
type loadConfig struct {
	Fault       string        `json:"fault"`
	SandboxDir  string        `json:"sandbox_dir"`
	TPPs        []string      `json:"tpps"` // the workers share them out; a worker moves on from a stuck one
	Workers     int           `json:"workers"`
	Duration    time.Duration `json:"duration"`
	Timeout     time.Duration `json:"timeout"` // how long a request waits for its answer
	PolicyEvery time.Duration `json:"policy_every"`
	Out         string        `json:"out"`
	// Retry, when set, is the TPPs' retry after the compensation window: one
	// registration each, nothing else; Deleting's TPPs send their DELETE
	// again first.
	Retry    bool     `json:"retry"`
	Deleting []string `json:"deleting,omitempty"`
}

type recorder struct {
	mu  sync.Mutex
	w   *bufio.Writer
	enc *json.Encoder
	seq atomic.Int64
}

func (r *recorder) add(o Obs) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.enc.Encode(o)
}

// requestID names a request in the log, the audit and obdcr's own log.
func (r *recorder) requestID(fault string) string {
	return fmt.Sprintf("%s-%06d", fault, r.seq.Add(1))
}

type loadRun struct {
	cfg   loadConfig
	sb    *sandbox.Sandbox
	rec   *recorder
	admin *http.Client
}

func runLoad(ctx context.Context, cfg loadConfig) error {
	sb, err := sandbox.Load(cfg.SandboxDir)
	if err != nil {
		return err
	}
	f, err := os.Create(cfg.Out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	defer w.Flush()
	l := &loadRun{cfg: cfg, sb: sb, rec: &recorder{w: w, enc: json.NewEncoder(w)}, admin: httpClient(nil, cfg.Timeout)}
	var tpps []*tppClient
	for _, name := range cfg.TPPs {
		t, err := sb.TPP(name)
		if err != nil {
			return err
		}
		leaf, err := t.Transport()
		if err != nil {
			return err
		}
		hc := httpClient(&tls.Config{RootCAs: sb.PKI().Pool(), Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12}, cfg.Timeout)
		tpps = append(tpps, &tppClient{t: t, http: hc, sc: &sandbox.Client{TPP: t, HTTP: hc},
			clientID: policy.ClientIDFor(sandbox.UK, t.SoftwareID)})
	}
	if cfg.Retry {
		var wg sync.WaitGroup
		for i, t := range tpps {
			wg.Add(1)
			go func() { defer wg.Done(); l.retry(ctx, t, i) }()
		}
		wg.Wait()
		return nil
	}
	deadline := time.Now().Add(cfg.Duration)
	var wg sync.WaitGroup
	for i := 0; i < cfg.Workers; i++ {
		var mine []*tppClient
		for j := i; j < len(tpps); j += cfg.Workers {
			mine = append(mine, tpps[j])
		}
		wg.Add(1)
		go func() { defer wg.Done(); l.worker(ctx, i, mine, deadline) }()
	}
	if cfg.PolicyEvery > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); l.policyChanges(ctx, deadline) }()
	}
	wg.Wait()
	return nil
}

// httpClient waits timeout for an answer, but gives up on a connection after
// 3 s, so that a cut replica costs a worker seconds, not its whole timeout.
// Idle connections are dropped before obdcr's 15 s idle close can race a request.
func httpClient(cfg *tls.Config, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig: cfg, DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second, IdleConnTimeout: 10 * time.Second, MaxIdleConnsPerHost: 4,
	}}
}

type tppClient struct {
	t        *sandbox.TPP
	http     *http.Client
	sc       *sandbox.Client
	clientID string // obdcr's client_id for this software (one registration per software_id)
	holds    bool   // the TPP holds a registration
	token    string
	lastJWT  string // the last registration request, replayed once it is deleted
	lastJTI  string
	replica  int
	// deleting: a DELETE was answered 5xx or not at all. The TPP sends it
	// again, with a new token and backing off, until an answer says what
	// happened (204, 404, or a refusal), before it registers again.
	deleting bool
	backoff  time.Duration
}

// backOff waits before a retry: 500 ms, doubling to 4 s.
func (t *tppClient) backOff(pause func(time.Duration)) {
	t.backoff = min(max(2*t.backoff, 500*time.Millisecond), 4*time.Second)
	pause(t.backoff)
}

// send makes one request and logs it; the body of an answer is returned.
func (l *loadRun) send(ctx context.Context, hc *http.Client, o *Obs, method, url, ctype, bearer string, body []byte) []byte {
	o.RequestID = l.rec.requestID(l.cfg.Fault)
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) { wrote.Store(i.Err == nil) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, url, bytes.NewReader(body))
	if err != nil {
		panic(err) // the harness builds every URL
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-Id", o.RequestID)
	o.Start = time.Now()
	res, err := hc.Do(req)
	var b []byte
	if err == nil {
		b, err = io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		o.Status = res.StatusCode
	}
	o.Elapsed = time.Since(o.Start)
	var ne net.Error
	switch {
	case err == nil || o.Status != 0:
		o.Kind = kindAnswered
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			ClientID    string `json:"client_id"`
			Version     int64  `json:"version"`
		}
		_ = json.Unmarshal(b, &e)
		o.Error, o.Description, o.Version = e.Error, e.Description, e.Version
		if o.Status == http.StatusCreated {
			o.ClientID = e.ClientID // what obdcr said, whatever the harness expected
		}
	case !wrote.Load():
		o.Kind, o.Err = kindUnsent, err.Error()
	case errors.As(err, &ne) && ne.Timeout():
		o.Kind, o.Err = kindNoAnswer, err.Error()
	default:
		o.Kind, o.Err = kindDropped, err.Error()
	}
	l.rec.add(*o)
	return b
}

// nextReplica spreads a TPP's requests over the replicas, as a load balancer would.
func (t *tppClient) nextReplica() int {
	t.replica = (t.replica + 1) % len(replicas)
	return t.replica
}

func (l *loadRun) registerJWT(t *tppClient) (jwt, jti string, err error) {
	now := time.Now()
	ssa, err := l.sb.Directory.SSA(t.t, now, nil)
	if err != nil {
		return "", "", err
	}
	jti = uuid.NewString()
	jwt, err = t.t.Request(ssa, hydraPublic, now, func(c map[string]any) { c["jti"] = jti })
	return jwt, jti, err
}

func (l *loadRun) obs(t *tppClient, op string) Obs {
	return Obs{Op: op, Replica: t.nextReplica(), TPP: t.t.Name, SoftwareID: t.t.SoftwareID, ClientID: t.clientID}
}

// register sends a registration; the answer is the Obs logged.
func (l *loadRun) register(ctx context.Context, t *tppClient, op, jwt, jti string) Obs {
	o := l.obs(t, op)
	o.JTI = jti
	l.send(ctx, t.http, &o, http.MethodPost, tppURL(o.Replica)+"/register", "application/jwt", "", []byte(jwt))
	return o
}

// worker runs its TPPs' registrations in a closed loop until the deadline.
func (l *loadRun) worker(ctx context.Context, id int, tpps []*tppClient, deadline time.Time) {
	if len(tpps) == 0 {
		return
	}
	cur, step := 0, 0
	pause := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		t := tpps[cur]
		if !t.holds {
			jwt, jti, err := l.registerJWT(t)
			if err != nil {
				fmt.Fprintf(os.Stderr, "load: worker %d: signing: %v\n", id, err)
				return
			}
			o := l.register(ctx, t, opRegister, jwt, jti)
			switch {
			case o.Kind == kindAnswered && o.Status == http.StatusCreated:
				t.holds, t.lastJWT, t.lastJTI, t.clientID, step = true, jwt, jti, o.ClientID, 0
			case o.Kind == kindAnswered && o.Status == http.StatusBadRequest && strings.Contains(o.Description, "already has a registration"):
				// A registration exists that this TPP was never given: it can do
				// nothing but wait; the retry after the window tells whether it was repaired.
				if cur+1 >= len(tpps) {
					fmt.Fprintf(os.Stderr, "load: worker %d: every TPP is stuck\n", id)
					return
				}
				cur++
			default:
				pause(time.Second) // told to retry, or no answer: retry as a TPP would
			}
			continue
		}
		if t.token == "" {
			if !l.fetchToken(ctx, t) {
				pause(time.Second)
			}
			continue
		}
		switch step {
		case 0:
			o := l.obs(t, opGet)
			l.send(ctx, t.http, &o, http.MethodGet, tppURL(o.Replica)+"/register/"+t.clientID, "", t.token, nil)
			step = l.advance(t, o, step, http.StatusOK, pause)
		case 1:
			jwt, jti, err := l.registerJWT(t)
			if err != nil {
				return
			}
			o := l.obs(t, opUpdate)
			o.JTI = jti
			l.send(ctx, t.http, &o, http.MethodPut, tppURL(o.Replica)+"/register/"+t.clientID, "application/jwt", t.token, []byte(jwt))
			step = l.advance(t, o, step, http.StatusOK, pause)
		case 2:
			o := l.deleteOnce(ctx, t, pause)
			if o.Kind == kindAnswered && o.Status == http.StatusNoContent {
				// The registration's own request again, to another replica:
				// its jti was used, so it must be refused, whatever else has changed.
				l.register(ctx, t, opReplay, t.lastJWT, t.lastJTI)
				continue
			}
			if !t.deleting && t.holds {
				step = l.advance(t, o, step, http.StatusNoContent, pause)
			}
		}
	}
}

// deleteOnce sends the TPP's DELETE once. A 5xx or no answer leaves the
// outcome unknown ("send the DELETE again"): the TPP is then deleting, and
// sends it again with a new token (a partial delete revoked the old one),
// backing off, until the answer is definite: 204, or 404 (it is gone).
func (l *loadRun) deleteOnce(ctx context.Context, t *tppClient, pause func(time.Duration)) Obs {
	o := l.obs(t, opDelete)
	l.send(ctx, t.http, &o, http.MethodDelete, tppURL(o.Replica)+"/register/"+t.clientID, "", t.token, nil)
	switch {
	case o.Kind == kindAnswered && (o.Status == http.StatusNoContent || o.Status == http.StatusNotFound):
		t.holds, t.deleting, t.token, t.backoff = false, false, "", 0
	case o.unknownOutcome():
		t.deleting, t.token = true, ""
		t.backOff(pause)
	case t.deleting && o.Kind == kindAnswered && o.Status == http.StatusUnauthorized:
		t.token = "" // revoked by the delete that did not finish: a new one
	case t.deleting && o.Kind == kindAnswered:
		t.deleting, t.backoff = false, 0 // refused: the registration stands
	default:
		t.backOff(pause) // never reached obdcr
	}
	return o
}

// advance moves to the next step on the wanted answer; on a refused token it
// fetches another; otherwise it pauses and the step is tried again.
func (l *loadRun) advance(t *tppClient, o Obs, step, want int, pause func(time.Duration)) int {
	switch {
	case o.Kind == kindAnswered && o.Status == want:
		return step + 1
	case o.Kind == kindAnswered && o.Status == http.StatusUnauthorized:
		t.token = ""
	case o.Kind == kindAnswered && o.Status < 500:
		return (step + 1) % 3 // refused: logged; the loop goes on (a refused DELETE: read it again)
	default:
		pause(500 * time.Millisecond)
	}
	return step
}

// fetchToken gets a client_credentials token from Hydra for the TPP's client.
// A client Hydra no longer knows (a DELETE whose answer was lost) sends the TPP
// back to registering. Hydra answers invalid_client too when it cannot look
// the client up (its database down): that is believed only while Hydra says it
// is ready. A TPP cannot ask; it would retry until invalid_client persisted.
func (l *loadRun) fetchToken(ctx context.Context, t *tppClient) bool {
	o := Obs{Op: opToken, Replica: -1, TPP: t.t.Name, SoftwareID: t.t.SoftwareID, ClientID: t.clientID, RequestID: l.rec.requestID(l.cfg.Fault), Start: time.Now()}
	tok, res, err := t.sc.Token(ctx, hydraPublic+"/oauth2/token", t.clientID, "")
	o.Elapsed = time.Since(o.Start)
	o.Kind = kindAnswered
	if res != nil {
		o.Status = res.Status
		e := res.JSON()
		o.Error, _ = e["error"].(string)
	} else if err != nil {
		o.Kind, o.Err = kindUnsent, err.Error()
	}
	l.rec.add(o)
	if err != nil {
		if o.Error == "invalid_client" && hydraReady(ctx, t.http) {
			t.holds, t.deleting = false, false
		}
		return false
	}
	t.token = tok
	return true
}

// hydraReady: Hydra's readiness probe, which checks its database, says ready.
func hydraReady(ctx context.Context, hc *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hydraPublic+"/health/ready", nil)
	if err != nil {
		return false
	}
	res, err := hc.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// policyChanges is an admin changing the UK profile on each replica in turn.
func (l *loadRun) policyChanges(ctx context.Context, deadline time.Time) {
	tick := time.NewTicker(l.cfg.PolicyEvery)
	defer tick.Stop()
	for n := 0; time.Now().Before(deadline); n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		age := []string{"24h", "23h"}[n%2]
		o := Obs{Op: opPolicy, Replica: n % len(replicas)}
		body := fmt.Sprintf(`{"settings":{"ssa_max_age":%q}}`, age)
		l.send(ctx, l.admin, &o, http.MethodPut, adminURL(o.Replica)+"/admin/policies/uk", "application/json", adminToken, []byte(body))
	}
}
