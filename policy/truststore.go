package policy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/time/rate"
)

// TrustStore answers which published key may have signed a JWS. Keys come only
// from JWKS URLs that obdcr is configured with (directories) or that a verified
// SSA names (TPPs), never from the token itself.
type TrustStore interface {
	// Key returns the key named kid in the JWKS at jwksURL.
	Key(ctx context.Context, jwksURL, kid string) (jwk.Key, error)
	// Set returns the whole JWKS at jwksURL, for checks such as the TPP's transport certificate.
	Set(ctx context.Context, jwksURL string) (jwk.Set, error)
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

// JWKSCache is the TrustStore in production: jwx's cache fetches each JWKS once,
// refreshes it in the background and keeps the last good copy when a refresh fails.
type JWKSCache struct {
	cache  *jwk.Cache
	opts   JWKSCacheOptions
	client jwk.HTTPClient
	global *rate.Limiter

	// mu guards known: every URL a lookup has used, with its refetch limiter,
	// when it was last used and how many lookups are using it now. A URL with a
	// lookup in flight is never dropped, so no lookup sees its JWKS vanish.
	mu    sync.Mutex
	known map[string]*jwksUse
	// held counts the known URLs registered with jwx's cache, so that Len (read
	// at every metrics scrape) costs the same with 10,000 JWKS as with 10.
	held atomic.Int64

	softwareOpts, directoryOpts []jwk.RegisterOption
}

type jwksUse struct {
	refetch  *rate.Limiter
	lastUsed time.Time
	fetched  time.Time // the last good fetch
	inFlight int
	held     atomic.Bool // registered with jwx's cache
}

// onDemand is the background refresh interval of a software JWKS: in effect
// none. A software JWKS is refreshed when a lookup finds it older than
// RefreshInterval, so fetches follow registrations, not the number of TPPs held:
// 10,000 JWKS refreshed every 15 minutes would be 11 fetches a second.
const onDemand = 30 * 24 * time.Hour

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
		cache:  jwk.NewCache(ctx),
		opts:   o,
		global: rate.NewLimiter(rate.Limit(o.RefetchBudget), int(o.RefetchBudget)+1),
		known:  map[string]*jwksUse{},
	}
	c.client = observedClient{c: o.Fetch.Client(), on: func(u string, err error) {
		if err == nil {
			c.markFetched(u)
		}
		if o.OnFetch != nil {
			o.OnFetch(u, err)
		}
	}}
	// Built once and shared by every URL: jwx keeps a URL's options for as long
	// as it holds the URL, and 10,000 software JWKS each with their own would be
	// 30,000 more objects for the garbage collector to visit.
	check := jwk.WithPostFetcher(jwk.PostFetchFunc(func(_ string, set jwk.Set) (jwk.Set, error) {
		if set.Len() > o.MaxKeys {
			return nil, fmt.Errorf("has %d keys, more than the %d allowed", set.Len(), o.MaxKeys)
		}
		compact(set)
		return set, nil
	}))
	client := jwk.WithHTTPClient(c.client)
	c.softwareOpts = []jwk.RegisterOption{client, jwk.WithRefreshInterval(onDemand), check}
	c.directoryOpts = []jwk.RegisterOption{client, jwk.WithRefreshInterval(o.RefreshInterval), check}
	if o.IdleAfter > 0 {
		go Every(ctx, min(o.IdleAfter/4, time.Hour), func(context.Context) { c.DropIdle() })
	}
	return c
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
	for u, use := range c.known {
		if use.inFlight > 0 || !use.lastUsed.Before(cutoff) || slices.Contains(c.opts.Keep, u) {
			continue
		}
		// Under mu, so a lookup that starts now registers the URL afresh. jwx skips
		// the refresh already scheduled for it, unless the URL is back by then: it
		// is then refreshed twice as often until it next goes idle.
		_ = c.cache.Unregister(u)
		if use.held.Load() {
			c.held.Add(-1)
		}
		delete(c.known, u)
		dropped = append(dropped, u)
	}
	return dropped
}

// Len is the number of JWKS the cache holds and refreshes; a URL the fetch
// policy refused was looked up but is not held.
func (c *JWKSCache) Len() int { return int(c.held.Load()) }

// acquire marks u in use until release; DropIdle leaves it alone meanwhile.
func (c *JWKSCache) acquire(u string) *jwksUse {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.known[u]
	if e == nil {
		e = &jwksUse{refetch: rate.NewLimiter(rate.Every(c.opts.RefetchEvery), 1)}
		c.known[u] = e
	}
	e.lastUsed = c.opts.Now()
	e.inFlight++
	return e
}

func (c *JWKSCache) markFetched(u string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.known[u]; e != nil {
		e.fetched = c.opts.Now()
	}
}

