package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
)

// TokenSide is one client asking a token endpoint for client_credentials
// tokens, authenticating as its Client does (private_key_jwt or
// tls_client_auth) over its Client's transport certificate.
type TokenSide struct {
	Client   *Client
	ClientID string
	TokenURL string // where the requests go, and the assertions' aud
	Scope    string
}

// TokenComparison is two sides' token requests at half of the second side's capacity.
type TokenComparison struct {
	Capacity     float64 `json:"token_per_s"` // the second side's, closed loop
	HalfCapacity float64 `json:"half_capacity_per_s"`
	A            Latency `json:"a"`
	B            Latency `json:"b"`
	P99Ratio     float64 `json:"p99_ratio"` // A's p99 ÷ B's
	FirstError   string  `json:"first_error,omitempty"`
}

// CompareTokens measures b's capacity with count closed-loop requests from
// concurrency workers, then runs a and b open loop at half of it for seconds
// each, in rounds turns pooled per side (as RunLoad and RunEdgeBench do), so
// that a noisy neighbour falls on both alike: the more and shorter the rounds,
// the less one stall of a shared machine lands on one side only. Every request is signed before
// the clock starts: the client's signing is not the server's latency.
func CompareTokens(ctx context.Context, a, b TokenSide, count, concurrency, rounds int, seconds float64) (*TokenComparison, error) {
	res := &TokenComparison{}
	var mu sync.Mutex
	forms := func(s TokenSide, n int) ([]url.Values, error) {
		out := make([]url.Values, n)
		for i := range out {
			out[i] = url.Values{"grant_type": {"client_credentials"}, "scope": {s.Scope}}
			if err := s.Client.authenticate(out[i], s.ClientID, s.TokenURL); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	call := func(s TokenSide, fs []url.Values) func(i int) error {
		s.Client.HTTP.Transport.(*http.Transport).MaxIdleConnsPerHost = max(concurrency, 1)
		return noteFirst(&mu, &res.FirstError, func(i int) error { return postToken(ctx, s.Client.HTTP, s.TokenURL, fs[i]) })
	}
	capForms, err := forms(b, count)
	if err != nil {
		return nil, err
	}
	capacity := run(count, concurrency, call(b, capForms))
	if capacity.Errors > count/10 {
		return nil, fmt.Errorf("%d of %d token requests failed finding the capacity: %s", capacity.Errors, count, res.FirstError)
	}
	res.Capacity, res.HalfCapacity = capacity.PerSecond, capacity.PerSecond/2
	n := max(1, int(res.HalfCapacity*seconds))
	aForms, err := forms(a, n)
	if err != nil {
		return nil, err
	}
	bForms, err := forms(b, n)
	if err != nil {
		return nil, err
	}
	res.A, res.B = alternate(res.HalfCapacity, n, rounds, call(a, aForms), call(b, bForms))
	if res.B.P99ms > 0 {
		res.P99Ratio = res.A.P99ms / res.B.P99ms
	}
	return res, nil
}
