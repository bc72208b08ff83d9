package sandbox

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/obdcr/obdcr/hydra"
)

// EdgeBenchConfig says what an edge measurement drives: an obdcr with its FAPI
// edge on in front of a Hydra whose issuer is the edge.
type EdgeBenchConfig struct {
	ObdcrURL    string // TPP listener: registration, PAR, token
	AdminURL    string // obdcr's admin listener: its metrics
	HydraAdmin  string
	HydraPublic string // Hydra's token endpoint is called here directly, for comparison
	// Flows whole PAR → authorize → callback → token flows are timed for
	// obdcr's CPU, one after another: a CPU figure does not need them at once,
	// and Hydra's in-memory SQLite refuses concurrent logins now and then
	// ("Unable to serialize access"), which is Hydra's, not the edge's.
	Flows int
	// Concurrency is the closed-loop token run's.
	Concurrency int
	// Count closed-loop token requests to Hydra alone measure its capacity;
	// OpenLoopSeconds then compares the edge's token endpoint with Hydra's at half of it.
	Count           int
	OpenLoopSeconds float64
}

// edgeOpenLoopRounds is how many turns each side of the token comparison
// takes. A token request takes a few milliseconds, so a stall of the shared
// machine (a GC, another process) of a second is the whole p99 of the round it
// falls in: short rounds spread such stalls over both sides alike.
const edgeOpenLoopRounds = 20

// tokenConns is each token client's connection pool: it holds all of its
// connections idle between bursts, and opens no more. A TPP's HTTP client
// bounds its connections to a host (Java's clients a few, OkHttp's dispatcher
// five requests at once); an unbounded one, in a stall, opens a connection for
// every request waiting, and on the edge side each is a mutual-TLS handshake
// on the CPU the stall is short of (1,056 in one run): a spiral no TPP makes.
const tokenConns = 32

// EdgeBenchResult is what the edge costs.
type EdgeBenchResult struct {
	Flows      int     `json:"flows"`
	FlowErrors int     `json:"flow_errors"`
	FlowCPUms  float64 `json:"edge_flow_cpu_ms"`
	// FlowHydraCPUms is Hydra's CPU per flow, for scale.
	FlowHydraCPUms float64 `json:"hydra_cpu_ms_per_flow"`
	FlowsPerSecond float64 `json:"flows_per_s"`
	// HandshakesPerFlow is the edge listener's TLS handshakes a flow: one, the
	// browser's, when its visits share a connection as a browser's do.
	HandshakesPerFlow float64 `json:"edge_tls_handshakes_per_flow"`
	HydraCapacity     float64 `json:"hydra_token_per_s"` // successful answers a second, closed loop
	HalfCapacity      float64 `json:"half_capacity_per_s"`
	Edge              Latency `json:"token_through_edge"`
	// OpenLoopHandshakes are the TPP listener's TLS handshakes in the open
	// loop: connections the edge side's bursts opened past the warm pool.
	OpenLoopHandshakes int     `json:"open_loop_tls_handshakes"`
	Hydra              Latency `json:"token_hydra_alone"`
	TokenP99Ratio      float64 `json:"edge_token_p99_ratio"`
	// FirstError is the first failure of a flow or of the capacity run; each
	// open-loop side's is in its Latency.
	FirstError string `json:"first_error,omitempty"`
}

// noteFirst wraps f so that the first error any call returns is kept in *first.
func noteFirst(mu *sync.Mutex, first *string, f func(int) error) func(int) error {
	return func(i int) error {
		err := f(i)
		if err != nil {
			mu.Lock()
			if *first == "" {
				*first = err.Error()
			}
			mu.Unlock()
		}
		return err
	}
}

