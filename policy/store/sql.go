package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite", pure Go
)

// dialect is what differs between SQLite and PostgreSQL; the SQL is otherwise one.
type dialect struct {
	name string
	// serial is the auto-numbered primary key column type.
	serial string
	// lock runs first in the migration transaction, so two replicas starting
	// together do not migrate twice.
	lock string
	// dollar: placeholders are $1, $2 (PostgreSQL) rather than ? (SQLite).
	dollar bool
}

var (
	sqliteDialect   = dialect{name: "sqlite", serial: "INTEGER PRIMARY KEY AUTOINCREMENT"}
	postgresDialect = dialect{name: "postgres", serial: "BIGSERIAL PRIMARY KEY", lock: "SELECT pg_advisory_xact_lock(73567021)", dollar: true}
)

// bind rewrites ? placeholders for the dialect.
func (d dialect) bind(q string) string {
	if !d.dollar {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// migrations are applied in order, each once; never edit one that has shipped.
var migrations = []string{
	`CREATE TABLE obdcr_profiles (
		name       TEXT PRIMARY KEY,
		enabled    INTEGER NOT NULL,
		settings   TEXT NOT NULL,
		updated_at BIGINT NOT NULL
	);
	CREATE TABLE obdcr_policy_version (
		id      INTEGER PRIMARY KEY,
		version BIGINT NOT NULL
	);
	INSERT INTO obdcr_policy_version (id, version) VALUES (1, 0);
	CREATE TABLE obdcr_replay (
		key        TEXT PRIMARY KEY,
		expires_at BIGINT NOT NULL
	);
	CREATE INDEX obdcr_replay_expires ON obdcr_replay (expires_at);
	CREATE TABLE obdcr_audit (
		id              {{serial}},
		time            BIGINT NOT NULL,
		kind            TEXT NOT NULL,
		profile         TEXT NOT NULL,
		software_id     TEXT NOT NULL,
		org_id          TEXT NOT NULL,
		client_id       TEXT NOT NULL,
		outcome         TEXT NOT NULL,
		error           TEXT NOT NULL,
		rule            TEXT NOT NULL,
		description     TEXT NOT NULL,
		request_id      TEXT NOT NULL,
		actor           TEXT NOT NULL,
		cert_thumbprint TEXT NOT NULL,
		before          TEXT NOT NULL,
		after           TEXT NOT NULL
	);
	CREATE INDEX obdcr_audit_software ON obdcr_audit (software_id, id);
	CREATE INDEX obdcr_audit_profile ON obdcr_audit (profile, id);`,
	// 2: per-profile versions (If-Match, lost-update-free saves), claimed values
	// kept apart from verified ones, and an index for retention.
	`ALTER TABLE obdcr_profiles ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE obdcr_audit ADD COLUMN claimed_software_id TEXT NOT NULL DEFAULT '';
	ALTER TABLE obdcr_audit ADD COLUMN claimed_org_id TEXT NOT NULL DEFAULT '';
	ALTER TABLE obdcr_audit ADD COLUMN claimed_client_id TEXT NOT NULL DEFAULT '';
	CREATE INDEX obdcr_audit_time ON obdcr_audit (time);
	CREATE INDEX obdcr_audit_claimed_software ON obdcr_audit (claimed_software_id, id);`,
	// 3: each organisation's clients, so that an org_id lookup need not scan
	// Hydra's every client; filled from Hydra by the first resync.
	`CREATE TABLE obdcr_org_clients (
		client_id TEXT PRIMARY KEY,
		org_id    TEXT NOT NULL,
		noted_at  BIGINT NOT NULL
	);
	CREATE INDEX obdcr_org_clients_org ON obdcr_org_clients (org_id, noted_at);
	CREATE INDEX obdcr_org_clients_noted ON obdcr_org_clients (noted_at);
	CREATE TABLE obdcr_org_index (
		id          INTEGER PRIMARY KEY,
		complete_at BIGINT NOT NULL
	);
	INSERT INTO obdcr_org_index (id, complete_at) VALUES (1, 0);`,
	// 4: creates sent to Hydra and not yet settled (policy.CreateLog), so that
	// any replica can remove a half-made registration.
	`CREATE TABLE obdcr_creates (
		id            {{serial}},
		client_id     TEXT NOT NULL,
		nonce         TEXT NOT NULL,
		profile       TEXT NOT NULL,
		software_id   TEXT NOT NULL,
		org_id        TEXT NOT NULL,
		noted_at      BIGINT NOT NULL,
		claimed_until BIGINT NOT NULL
	);
	CREATE INDEX obdcr_creates_client ON obdcr_creates (client_id, nonce);
	CREATE INDEX obdcr_creates_noted ON obdcr_creates (noted_at);`,
	// 5: the FAPI edge's pushed authorization requests and authorization
	// handles: single-use, short-lived, shared by every replica.
	`CREATE TABLE obdcr_handles (
		key        TEXT PRIMARY KEY,
		value      TEXT NOT NULL,
		expires_at BIGINT NOT NULL
	);
	CREATE INDEX obdcr_handles_expires ON obdcr_handles (expires_at);`,
	// 6: values generated once and shared by every replica (the edge's key for
	// its assertions to Hydra).
	`CREATE TABLE obdcr_secrets (
		name       TEXT PRIMARY KEY,
		value      TEXT NOT NULL,
		created_at BIGINT NOT NULL
	);`,
	// 7: the FAPI edge's token bindings, apart from the handles: far more of
	// them live at once, and neither may crowd out the other.
	`CREATE TABLE obdcr_bindings (
		key        TEXT PRIMARY KEY,
		x5t        TEXT NOT NULL,
		expires_at BIGINT NOT NULL
	);
	CREATE INDEX obdcr_bindings_expires ON obdcr_bindings (expires_at);`,
}

// SQL is the Store on a SQL database.
type SQL struct {
	db    *sql.DB
	d     dialect
	swept atomic.Int64 // unix seconds of the last sweep of expired jtis
	// handlesSwept is the same for expired handles.
	handlesSwept atomic.Int64
	bindingCount bindingCount
	// maxHandles and maxBindings are the bounds; 0 is MaxHandles and
	// MaxBindings (tests set smaller ones).
	maxHandles, maxBindings int
	nowFn                   func() time.Time
}

func openSQLite(ctx context.Context, path string) (*SQL, error) {
	// WAL lets replicas on one file read while one writes; busy_timeout makes a
	// writer wait for the lock instead of failing; immediate transactions take the
	// write lock up front, so two replicas never deadlock upgrading a read lock.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	return newSQL(ctx, db, sqliteDialect)
}

func openPostgres(ctx context.Context, dsn string) (*SQL, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(10)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return newSQL(ctx, db, postgresDialect)
}

func newSQL(ctx context.Context, db *sql.DB, d dialect) (*SQL, error) {
	s := &SQL{db: db, d: d, nowFn: time.Now}
	if err := s.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Migrate applies the migrations not yet applied (obdcr migrate, and every start).
func (s *SQL) Migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	if s.d.lock != "" {
		if _, err := tx.ExecContext(ctx, s.d.lock); err != nil {
			return fmt.Errorf("store: migration lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS obdcr_schema (version INTEGER PRIMARY KEY)`); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM obdcr_schema`).Scan(&have); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("store: the database has schema version %d, newer than this obdcr knows (%d); upgrade obdcr", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		for _, stmt := range strings.Split(strings.ReplaceAll(migrations[v-1], "{{serial}}", s.d.serial), ";") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("store: migration %d: %w", v, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.d.bind(`INSERT INTO obdcr_schema (version) VALUES (?)`), v); err != nil {
			return fmt.Errorf("store: migration %d: %w", v, err)
		}
	}
	return tx.Commit()
}

// SchemaVersion is the newest migration this build knows.
func SchemaVersion() int { return len(migrations) }

func (s *SQL) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, s.d.bind(q), args...)
}

// Seen implements policy.ReplayCache.
func (s *SQL) Seen(ctx context.Context, key string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, s.d.bind(`SELECT 1 FROM obdcr_replay WHERE key = ? AND expires_at > ?`), key, s.nowFn().UnixMicro()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Claim implements policy.ReplayCache in one statement: the row is inserted, or
// an expired one taken over, or nothing happens because a live one holds the key.
// The database's unique key decides between replicas racing for one jti.
func (s *SQL) Claim(ctx context.Context, key string, until time.Time) (bool, error) {
	now := s.nowFn()
	res, err := s.exec(ctx, `INSERT INTO obdcr_replay (key, expires_at) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE obdcr_replay.expires_at <= ?`,
		key, until.UnixMicro(), now.UnixMicro())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	s.sweep(ctx, now)
	return n == 1, nil
}

// sweep deletes expired jtis at most once a minute per process.
func (s *SQL) sweep(ctx context.Context, now time.Time) {
	last := s.swept.Load()
	if now.Unix()-last < 60 || !s.swept.CompareAndSwap(last, now.Unix()) {
		return
	}
	_, _ = s.exec(ctx, `DELETE FROM obdcr_replay WHERE expires_at <= ?`, now.UnixMicro())
}

func (s *SQL) States(ctx context.Context) (map[string]StoredState, int64, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: s.d.name == "postgres"})
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback()
	var version int64
	if err := tx.QueryRowContext(ctx, `SELECT version FROM obdcr_policy_version WHERE id = 1`).Scan(&version); err != nil {
		return nil, 0, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT name, enabled, settings, version FROM obdcr_profiles`)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := map[string]StoredState{}
	for rows.Next() {
		var name, settings string
		var enabled int
		var v int64
		if err := rows.Scan(&name, &enabled, &settings, &v); err != nil {
			return nil, 0, err
		}
		out[name] = StoredState{Enabled: enabled == 1, Settings: json.RawMessage(settings), Version: v}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	return out, version, tx.Commit()
}

func (s *SQL) Version(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT version FROM obdcr_policy_version WHERE id = 1`).Scan(&v)
	return v, err
}

