package hydra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DiscoveryRefresh is how often Hydra's discovery document is read again.
const DiscoveryRefresh = 30 * time.Second

// maxDiscovery bounds the document read from Hydra.
const maxDiscovery = 256 << 10

// Document is an OpenID Provider's discovery document, member by member, so that
// members obdcr does not know pass through unchanged.
type Document map[string]json.RawMessage

// Strings reads a member that is a list of strings; nil when absent or not one.
func (d Document) Strings(name string) []string {
	var out []string
	if json.Unmarshal(d[name], &out) != nil {
		return nil
	}
	return out
}

// String reads a member that is a string.
func (d Document) String(name string) string {
	var s string
	_ = json.Unmarshal(d[name], &s)
	return s
}

// Set replaces a member.
func (d Document) Set(name string, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		d[name] = b
	}
}

// Clone copies the document; the members' bytes are shared, never changed.
func (d Document) Clone() Document {
	out := make(Document, len(d))
	for k, v := range d {
		out[k] = v
	}
	return out
}

// Discovery is Hydra's discovery document (HYDRA_PUBLIC_URL), read on first use
// and every DiscoveryRefresh after. The last good copy stays while Hydra is
// unreachable; until one has been read, there is none, and callers say so.
type Discovery struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	doc     Document
	fetched time.Time
	date    time.Time // Hydra's clock at the last read (its Date header)
	err     error
	// gen counts the documents read; what callers derive from one can be kept
	// until it changes.
	gen uint64
	// reading is closed when the read in flight ends; nil when none is.
	reading chan struct{}
}

// NewDiscovery reads from publicURL + /.well-known/openid-configuration.
func NewDiscovery(publicURL string, client *http.Client) *Discovery {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &Discovery{url: strings.TrimRight(publicURL, "/") + "/.well-known/openid-configuration", client: client}
}

// ErrNoDiscovery: Hydra's discovery document has never been read.
var ErrNoDiscovery = errors.New("hydra: its discovery document has not been read yet")

// Document returns the last good document. A stale one is refreshed in the
// background, so that a slow Hydra never holds up a caller that has a copy;
// without any copy, callers share the read in flight, or start one, and wait
// for it (or for their ctx): a slow or failing Hydra sees one read at a time
// however many callers there are, and a Hydra back up is seen at the next read.
// Only a failure with no earlier copy is an error.
func (d *Discovery) Document(ctx context.Context) (Document, error) {
	doc, _, err := d.Snapshot(ctx)
	return doc, err
}

// Snapshot is Document with the generation of the read that gave it: the
// generation changes exactly when a read gives a new document, so a caller may
// keep what it builds from one until then.
func (d *Discovery) Snapshot(ctx context.Context) (Document, uint64, error) {
	d.mu.Lock()
	if d.doc != nil {
		if time.Since(d.fetched) > DiscoveryRefresh {
			d.startRead(ctx)
		}
		doc, gen := d.doc, d.gen
		d.mu.Unlock()
		return doc, gen, nil
	}
	done := d.startRead(ctx)
	d.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("%w: %w", ErrNoDiscovery, ctx.Err())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.doc == nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrNoDiscovery, d.err)
	}
	return d.doc, d.gen, nil
}

// startRead starts a read unless one is in flight, and returns the channel
// closed when it ends. The read outlives the caller's ctx (others may be
// waiting for it), bounded by the client's timeout. The caller holds mu.
func (d *Discovery) startRead(ctx context.Context) <-chan struct{} {
	if d.reading != nil {
		return d.reading
	}
	done := make(chan struct{})
	d.reading = done
	go func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.client.Timeout+time.Second)
		defer cancel()
		doc, date, err := d.read(rctx)
		d.mu.Lock()
		d.store(doc, date, err)
		d.reading = nil
		d.mu.Unlock()
		close(done)
	}()
	return done
}

// store keeps a read's outcome; the caller holds mu.
func (d *Discovery) store(doc Document, date time.Time, err error) {
	d.fetched, d.err = time.Now(), err
	if err == nil {
		d.doc, d.date = doc, date
		d.gen++
	}
}

// Refresh reads the document now, whatever its age, and waits for it.
func (d *Discovery) Refresh(ctx context.Context) (Document, error) {
	doc, date, err := d.read(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.store(doc, date, err)
	if err != nil {
		return nil, err
	}
	return doc, nil
}

// IDTokenAlg is the algorithm Hydra signs ID tokens with: the one its discovery
// document states, which it takes from its newest hydra.openid.id-token key.
func (d *Discovery) IDTokenAlg(ctx context.Context) (string, error) {
	doc, err := d.Document(ctx)
	if err != nil {
		return "", err
	}
	if algs := doc.Strings("id_token_signing_alg_values_supported"); len(algs) > 0 {
		return algs[0], nil
	}
	return "", errors.New("hydra: its discovery document states no id_token_signing_alg_values_supported")
}

// ClockOffset is Hydra's clock minus this one's, as of the last read (to the second).
func (d *Discovery) ClockOffset() (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.date.IsZero() {
		return 0, false
	}
	return d.date.Sub(d.fetched.Truncate(time.Second)), true
}

func (d *Discovery) read(ctx context.Context) (Document, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := d.client.Do(req)
	if err != nil {
		return nil, time.Time{}, &UnavailableError{Err: err}
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, time.Time{}, &UnavailableError{Status: res.StatusCode, Err: fmt.Errorf("GET %s", d.url)}
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxDiscovery+1))
	if err != nil {
		return nil, time.Time{}, &UnavailableError{Err: err}
	}
	if len(body) > maxDiscovery {
		return nil, time.Time{}, fmt.Errorf("hydra: discovery document over %d bytes", maxDiscovery)
	}
	var doc Document
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		return nil, time.Time{}, fmt.Errorf("hydra: discovery document is not a JSON object")
	}
	date, _ := http.ParseTime(res.Header.Get("Date"))
	return doc, date, nil
}