// RunEdgeBench registers an AU data recipient through obdcr, runs cfg.Flows
// whole flows (PAR, the browser through the edge and the sandbox's login and
// consent, the JARM answer verified, the code redeemed) between two readings of
// obdcr's process CPU, then compares client_credentials at the edge's token
// endpoint with the same grant at Hydra's own, for a Hydra client of the same
// key, at half of Hydra's capacity, in alternating rounds as RunLoad does.
func RunEdgeBench(ctx context.Context, sb *Sandbox, cfg EdgeBenchConfig, progress io.Writer) (*EdgeBenchResult, error) {
	t, c, clientID, doc, err := edgeClient(ctx, sb, cfg.ObdcrURL)
	if err != nil {
		return nil, err
	}
	// The TPP's HTTP client keeps its connections and resumes its TLS sessions
	// (tickets), as TPPs' HTTP clients do; each flow's browser is new and still
	// pays a whole handshake (follow never resumes). Both token clients keep
	// their whole pool idle between bursts: with fewer idle, each burst would
	// cost the edge side new mutual-TLS handshakes and Hydra's side only TCP
	// connects.
	tr := c.HTTP.Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = tokenConns, tokenConns
	tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(tokenConns)
	res := &EdgeBenchResult{Flows: cfg.Flows}
	var mu sync.Mutex
	// The TPP keeps the issuer's JWKS between flows, as its library would.
	keys, err := c.cachedKeys(ctx, doc.JWKSURI)
	if err != nil {
		return nil, err
	}
	flow := noteFirst(&mu, &res.FirstError, func(int) error { return c.edgeFlow(ctx, doc, keys, clientID, sb) })
	for range 3 { // warm-up: the client's key, connections, Hydra's first sessions
		if err := flow(0); err != nil {
			return nil, fmt.Errorf("a flow through the edge: %w", err)
		}
	}
	clock := cpuClock{obdcr: strings.TrimRight(cfg.AdminURL, "/") + "/metrics", hydra: strings.TrimRight(cfg.HydraAdmin, "/") + "/admin/metrics/prometheus"}
	fmt.Fprintf(progress, "edge: %d flows (PAR, authorize, login and consent, callback, JARM, token), one at a time...\n", cfg.Flows)
	// obdcr's TLS handshake counters say how many connections each phase opened.
	counter := func(name string) float64 {
		n, _ := MetricSum(clock.obdcr, name, nil)
		return n
	}
	const edgeHandshakes, tppHandshakes = "obdcr_edge_tls_handshakes_total", "obdcr_tpp_tls_handshakes_total"
	shaken := counter(edgeHandshakes)
	p, err := clock.timed(cfg.Flows, 1, flow)
	if err != nil {
		return nil, err
	}
	res.HandshakesPerFlow = (counter(edgeHandshakes) - shaken) / float64(cfg.Flows)
	res.FlowErrors, res.FlowCPUms, res.FlowHydraCPUms, res.FlowsPerSecond = p.Errors, p.CPU.Obdcr, p.CPU.Hydra, p.PerSecond

	// Hydra alone: a client of its own with the TPP's key, private_key_jwt, asked
	// directly. Its assertion's aud is Hydra's token URL, which is the issuer's.
	h, err := hydra.NewAdmin(cfg.HydraAdmin, nil)
	if err != nil {
		return nil, err
	}
	set, err := t.JWKS()
	if err != nil {
		return nil, err
	}
	tppKeys, _ := json.Marshal(set)
	alone, err := h.Create(ctx, hydra.Client{ID: uuid.NewString(), GrantTypes: []string{"client_credentials"}, Scope: "cdr:registration",
		TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthSigningAlg: t.Signing.Alg.String(), JWKS: tppKeys})
	if err != nil {
		return nil, fmt.Errorf("a Hydra client for comparison: %w", err)
	}
	defer func() { _ = h.Delete(context.WithoutCancel(ctx), alone.ID) }()
	hydraToken := strings.TrimRight(cfg.HydraPublic, "/") + "/oauth2/token"
	direct := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: tokenConns, MaxConnsPerHost: tokenConns}}
	// Each side's requests are signed before the clock starts, as RunLoad's are.
	forms := func(n int, id, aud string) ([]url.Values, error) {
		out := make([]url.Values, n)
		for i := range out {
			f, err := c.clientCredentials(id, aud)
			if err != nil {
				return nil, err
			}
			out[i] = f
		}
		return out, nil
	}
	call := func(hc *http.Client, to string, fs []url.Values) func(i int) error {
		return func(i int) error { return postToken(ctx, hc, to, fs[i]) }
	}
	capForms, err := forms(cfg.Count, alone.ID, doc.Issuer+"/oauth2/token")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "edge: %d client_credentials at Hydra's token endpoint alone, concurrency %d, for its capacity...\n", cfg.Count, cfg.Concurrency)
	capacity := run(cfg.Count, cfg.Concurrency, noteFirst(&mu, &res.FirstError, call(direct, hydraToken, capForms)))
	if capacity.Errors > cfg.Count/10 {
		return nil, fmt.Errorf("%d of %d token requests to Hydra alone failed: %s", capacity.Errors, cfg.Count, res.FirstError)
	}
	res.HydraCapacity, res.HalfCapacity = capacity.PerSecond, capacity.PerSecond/2
	n := max(1, int(res.HalfCapacity*cfg.OpenLoopSeconds))
	edgeForms, err := forms(n, clientID, doc.Token)
	if err != nil {
		return nil, err
	}
	hydraForms, err := forms(n, alone.ID, doc.Issuer+"/oauth2/token")
	if err != nil {
		return nil, err
	}
	// The edge's side opens its connections now, as the capacity run opened
	// Hydra's: each side starts the open loop with a warm pool, so that
	// neither pays first mutual-TLS handshakes inside the measured rounds.
	warm := 8 * tokenConns
	warmForms, err := forms(warm, clientID, doc.Token)
	if err != nil {
		return nil, err
	}
	// At 32 at once Hydra's in-memory SQLite refuses many ("Unable to
	// serialize access"); a refused request has still opened its connection.
	var warmErr string
	if p := run(warm, tokenConns, noteFirst(&mu, &warmErr, call(c.HTTP, doc.Token, warmForms))); p.Errors == warm {
		return nil, fmt.Errorf("every token request through the edge failed: %s", warmErr)
	}
	fmt.Fprintf(progress, "edge: open loop at %.0f/s (half of Hydra's capacity), %d token requests each through the edge and to Hydra alone, in %d alternating rounds...\n",
		res.HalfCapacity, n, edgeOpenLoopRounds)
	shaken = counter(tppHandshakes)
	res.Edge, res.Hydra = alternate(res.HalfCapacity, n, edgeOpenLoopRounds, call(c.HTTP, doc.Token, edgeForms), call(direct, hydraToken, hydraForms))
	res.OpenLoopHandshakes = int(counter(tppHandshakes) - shaken)
	if res.Hydra.P99ms > 0 {
		res.TokenP99Ratio = res.Edge.P99ms / res.Hydra.P99ms
	}
	return res, nil
}

