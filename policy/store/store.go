// Package store keeps obdcr's shared state: profile switches and settings, the
// jti replay cache and the audit log. Replicas that share a database share it
// all, the way Hydra's own replicas share theirs.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/obdcr/obdcr/policy"
)

// Store is one backend: memory, SQLite or PostgreSQL.
type Store interface {
	policy.ReplayCache
	policy.OrgIndex
	policy.CreateLog
	Handles
	Secrets
	Bindings
	// States returns every stored profile state and the policy version.
	States(ctx context.Context) (map[string]StoredState, int64, error)
	// Version changes whenever any profile's state changes; replicas poll it.
	Version(ctx context.Context) (int64, error)
	// Seed stores a profile's first state; an existing state is left alone.
	Seed(ctx context.Context, profile string, st StoredState) error
	// PutState replaces a profile's state and appends its audit entry, in one
	// transaction, if the stored state is still at st.Version; else ErrStale.
	PutState(ctx context.Context, profile string, st StoredState, entry AuditEntry) error
	// Prune removes decision entries (not policy changes) older than before.
	Prune(ctx context.Context, before time.Time) (int64, error)
	// Append adds an audit entry; once it returns nil the entry is durable.
	Append(ctx context.Context, e AuditEntry) error
	// Audit lists entries, newest first.
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
	Ping(ctx context.Context) error
	Close() error
}

// StoredState is a profile's state as stored. Settings stay raw JSON so that a
// setting added in a later release takes its default on old rows.
type StoredState struct {
	Enabled  bool
	Settings json.RawMessage
	// Version counts the profile's saves; a save names the one it read.
	Version int64
}

// ErrStale: the profile was changed since the state a save was based on was read.
var ErrStale = errors.New("the profile was changed since it was read")

// Audit kinds.
const (
	KindRegistration = "registration"
	KindManagement   = "management"
	KindPolicy       = "policy"
	KindDryRun       = "dry_run"
	KindSignIn       = "console_sign_in" // refused console sign-ins, within a budget per source
)

// AuditEntry is one decision or change. It never holds a JWT, key or token. The
// fields the interface lists are always present, empty or not, for scripts.
type AuditEntry struct {
	ID             int64     `json:"id"`
	Time           time.Time `json:"time"`
	Kind           string    `json:"kind"`
	Profile        string    `json:"profile"`
	SoftwareID     string    `json:"software_id"`
	OrgID          string    `json:"org_id"`
	ClientID       string    `json:"client_id"`
	Outcome        string    `json:"outcome"`
	Error          string    `json:"error"`
	Rule           string    `json:"rule"`
	Description    string    `json:"description,omitempty"`
	RequestID      string    `json:"request_id"`
	Actor          string    `json:"actor,omitempty"`
	CertThumbprint string    `json:"cert_thumbprint,omitempty"`
	// Claimed values are what an unverified request said of itself (the SSA's
	// software_id and org_id before its signature was checked, a client_id in a
	// path before the caller proved it): recorded as claims, never as facts.
	ClaimedSoftwareID string          `json:"claimed_software_id,omitempty"`
	ClaimedOrgID      string          `json:"claimed_org_id,omitempty"`
	ClaimedClientID   string          `json:"claimed_client_id,omitempty"`
	Before            json.RawMessage `json:"before,omitempty"`
	After             json.RawMessage `json:"after,omitempty"`
}

// AuditQuery filters the audit log.
type AuditQuery struct {
	Limit int
	// SoftwareID matches entries of that software, verified or only claimed.
	SoftwareID string
	Profile    string
	Kind       string
	Outcome    string
	// BeforeID pages back: only entries older than this one (0: from the newest).
	BeforeID int64
}

// MaxAuditLimit bounds one audit query.
const MaxAuditLimit = 1000

func (q AuditQuery) limit() int {
	if q.Limit <= 0 {
		return 100
	}
	if q.Limit > MaxAuditLimit {
		return MaxAuditLimit
	}
	return q.Limit
}

// Open opens the store a DSN names: memory, sqlite://PATH or postgres://...
// SQL stores are migrated to the newest schema first.
func Open(ctx context.Context, dsn string) (Store, error) {
	switch {
	case dsn == "memory":
		return NewMemory(), nil
	case strings.HasPrefix(dsn, "sqlite://"):
		path := strings.TrimPrefix(dsn, "sqlite://")
		if path == "" {
			return nil, errors.New("OBDCR_DSN: sqlite:// needs a file path, such as sqlite:///var/lib/obdcr/obdcr.db")
		}
		st, err := openSQLite(ctx, path)
		if err != nil {
			hint := ""
			if strings.Contains(err.Error(), "unable to open database file") {
				hint = " (its directory must exist and be writable)"
			}
			return nil, fmt.Errorf("OBDCR_DSN: SQLite file %s%s: %w", path, hint, err)
		}
		return st, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		st, err := openPostgres(ctx, dsn)
		if err != nil {
			// pgx's message names the host, user and database, never the password;
			// it lists each address tried on a line of its own, and a start-up error
			// is one line.
			return nil, fmt.Errorf("OBDCR_DSN: PostgreSQL: %s", strings.Join(strings.Fields(err.Error()), " "))
		}
		return st, nil
	}
	return nil, fmt.Errorf("OBDCR_DSN: must be memory, sqlite://PATH or postgres://...")
}
