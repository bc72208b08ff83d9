package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/time/rate"
)

// TrustStore answers which published key may have signed a JWS. Keys come only
// from JWKS URLs that obdcr is configured with (directories) or that a verified
// SSA names (TPPs), never from the token itself.
type TrustStore interface {
	// Key returns the key named kid in the JWKS at jwksURL.
	Key(ctx context.Context, jwksURL, kid string) (*PublicKey, error)
	// Set returns the whole JWKS at jwksURL, for checks such as the TPP's transport certificate.
	Set(ctx context.Context, jwksURL string) (*KeySet, error)
}

// ErrUnknownKey means the JWKS was fetched but has no key with the kid, even after
// the rate-limited refetch that a key rotation would need.
var ErrUnknownKey = errors.New("no key with this kid")

// FetchError means the JWKS could not be had: the host is down, refused by the
// fetch policy, or answered something that is not a JWKS.
type FetchError struct {
	URL string
	Err error
}

func (e *FetchError) Error() string {
	// jwx wraps the cause in several "failed to ..." layers; the TPP needs the cause.
	msg := e.Err.Error()
	if i := strings.LastIndex(msg, "failed to "); i >= 0 {
		if j := strings.Index(msg[i:], ": "); j >= 0 {
			msg = msg[i+j+2:]
		}
	}
	return fmt.Sprintf("JWKS %s could not be fetched: %s", e.URL, msg)
}

func (e *FetchError) Unwrap() error { return e.Err }

// JWKSCacheOptions tunes a JWKSCache.
type JWKSCacheOptions struct {
	Fetch           FetchPolicy
	RefreshInterval time.Duration // background refresh of every known JWKS
	// RefetchEvery is the least time between two refetches of one JWKS for an unknown
	// kid: a rotated key is picked up quickly, while a flood of made-up kids cannot
	// turn obdcr into a traffic source.
	RefetchEvery time.Duration
	// RefetchBudget caps refetches per second across all JWKS URLs together.
	RefetchBudget float64
	MaxKeys       int                         // a JWKS with more keys is refused
	OnFetch       func(url string, err error) // every network fetch, for metrics
	OnLookup      func(url string, hit bool)  // every key lookup: answered from the cache, or not
	// IdleAfter drops a JWKS that no lookup has asked for in that long, so that the
	// background refresh follows the software that is active rather than every TPP
	// ever seen; its next lookup fetches it again. Zero keeps every JWKS for good.
	IdleAfter time.Duration
	// Keep lists JWKS URLs never dropped, however idle: the directories', whose
	// last good copy is what carries registrations through a directory outage.
	Keep []string
	Now  func() time.Time // the clock idleness is measured by; time.Now if nil
}

// JWKSCache is the TrustStore in production. It fetches each JWKS once, parses
// it with jwx and keeps only its compact form (KeySet). A software JWKS is
// refreshed when a lookup finds it older than RefreshInterval, the directories'
// in the background; a refresh that fails keeps the last good copy, and one
// that brings the same document back is not parsed again.
type JWKSCache struct {
	opts   JWKSCacheOptions
	client *http.Client
	global *rate.Limiter

	// mu guards known and every entry's fields but fetchMu: every URL a lookup
	// has used, when it was last used and how many lookups are using it now. A
	// URL with a lookup in flight is never dropped, so no lookup sees its JWKS vanish.
	mu    sync.Mutex
	known map[string]*jwksEntry
	// held counts the known URLs with a good copy, so that Len (read at every
	// metrics scrape) costs the same with 10,000 JWKS as with 10.
	held atomic.Int64
}

// jwksEntry is one JWKS URL: a few words besides its keys, for 10,000 TPPs.
type jwksEntry struct {
	// fetchMu makes one fetch of a URL at a time; lookups that waited for it
	// take its result (gen moved on) rather than fetching again.
	fetchMu sync.Mutex
	gen     uint32 // fetches done
	keys    *KeySet
	sum     [sha256.Size]byte // of the document keys came from
	err     error             // the last fetch's, while there is no good copy
	// fetched is the last good fetch, by opts.Now; refetchAt the earliest
	// refetch for an unknown kid or a stale copy, by the real clock, as the
	// global budget is.
	fetched, refetchAt, lastUsed time.Time
	inFlight                     int
}

