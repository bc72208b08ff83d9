package hydra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Public is Hydra's public API as the FAPI edge calls it: the token endpoint
// with obdcr's own client assertion, and Hydra's signing keys.
type Public struct {
	URL  string
	HTTP *http.Client

	mu      sync.Mutex
	keys    jwk.Set
	fetched time.Time
}

// maxPublicBody bounds what is read of Hydra's answers.
const maxPublicBody = 1 << 20

// keysTTL: Hydra's keys are read again this often, and at most this often when
// a token names a kid not seen (a key rotation).
const keysTTL = 30 * time.Second

// Token posts form to Hydra's token endpoint and returns its answer as it is.
func (p *Public) Token(ctx context.Context, form url.Values) (int, []byte, error) {
	return p.post(ctx, "/oauth2/token", form)
}

// Revoke posts form to Hydra's revocation endpoint (RFC 7009).
func (p *Public) Revoke(ctx context.Context, form url.Values) (int, []byte, error) {
	return p.post(ctx, "/oauth2/revoke", form)
}

func (p *Public) post(ctx context.Context, path string, form url.Values) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(p.URL, "/")+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := p.HTTP.Do(req)
	if err != nil {
		return 0, nil, &UnavailableError{Err: err, Timeout: isTimeout(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPublicBody))
	if err != nil {
		return 0, nil, &UnavailableError{Err: err}
	}
	return resp.StatusCode, body, nil
}

// Keys is Hydra's published JWKS, cached for keysTTL.
func (p *Public) Keys(ctx context.Context) (jwk.Set, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keys != nil && time.Since(p.fetched) < keysTTL {
		return p.keys, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(p.URL, "/")+"/.well-known/jwks.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.HTTP.Do(req)
	if err != nil {
		if p.keys != nil {
			return p.keys, nil // the last good set, until Hydra answers again
		}
		return nil, &UnavailableError{Err: err, Timeout: isTimeout(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPublicBody))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, &UnavailableError{Err: fmt.Errorf("Hydra's JWKS: HTTP %d %v", resp.StatusCode, err)}
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("Hydra's JWKS: %w", err)
	}
	p.keys, p.fetched = set, time.Now()
	return set, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
