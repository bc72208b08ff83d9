package policy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/obdcr/obdcr/hydra"
)

// OrgIndex remembers which clients obdcr registered for each organisation, so
// that an admin's org_id lookup reads those few clients by id. Hydra can list
// clients by owner, but it has no index on owner and reads every client it holds:
// 120-170 ms among 50,000 clients on its SQLite, growing with the table.
//
// It holds at least every client obdcr registered (a client is noted before
// Hydra creates it), perhaps more (a create that then failed, a client deleted
// in Hydra directly): a lookup checks each id with Hydra and forgets those gone.
// Until it has been filled from Hydra once (complete), lookups ask Hydra's list.
type OrgIndex interface {
	// NoteClient records (or refreshes) a client of an organisation.
	NoteClient(ctx context.Context, orgID, clientID string) error
	ForgetClient(ctx context.Context, clientID string) error
	// ForgetStale forgets a client only if it was last noted more than olderThan
	// ago by the store's clock: a note younger than that may be a create still on
	// its way to Hydra, which a lookup or resync must not undo.
	ForgetStale(ctx context.Context, clientID string, olderThan time.Duration) error
	// OrgClients lists at most limit of an organisation's client ids, oldest
	// noted first, and whether the index has been filled from Hydra.
	OrgClients(ctx context.Context, orgID string, limit int) (ids []string, complete bool, err error)
	// NotedBefore lists at most limit client ids last noted before t.
	NotedBefore(ctx context.Context, t time.Time, limit int) ([]string, error)
	// MarkComplete records that the index has been filled from Hydra.
	MarkComplete(ctx context.Context) error
}

// ClientPager reads every client of Hydra a page at a time, for the resync.
type ClientPager interface {
	ListPage(ctx context.Context, token string) ([]hydra.Client, string, error)
}

const (
	// maxOrgClients bounds one organisation's lookup, as Hydra's list is bounded.
	maxOrgClients = 5000
	// orgLookupParallel is how many of an organisation's clients are read from
	// Hydra at once.
	orgLookupParallel = 8
	// resyncGrace spares clients noted just before a resync began: their create
	// may still be on its way to Hydra, and replicas' clocks differ a little.
	resyncGrace = 10 * time.Minute
	// maxResyncPages stops a resync whose pages never end (50 million clients).
	maxResyncPages = 100_000
)