// NewJWKSCache starts a cache whose background work ends with ctx.
func NewJWKSCache(ctx context.Context, o JWKSCacheOptions) *JWKSCache {
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = 15 * time.Minute
	}
	if o.RefetchEvery <= 0 {
		o.RefetchEvery = 10 * time.Second
	}
	if o.RefetchBudget <= 0 {
		o.RefetchBudget = 5
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 100
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &JWKSCache{
		opts:   o,
		client: o.Fetch.Client(),
		global: rate.NewLimiter(rate.Limit(o.RefetchBudget), int(o.RefetchBudget)+1),
		known:  map[string]*jwksEntry{},
	}
	if len(o.Keep) > 0 {
		go Every(ctx, o.RefreshInterval, c.refreshKept)
	}
	if o.IdleAfter > 0 {
		go Every(ctx, min(o.IdleAfter/4, time.Hour), func(context.Context) { c.DropIdle() })
	}
	return c
}

// refreshKept refetches the directories' JWKS that lookups have used.
func (c *JWKSCache) refreshKept(ctx context.Context) {
	for _, u := range c.opts.Keep {
		c.mu.Lock()
		e := c.known[u]
		c.mu.Unlock()
		if e != nil {
			_, _ = c.fetch(ctx, u, e, c.generation(e))
		}
	}
}

// DropIdle forgets every JWKS unused for IdleAfter, except those in Keep and those
// a lookup is using, and returns their URLs. A background sweep calls it every
// quarter of IdleAfter (at most hourly); tests call it with their own clock.
func (c *JWKSCache) DropIdle() []string {
	if c.opts.IdleAfter <= 0 {
		return nil
	}
	cutoff := c.opts.Now().Add(-c.opts.IdleAfter)
	c.mu.Lock()
	defer c.mu.Unlock()
	var dropped []string
	for u, e := range c.known {
		if e.inFlight > 0 || !e.lastUsed.Before(cutoff) || slices.Contains(c.opts.Keep, u) {
			continue
		}
		if e.keys != nil {
			c.held.Add(-1)
		}
		delete(c.known, u)
		dropped = append(dropped, u)
	}
	return dropped
}

// Len is the number of JWKS the cache holds; a URL the fetch policy refused,
// or whose host never answered, was looked up but is not held.
func (c *JWKSCache) Len() int { return int(c.held.Load()) }

// acquire marks u in use until release; DropIdle leaves it alone meanwhile.
func (c *JWKSCache) acquire(u string) *jwksEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.known[u]
	if e == nil {
		e = &jwksEntry{}
		c.known[u] = e
	}
	e.lastUsed = c.opts.Now()
	e.inFlight++
	return e
}

// refused says why the fetch policy refuses u. Such a URL is never fetched, so
// it is neither held nor spends a refetch slot or the budget that a key
// rotation elsewhere would need.
func (c *JWKSCache) refused(u string) error {
	if _, err := c.opts.Fetch.CheckURL(u); err != nil {
		return &FetchError{URL: u, Err: err}
	}
	return nil
}

func (c *JWKSCache) release(e *jwksEntry) {
	c.mu.Lock()
	e.inFlight--
	c.mu.Unlock()
}

func (c *JWKSCache) generation(e *jwksEntry) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return e.gen
}

// Set implements TrustStore.
func (c *JWKSCache) Set(ctx context.Context, u string) (*KeySet, error) {
	if err := c.refused(u); err != nil {
		return nil, err
	}
	e := c.acquire(u)
	defer c.release(e)
	return c.load(ctx, u, e)
}

// load returns u's keys: the copy held, refreshed first if it is a software
// JWKS gone stale, or the first copy.
func (c *JWKSCache) load(ctx context.Context, u string, e *jwksEntry) (*KeySet, error) {
	c.mu.Lock()
	keys, gen, tried, lastErr := e.keys, e.gen, e.gen > 0, e.err
	stale := keys != nil && c.opts.Now().Sub(e.fetched) > c.opts.RefreshInterval && !slices.Contains(c.opts.Keep, u)
	c.mu.Unlock()
	switch {
	case keys != nil && stale && c.mayRefetch(e):
		// Refreshed on use, as often as an unknown kid may refetch; if the host
		// is down, the last good copy serves.
		keys, _ = c.fetch(ctx, u, e, gen)
	case keys != nil:
	case tried && !c.mayRefetch(e):
		// A host that failed is tried again as often as an unknown kid may
		// refetch, so that one that is back works at once.
		return nil, &FetchError{URL: u, Err: lastErr}
	default:
		var err error
		if keys, err = c.fetch(ctx, u, e, gen); keys == nil {
			return nil, &FetchError{URL: u, Err: err}
		}
	}
	return keys, nil
}

