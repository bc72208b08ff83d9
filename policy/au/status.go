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
	"golang.org/x/time/rate"

	"github.com/obdcr/obdcr/policy"
)

// Remover removes the registration of a software product, tokens included. It
// reports the client removed, or "" when there was none.
type Remover func(ctx context.Context, softwareID string) (clientID string, err error)

// StatusBookConfig configures a StatusBook.
type StatusBookConfig struct {
	RegisterURL string // OBDCR_AU_REGISTER_URL
	Interval    time.Duration
	Fetch       policy.FetchPolicy
	Remove      Remover
	Log         *slog.Logger
	OnPoll      func(err error) // every poll's outcome, for metrics
}

// StatusBook is the CDR Register's view of data recipients, kept current by
// polling. A failed or garbled poll never changes what is known and never removes
// anything; a software product that was not known is looked up on demand.
type StatusBook struct {
	cfg      StatusBookConfig
	client   *http.Client
	onDemand *rate.Limiter

	mu       sync.RWMutex
	products map[string]string // softwareProductId -> ACTIVE|INACTIVE|REMOVED
	entities map[string]string // legalEntityId -> ACTIVE|SUSPENDED|REVOKED|SURRENDERED
	cleaned  map[string]bool   // REMOVED products whose registration is gone
	polled   bool
}

// NewStatusBook returns a book that knows nothing until its first poll.
func NewStatusBook(cfg StatusBookConfig) *StatusBook {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &StatusBook{
		cfg: cfg, client: cfg.Fetch.Client(),
		onDemand: rate.NewLimiter(rate.Every(5*time.Second), 2),
		products: map[string]string{}, entities: map[string]string{}, cleaned: map[string]bool{},
	}
}

var (
	productStatuses = []string{"ACTIVE", "INACTIVE", "REMOVED"}
	entityStatuses  = []string{"ACTIVE", "SUSPENDED", "REVOKED", "SURRENDERED"}
)

// Run polls until ctx ends: every Interval after a success, with exponential
// backoff (capped at the interval) after a failure.
func (b *StatusBook) Run(ctx context.Context) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = time.Second, b.cfg.Interval, 0
	for {
		wait := b.cfg.Interval
		if err := b.Poll(ctx); err != nil {
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
	b.polled = true
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
	var doc struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Data == nil {
		return nil, fmt.Errorf("%s: not the status shape of x-v 2 or later (no data array)", path)
	}
	out := make(map[string]string, len(doc.Data))
	for i, row := range doc.Data {
		id, _ := row[idField].(string)
		st, _ := row["status"].(string)
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

// Lookup returns the statuses of a software product and legal entity. A product
// not yet known is looked up at once (rate-limited): it may have just been
// accredited. An error means the Register could not be asked and nothing is known.
func (b *StatusBook) Lookup(ctx context.Context, product, entity string) (string, string, error) {
	p, e, known := b.get(product, entity)
	if known {
		return p, e, nil
	}
	if !b.onDemand.Allow() {
		if b.isPolled() {
			return p, e, nil
		}
		return "", "", errors.New("the CDR Register has not been reached yet")
	}
	if err := b.Poll(ctx); err != nil {
		if b.isPolled() {
			return p, e, nil // known statuses stand; the product is simply not known
		}
		return "", "", err
	}
	p, e, _ = b.get(product, entity)
	return p, e, nil
}

func (b *StatusBook) get(product, entity string) (string, string, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	p, ok := b.products[product]
	return p, b.entities[entity], ok
}

func (b *StatusBook) isPolled() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.polled
}

// Product returns a software product's last known status ("" if unknown).
func (b *StatusBook) Product(id string) string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.products[id]
}