// edgeClient registers a new AU data recipient through obdcr and reads the
// bank's discovery document.
func edgeClient(ctx context.Context, sb *Sandbox, obdcrURL string) (*TPP, *Client, string, discoveryDoc, error) {
	var doc discoveryDoc
	t, err := sb.AddTPP(AU, "edge-bench-"+uuid.NewString()[:8])
	if err != nil {
		return nil, nil, "", doc, err
	}
	c, err := NewClient(t, sb.PKI().Pool())
	if err != nil {
		return nil, nil, "", doc, err
	}
	res, err := c.Discovery(ctx, obdcrURL)
	if err != nil || res.Status != http.StatusOK || json.Unmarshal(res.Body, &doc) != nil || doc.PAR == "" {
		return nil, nil, "", doc, fmt.Errorf("discovery without a PAR endpoint (is the edge on?): %v %+v", err, res)
	}
	if len(doc.JARMAlgs) > 0 { // as a TPP does: the JARM alg the bank publishes
		t.JARMAlg = doc.JARMAlgs[0]
	}
	now := time.Now()
	ssa, err := sb.Authority(AU).SSA(t, now, nil)
	if err != nil {
		return nil, nil, "", doc, err
	}
	req, err := t.Request(ssa, doc.Issuer, now, nil)
	if err != nil {
		return nil, nil, "", doc, err
	}
	res, err = c.Register(ctx, obdcrURL, req)
	if err := expectCreated(res, err); err != nil {
		return nil, nil, "", doc, fmt.Errorf("registering through obdcr: %w", err)
	}
	id, _ := res.JSON()["client_id"].(string)
	return t, c, id, doc, nil
}

// edgeFlow is one whole AU flow through the edge: PAR, the browser, the JARM
// answer verified with the published keys, the code redeemed.
func (c *Client) edgeFlow(ctx context.Context, doc discoveryDoc, keys publishedKeys, clientID string, sb *Sandbox) error {
	r := AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: clientID, RedirectURI: c.TPP.RedirectURIs[0],
		ResponseType: "code", Scope: "openid bank:accounts.basic:read", PARURL: doc.PAR, ResponseMode: "jwt"}
	a, err := c.Authorize(ctx, r, sb.PKI().Pool())
	if err != nil {
		return err
	}
	if a.Response == "" {
		return fmt.Errorf("no JARM response: %v (PAR %+v)", a.Params, a.Pushed)
	}
	if err := c.openResponse(ctx, doc, keys, clientID, a, func(string, ...any) {}); err != nil {
		return err
	}
	if a.Error != "" || a.State != a.SentState {
		return fmt.Errorf("authorization: %s %s", a.Error, a.ErrorDescription)
	}
	_, err = c.ExchangeCode(ctx, doc.Token, clientID, r.RedirectURI, a)
	return err
}

// clientCredentials is a client_credentials request authenticated by a client
// assertion with the given aud.
func (c *Client) clientCredentials(clientID, aud string) (url.Values, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"cdr:registration"}}
	return form, c.authenticate(form, clientID, aud)
}

func postToken(ctx context.Context, hc *http.Client, to string, form url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("token endpoint %s answered %d: %s", to, res.StatusCode, body)
	}
	return nil
}
