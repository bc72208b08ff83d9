package au

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/obdcr/obdcr/policy"
)

// Remover removes the registration of a software product, tokens included. It
// reports the client removed, or "" when there was none.
type Remover func(ctx context.Context, softwareID string) (clientID string, err error)

// StatusBookConfig configures a StatusBook.
type StatusBookConfig struct {
	RegisterURL string // OBDCR_AU_REGISTER_URL
	Interval    time.Duration
	// MinGap is the least time between the starts of two polls
	// (OBDCR_AU_STATUS_MIN_GAP): lookups of products not yet known queue behind
	// the next poll instead of asking the Register once each.
	MinGap time.Duration
	// Wait bounds how long a lookup of a product not yet known waits for a fresh
	// poll (OBDCR_AU_STATUS_WAIT); past it the Register is unavailable, not the product unknown.
	Wait   time.Duration
	Fetch  policy.FetchPolicy
	Remove Remover
	Log    *slog.Logger
	OnPoll func(err error) // every poll's outcome, for metrics
	// OnLookup reports each lookup's result (LookupFound, LookupNotFound,
	// LookupUnavailable) and how long it waited for a fresh poll (0: it did not).
	OnLookup func(result string, waited time.Duration)
}

// Lookup results, a closed set for metrics.
const (
	LookupFound       = "found"
	LookupNotFound    = "not_found"
	LookupUnavailable = "unavailable"
)

// Bounds of a status list fetch: room for 400,000 rows, in at most 30 s.
const (
	statusMaxBytes = 32 << 20
	statusTimeout  = 30 * time.Second
)

// Default bounds of on-demand lookups.
const (
	DefaultMinGap = time.Second
	DefaultWait   = 10 * time.Second
)

// StatusBook is the CDR Register's view of data recipients, kept current by
// polling. A failed or garbled poll never changes what is known and never removes
// anything. A software product (or data recipient) not yet known waits for a poll
// that started after it was asked for: only such a poll may say it is not listed.
type StatusBook struct {
	cfg    StatusBookConfig
	client *http.Client

	mu       sync.RWMutex
	products map[string]string // softwareProductId -> ACTIVE|INACTIVE|REMOVED
	entities map[string]string // legalEntityId -> ACTIVE|SUSPENDED|REVOKED|SURRENDERED
	cleaned  map[string]bool   // REMOVED products whose registration is gone
	lastPoll time.Time         // when the last good poll ended

	// polls: at most one poll is scheduled or in flight; everyone who needs a
	// fresh one shares it.
	pollMu    sync.Mutex
	next      *pollRun
	lastStart time.Time
	// life is Run's context. A poll is shared by everyone waiting for it, so no
	// request's end cancels it; but it is the server's, so the server's end does:
	// a stopped obdcr must not go on to remove registrations.
	life context.Context
}

// pollRun is one poll, shared by every caller waiting for it.
type pollRun struct {
	started time.Time // zero while it waits for MinGap; guarded by pollMu
	done    chan struct{}
	err     error // set before done is closed
}