// fetch fetches u unless a fetch has completed since the caller saw gen, and
// returns the keys held after it (the last good copy when it failed) and its error.
func (c *JWKSCache) fetch(ctx context.Context, u string, e *jwksEntry, gen uint32) (*KeySet, error) {
	e.fetchMu.Lock()
	defer e.fetchMu.Unlock()
	c.mu.Lock()
	keys, sum, now, lastErr := e.keys, e.sum, e.gen, e.err
	c.mu.Unlock()
	if now != gen {
		return keys, lastErr
	}
	fresh, newSum, err := c.get(ctx, u, keys != nil, sum)
	c.mu.Lock()
	defer c.mu.Unlock()
	e.gen++
	switch {
	case err != nil:
		e.err = err
	case fresh == nil: // the same document: the keys held stay
		e.fetched, e.err = c.opts.Now(), nil
	default:
		if e.keys == nil {
			c.held.Add(1)
		}
		e.keys, e.sum, e.fetched, e.err = fresh, newSum, c.opts.Now(), nil
	}
	return e.keys, err
}

// get fetches u under the fetch policy and parses it, unless it is the
// document already held (have, with sum): then it returns no keys and no error.
// The fetch outlives the lookup that asked for it (other lookups may be
// waiting for it); the policy's timeout bounds it.
func (c *JWKSCache) get(ctx context.Context, u string, have bool, sum [sha256.Size]byte) (*KeySet, [sha256.Size]byte, error) {
	if _, err := c.opts.Fetch.CheckURL(u); err != nil {
		return nil, sum, err // never fetched, so not counted as a fetch
	}
	body, status, err := c.opts.Fetch.Get(context.WithoutCancel(ctx), c.client, u, nil)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("HTTP %d", status)
	}
	var keys *KeySet
	if err == nil {
		if newSum := sha256.Sum256(body); !have || newSum != sum {
			sum = newSum
			keys, err = ParseKeySet(body, c.opts.MaxKeys)
		}
	}
	if c.opts.OnFetch != nil {
		c.opts.OnFetch(u, err)
	}
	return keys, sum, err
}

// Key implements TrustStore. The key returned is shared: callers must not change it.
func (c *JWKSCache) Key(ctx context.Context, u, kid string) (_ *PublicKey, err error) {
	ctx, span := startSpan(ctx, "jwks.key", attribute.String("url.full", truncate(u, 256)))
	defer func() { endSpan(span, err) }()
	if err := c.refused(u); err != nil {
		return nil, err
	}
	e := c.acquire(u)
	defer c.release(e)
	set, err := c.load(ctx, u, e)
	if err != nil {
		return nil, err
	}
	if k, ok := set.Lookup(kid); ok {
		c.lookedUp(u, true)
		return k, nil
	}
	c.lookedUp(u, false)
	if !c.mayRefetch(e) {
		return nil, ErrUnknownKey
	}
	// The last good copy stays if this fails; only this lookup fails.
	if set, err = c.fetch(ctx, u, e, c.generation(e)); err == nil {
		if k, ok := set.Lookup(kid); ok {
			return k, nil
		}
	}
	return nil, ErrUnknownKey
}

func (c *JWKSCache) lookedUp(u string, hit bool) {
	if c.opts.OnLookup != nil {
		c.opts.OnLookup(u, hit)
	}
}

// mayRefetch: u's own limiter (one refetch per RefetchEvery) and then the
// global budget allow a refetch now.
func (c *JWKSCache) mayRefetch(e *jwksEntry) bool {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Before(e.refetchAt) || !c.global.Allow() {
		return false
	}
	e.refetchAt = now.Add(c.opts.RefetchEvery)
	return true
}