func (s *SQL) Seed(ctx context.Context, profile string, st StoredState) error {
	_, err := s.exec(ctx, `INSERT INTO obdcr_profiles (name, enabled, settings, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		profile, boolInt(st.Enabled), string(st.Settings), s.nowFn().UnixMicro())
	return err
}

func (s *SQL) PutState(ctx context.Context, profile string, st StoredState, e AuditEntry) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Compare and swap on the profile's version: a save based on a state another
	// admin has changed since is refused, never applied over it.
	res, err := tx.ExecContext(ctx, s.d.bind(`UPDATE obdcr_profiles SET enabled = ?, settings = ?, updated_at = ?, version = version + 1
		WHERE name = ? AND version = ?`), boolInt(st.Enabled), string(st.Settings), s.nowFn().UnixMicro(), profile, st.Version)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return ErrStale
	}
	if _, err := tx.ExecContext(ctx, `UPDATE obdcr_policy_version SET version = version + 1 WHERE id = 1`); err != nil {
		return err
	}
	if err := s.insertAudit(ctx, tx, e); err != nil {
		return err
	}
	// Before the commit is sent, a spent budget means a rollback: nothing was
	// saved. Once it is sent, a failure (a database that stops answering, the
	// budget ending mid-commit) leaves the outcome unknown, and the caller must
	// say so rather than "nothing was changed".
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("%w: %w", ErrCommitUnknown, err)
	} else if err != nil {
		return err
	}
	return nil
}

// Prune removes decision entries older than before; policy changes are kept.
func (s *SQL) Prune(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM obdcr_audit WHERE time < ? AND kind <> ?`, before.UnixMicro(), KindPolicy)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

func (s *SQL) insertAudit(ctx context.Context, x execer, e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = s.nowFn()
	}
	_, err := x.ExecContext(ctx, s.d.bind(`INSERT INTO obdcr_audit (time, kind, profile, software_id, org_id, client_id, outcome, error, rule,
		description, request_id, actor, cert_thumbprint, before, after, claimed_software_id, claimed_org_id, claimed_client_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		e.Time.UnixMicro(), e.Kind, e.Profile, e.SoftwareID, e.OrgID, e.ClientID, e.Outcome, e.Error, e.Rule,
		e.Description, e.RequestID, e.Actor, e.CertThumbprint, string(e.Before), string(e.After),
		e.ClaimedSoftwareID, e.ClaimedOrgID, e.ClaimedClientID)
	return err
}

func (s *SQL) Append(ctx context.Context, e AuditEntry) error { return s.insertAudit(ctx, s.db, e) }

func (s *SQL) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	where, args := []string{"1 = 1"}, []any{}
	if q.SoftwareID != "" {
		where = append(where, "(software_id = ? OR claimed_software_id = ?)")
		args = append(args, q.SoftwareID, q.SoftwareID)
	}
	if q.BeforeID > 0 {
		where = append(where, "id < ?")
		args = append(args, q.BeforeID)
	}
	for _, f := range []struct{ col, v string }{{"profile", q.Profile}, {"kind", q.Kind}, {"outcome", q.Outcome}} {
		if f.v != "" {
			where = append(where, f.col+" = ?")
			args = append(args, f.v)
		}
	}
	args = append(args, q.limit())
	rows, err := s.db.QueryContext(ctx, s.d.bind(`SELECT id, time, kind, profile, software_id, org_id, client_id, outcome, error, rule,
		description, request_id, actor, cert_thumbprint, before, after, claimed_software_id, claimed_org_id, claimed_client_id
		FROM obdcr_audit WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		var t int64
		var before, after string
		if err := rows.Scan(&e.ID, &t, &e.Kind, &e.Profile, &e.SoftwareID, &e.OrgID, &e.ClientID, &e.Outcome, &e.Error, &e.Rule,
			&e.Description, &e.RequestID, &e.Actor, &e.CertThumbprint, &before, &after,
			&e.ClaimedSoftwareID, &e.ClaimedOrgID, &e.ClaimedClientID); err != nil {
			return nil, err
		}
		e.Time = time.UnixMicro(t).UTC()
		if before != "" {
			e.Before = json.RawMessage(before)
		}
		if after != "" {
			e.After = json.RawMessage(after)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *SQL) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }
func (s *SQL) Close() error                   { return s.db.Close() }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