// NewStatusBook returns a book that knows nothing until its first poll.
func NewStatusBook(cfg StatusBookConfig) *StatusBook {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MinGap <= 0 {
		cfg.MinGap = DefaultMinGap
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	// The status lists grow with the ecosystem: 20,000 products are about 1.4 MB,
	// where a JWKS fits the default 64 KiB. The Register's URL is the bank's own
	// setting, not a directory's or TPP's, so a larger bound is no SSRF risk.
	cfg.Fetch.MaxBytes = max(cfg.Fetch.MaxBytes, statusMaxBytes)
	cfg.Fetch.Timeout = max(cfg.Fetch.Timeout, statusTimeout)
	return &StatusBook{
		cfg: cfg, client: cfg.Fetch.Client(),
		products: map[string]string{}, entities: map[string]string{}, cleaned: map[string]bool{},
	}
}

var (
	productStatuses = []string{"ACTIVE", "INACTIVE", "REMOVED"}
	entityStatuses  = []string{"ACTIVE", "SUSPENDED", "REVOKED", "SURRENDERED"}
)

// Run polls until ctx ends: every Interval after a success, with exponential
// backoff (capped at the interval) after a failure. Its polls are shared with
// lookups like any other.
func (b *StatusBook) Run(ctx context.Context) {
	b.pollMu.Lock()
	b.life = ctx
	b.pollMu.Unlock()
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = time.Second, b.cfg.Interval, 0
	for {
		wait := b.cfg.Interval
		if err := b.fresh(ctx, time.Now()); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = bo.NextBackOff()
			b.cfg.Log.Warn("CDR Register poll failed; keeping the last known statuses", "error", err.Error(), "retry_in", wait.String())
		} else {
			bo.Reset()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// fresh waits for a poll that started at or after since, starting one (no sooner
// than MinGap after the last) when none is due, and returns its outcome.
func (b *StatusBook) fresh(ctx context.Context, since time.Time) error {
	for {
		b.pollMu.Lock()
		r := b.next
		if r == nil {
			r = &pollRun{done: make(chan struct{})}
			b.next = r
			life := b.life
			if life == nil { // a book without Run (tests, tools): the poll outlives its first waiter
				life = context.WithoutCancel(ctx)
			}
			go b.start(life, r, time.Until(b.lastStart.Add(b.cfg.MinGap)))
		}
		late := !r.started.IsZero() && r.started.Before(since)
		b.pollMu.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !late {
			return r.err
		}
		// That poll was already asking when we arrived, so its answer may predate
		// our product: wait for the next.
	}
}

// start runs a scheduled poll once its gap has passed. Its context is the
// book's, nobody's request: a waiter giving up does not cancel a poll others share.
func (b *StatusBook) start(ctx context.Context, r *pollRun, delay time.Duration) {
	defer func() {
		b.pollMu.Lock()
		b.next = nil
		b.pollMu.Unlock()
		close(r.done)
	}()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			r.err = ctx.Err()
			return
		}
	}
	b.pollMu.Lock()
	r.started = time.Now()
	b.lastStart = r.started
	b.pollMu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, b.cfg.Wait+b.cfg.Interval)
	defer cancel()
	r.err = b.Poll(pctx)
}

// Poll fetches both status lists and, if both are well-formed, applies them.
func (b *StatusBook) Poll(ctx context.Context) (err error) {
	defer func() {
		if b.cfg.OnPoll != nil {
			b.cfg.OnPoll(err)
		}
	}()
	products, err := b.fetch(ctx, "/cdr-register/v1/all/data-recipients/brands/software-products/status", "softwareProductId", productStatuses)
	if err != nil {
		return err
	}
	entities, err := b.fetch(ctx, "/cdr-register/v1/all/data-recipients/status", "legalEntityId", entityStatuses)
	if err != nil {
		return err
	}
	b.mu.Lock()
	for id, st := range products {
		b.products[id] = st
	}
	for id, st := range entities {
		b.entities[id] = st
	}
	b.lastPoll = time.Now()
	var removed []string
	for id, st := range b.products {
		if st == "REMOVED" && !b.cleaned[id] {
			removed = append(removed, id)
		}
	}
	b.mu.Unlock()
	b.cleanUp(ctx, removed)
	return nil
}

// cleanUp removes the registrations of REMOVED software products (CDS: a Data
// Holder must act within 5 minutes). A failure is retried at the next poll.
func (b *StatusBook) cleanUp(ctx context.Context, ids []string) {
	if b.cfg.Remove == nil {
		return
	}
	for _, id := range ids {
		clientID, err := b.cfg.Remove(ctx, id)
		if err != nil {
			b.cfg.Log.Error("could not remove the registration of a REMOVED software product; will retry", "software_id", id, "error", err.Error())
			continue
		}
		if clientID != "" {
			b.cfg.Log.Info("removed the registration of a software product the CDR Register lists as REMOVED", "software_id", id, "client_id", clientID, "profile", Name)
		}
		b.mu.Lock()
		b.cleaned[id] = true
		b.mu.Unlock()
	}
}