// stale: a software JWKS last fetched longer than RefreshInterval ago.
func (c *JWKSCache) stale(u string, e *jwksUse) bool {
	if slices.Contains(c.opts.Keep, u) {
		return false // the directories' are refreshed in the background
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !e.fetched.IsZero() && c.opts.Now().Sub(e.fetched) > c.opts.RefreshInterval
}

func (c *JWKSCache) release(e *jwksUse) {
	c.mu.Lock()
	e.inFlight--
	c.mu.Unlock()
}

type observedClient struct {
	c  *http.Client
	on func(string, error)
}

func (o observedClient) Get(u string) (*http.Response, error) {
	res, err := o.c.Get(u)
	if err == nil && res.StatusCode != http.StatusOK {
		res.Body.Close()
		res, err = nil, fmt.Errorf("HTTP %d", res.StatusCode)
	}
	if o.on != nil {
		o.on(u, err)
	}
	return res, err
}

// register registers u with jwx's cache, once. A lookup holds e (acquired), so
// DropIdle cannot remove the URL between the registration and its count.
func (c *JWKSCache) register(u string, e *jwksUse) error {
	if c.cache.IsRegistered(u) {
		c.countHeld(e)
		return nil
	}
	if _, err := c.opts.Fetch.CheckURL(u); err != nil {
		return err
	}
	opts := c.softwareOpts
	if slices.Contains(c.opts.Keep, u) {
		opts = c.directoryOpts
	}
	err := c.cache.Register(u, opts...)
	if err != nil && !c.cache.IsRegistered(u) {
		return err
	}
	c.countHeld(e) // registered here, or concurrently by another lookup
	return nil
}

func (c *JWKSCache) countHeld(e *jwksUse) {
	if e.held.CompareAndSwap(false, true) {
		c.held.Add(1)
	}
}

// compact keeps of each key's certificate chain only what obdcr checks: the
// SHA-256 thumbprint of its first certificate (x5t#S256), which matches a
// transport certificate exactly when the DER does. A chain is a kilobyte or more
// a key, held for every TPP's JWKS; the thumbprint is 43 bytes.
func compact(set jwk.Set) {
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		chain := k.X509CertChain()
		if chain == nil || chain.Len() == 0 {
			continue
		}
		if k.X509CertThumbprintS256() == "" {
			first, ok := chain.Get(0)
			der, err := base64.StdEncoding.DecodeString(string(first))
			if !ok || err != nil {
				continue // left whole: the chain check refuses it as it is
			}
			sum := sha256.Sum256(der)
			if k.Set(jwk.X509CertThumbprintS256Key, base64.RawURLEncoding.EncodeToString(sum[:])) != nil {
				continue
			}
		}
		_ = k.Remove(jwk.X509CertChainKey)
	}
}

// Set implements TrustStore.
func (c *JWKSCache) Set(ctx context.Context, u string) (jwk.Set, error) {
	e := c.acquire(u)
	defer c.release(e)
	return c.set(ctx, u, e)
}

func (c *JWKSCache) set(ctx context.Context, u string, e *jwksUse) (jwk.Set, error) {
	if err := c.register(u, e); err != nil {
		return nil, &FetchError{URL: u, Err: err}
	}
	set, err := c.cache.Get(ctx, u)
	if err != nil && c.mayRefetch(e) {
		// jwx marks a URL fetched even when its first fetch failed, and would
		// wait for the next refresh; a host that is back should work at once.
		set, err = c.cache.Refresh(ctx, u)
	}
	if err != nil {
		return nil, &FetchError{URL: u, Err: err}
	}
	if c.stale(u, e) && c.mayRefetch(e) {
		// Refreshed on use, as often as an unknown kid may refetch; if the host
		// is down, the last good copy serves.
		if fresh, err := c.cache.Refresh(ctx, u); err == nil {
			set = fresh
		}
	}
	return set, nil
}

// Key implements TrustStore.
func (c *JWKSCache) Key(ctx context.Context, u, kid string) (_ jwk.Key, err error) {
	ctx, span := startSpan(ctx, "jwks.key", attribute.String("url.full", truncate(u, 256)))
	defer func() { endSpan(span, err) }()
	e := c.acquire(u)
	defer c.release(e)
	set, err := c.set(ctx, u, e)
	if err != nil {
		return nil, err
	}
	if k, ok := set.LookupKeyID(kid); ok {
		c.lookedUp(u, true)
		return k, nil
	}
	c.lookedUp(u, false)
	if !c.mayRefetch(e) {
		return nil, ErrUnknownKey
	}
	set, err = c.cache.Refresh(ctx, u)
	if err != nil {
		// The last good copy stays in the cache; only this lookup fails.
		return nil, ErrUnknownKey
	}
	if k, ok := set.LookupKeyID(kid); ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

func (c *JWKSCache) lookedUp(u string, hit bool) {
	if c.opts.OnLookup != nil {
		c.opts.OnLookup(u, hit)
	}
}

func (c *JWKSCache) mayRefetch(e *jwksUse) bool {
	return e.refetch.Allow() && c.global.Allow()
}