// orgClients lists an organisation's clients: through the index when it is
// complete, else from Hydra's owner list.
func (r *Registrar) orgClients(ctx context.Context, orgID string) ([]hydra.Client, error) {
	if r.Orgs == nil {
		return r.listByOwner(ctx, orgID)
	}
	ids, complete, err := r.Orgs.OrgClients(ctx, orgID, maxOrgClients)
	if err != nil {
		return nil, &Unavailable{Dependency: "store", Err: err}
	}
	if !complete {
		return r.listByOwner(ctx, orgID)
	}
	found := make([]*hydra.Client, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(orgLookupParallel)
	for i, id := range ids {
		g.Go(func() error {
			c, err := r.Clients.Get(gctx, id)
			switch {
			case errors.Is(err, hydra.ErrNotFound):
				// Not in Hydra: deleted there, a create that failed, or one still
				// on its way (a young note, which stays).
				_ = r.Orgs.ForgetStale(gctx, id, resyncGrace)
				return nil
			case err != nil:
				return err
			case c.Owner == orgID:
				found[i] = &c
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, &Unavailable{Dependency: "hydra", Err: err}
	}
	var out []hydra.Client
	for _, c := range found {
		if c != nil {
			out = append(out, *c)
		}
	}
	return out, nil
}

func (r *Registrar) listByOwner(ctx context.Context, orgID string) ([]hydra.Client, error) {
	clients, err := r.Clients.ListByOwner(ctx, orgID)
	if err != nil {
		return nil, &Unavailable{Dependency: "hydra", Err: err}
	}
	return clients, nil
}

// noteClient records a registration's client before Hydra holds it.
func (r *Registrar) noteClient(ctx context.Context, reg *Registration) error {
	if r.Orgs == nil || reg.OrgID == "" {
		return nil
	}
	if err := r.Orgs.NoteClient(ctx, reg.OrgID, reg.ClientID); err != nil {
		return &Unavailable{Dependency: "store", Err: err}
	}
	return nil
}

// forgetClient drops a deleted client; a failure only leaves an id that lookups
// find gone and forget then.
func (r *Registrar) forgetClient(ctx context.Context, clientID string) {
	if r.Orgs != nil {
		_ = r.Orgs.ForgetClient(ctx, clientID)
	}
}

// unnoteRefused drops the note of a client Hydra refused to create, when its id
// was made for this request and so cannot be another registration's: else a TPP
// whose approved requests Hydra keeps refusing would grow the index with each.
// A deterministic id (one registration per software_id) is one note per
// software at most, and may be an existing registration's: it stays.
func (r *Registrar) unnoteRefused(ctx context.Context, clientID string, fresh bool, err error) {
	var rejected *hydra.RejectedError
	if fresh && (errors.Is(err, hydra.ErrConflict) || errors.As(err, &rejected)) {
		r.forgetClient(ctx, clientID)
	}
}

// Resync is what ResyncOrgIndex did.
type Resync struct {
	Pages, Clients, Noted, Forgotten int
}

// ResyncOrgIndex fills the index from every client in Hydra, forgets the ids
// Hydra no longer has, then marks the index complete. It runs at start while the
// index is not complete (a memory store, a store from an older obdcr) and daily,
// which also catches clients registered by older replicas during an upgrade.
func (r *Registrar) ResyncOrgIndex(ctx context.Context, pager ClientPager) (Resync, error) {
	var out Resync
	if r.Orgs == nil {
		return out, nil
	}
	start := r.now()
	token := ""
	for {
		if out.Pages >= maxResyncPages {
			return out, fmt.Errorf("org index resync: more than %d pages of clients", maxResyncPages)
		}
		clients, next, err := pager.ListPage(ctx, token)
		if err != nil {
			return out, fmt.Errorf("org index resync: listing Hydra's clients: %w", err)
		}
		out.Pages++
		out.Clients += len(clients)
		for _, c := range clients {
			reg, err := FromHydra(c, nil)
			if err != nil || reg.OrgID == "" || c.Owner != reg.OrgID {
				continue
			}
			if err := r.Orgs.NoteClient(ctx, reg.OrgID, c.ID); err != nil {
				return out, fmt.Errorf("org index resync: %w", err)
			}
			out.Noted++
		}
		if next == "" || next == token {
			break
		}
		token = next
	}
	// Ids the pass did not see: deleted, or skipped because the pages shifted
	// under a concurrent delete. Hydra decides which.
	for {
		stale, err := r.Orgs.NotedBefore(ctx, start.Add(-resyncGrace), 500)
		if err != nil {
			return out, fmt.Errorf("org index resync: %w", err)
		}
		if len(stale) == 0 {
			break
		}
		for _, id := range stale {
			c, err := r.Clients.Get(ctx, id)
			switch {
			case errors.Is(err, hydra.ErrNotFound):
				err = r.Orgs.ForgetStale(ctx, id, resyncGrace)
				out.Forgotten++
			case err != nil:
				return out, fmt.Errorf("org index resync: reading client %s: %w", id, err)
			default:
				reg, ferr := FromHydra(c, nil)
				if ferr != nil || reg.OrgID == "" {
					err = r.Orgs.ForgetStale(ctx, id, resyncGrace)
					out.Forgotten++
				} else {
					err = r.Orgs.NoteClient(ctx, reg.OrgID, id)
				}
			}
			if err != nil {
				return out, fmt.Errorf("org index resync: %w", err)
			}
		}
	}
	return out, r.Orgs.MarkComplete(ctx)
}