// fetch reads one status list. Anything but the documented shape (x-v 2 and
// later) is refused whole, rather than guessed at; an entry with a status not in
// the standard is left out, so its last known value stays.
func (b *StatusBook) fetch(ctx context.Context, path, idField string, allowed []string) (map[string]string, error) {
	u := strings.TrimRight(b.cfg.RegisterURL, "/") + path
	body, status, err := b.cfg.Fetch.Get(ctx, b.client, u, http.Header{"x-v": {"3"}, "x-min-v": {"2"}, "Accept": {"application/json"}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", path, status)
	}
	// Rows decode into a struct, not a map per row: a list of 20,000 products
	// is one allocation per string, not a map each.
	var doc struct {
		Data []struct {
			SoftwareProductID string `json:"softwareProductId"`
			LegalEntityID     string `json:"legalEntityId"`
			Status            string `json:"status"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Data == nil {
		return nil, fmt.Errorf("%s: not the status shape of x-v 2 or later (no data array)", path)
	}
	out := make(map[string]string, len(doc.Data))
	for i, row := range doc.Data {
		id, st := row.SoftwareProductID, row.Status
		if idField == "legalEntityId" {
			id = row.LegalEntityID
		}
		if id == "" || st == "" {
			return nil, fmt.Errorf("%s: entry %d has no %s or status", path, i, idField)
		}
		st = strings.ToUpper(st)
		if !slices.Contains(allowed, st) {
			continue
		}
		out[id] = st
	}
	return out, nil
}

// Standing is what the Register says of a software product and its data
// recipient; "" where it lists neither (after a fresh poll: not listed).
type Standing struct {
	Product, Entity string
}

// ErrRegisterUnavailable: the Register could not be asked in time, so a product
// it has not yet listed can be neither approved nor refused.
var ErrRegisterUnavailable = errors.New("the CDR Register could not be asked")

// Known returns the statuses of a product and legal entity, and whether both are
// known already (entity "" needs no status).
func (b *StatusBook) Known(product, entity string) (Standing, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	p, pok := b.products[product]
	e, eok := b.entities[entity]
	return Standing{Product: p, Entity: e}, pok && (eok || entity == "")
}

// Lookup returns the statuses of a software product and legal entity. Known ones
// answer at once, from the last poll. Otherwise the lookup waits, at most Wait,
// for a poll that started after it was made (the product may have just been
// accredited); the answer is then that poll's. An error wrapping
// ErrRegisterUnavailable means no such poll completed, and nothing is known.
func (b *StatusBook) Lookup(ctx context.Context, product, entity string) (Standing, error) {
	asked := time.Now()
	if s, ok := b.Known(product, entity); ok {
		b.report(LookupFound, 0)
		return s, nil
	}
	wctx, cancel := context.WithTimeout(ctx, b.cfg.Wait)
	defer cancel()
	err := b.fresh(wctx, asked)
	waited := time.Since(asked)
	if err != nil {
		b.report(LookupUnavailable, waited)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return Standing{}, fmt.Errorf("%w: no poll completed within %s", ErrRegisterUnavailable, b.cfg.Wait)
		}
		return Standing{}, fmt.Errorf("%w: %v", ErrRegisterUnavailable, err)
	}
	s, ok := b.Known(product, entity)
	if ok {
		b.report(LookupFound, waited)
	} else {
		b.report(LookupNotFound, waited)
	}
	return s, nil
}

func (b *StatusBook) report(result string, waited time.Duration) {
	if b.cfg.OnLookup != nil {
		b.cfg.OnLookup(result, waited)
	}
}

// LastPoll is when the last good poll ended (zero before the first).
func (b *StatusBook) LastPoll() time.Time {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.lastPoll
}

// Product returns a software product's last known status ("" if unknown).
func (b *StatusBook) Product(id string) string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.products[id]
}
