package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/policy/store"
)

// obdcr migrate brings a store to this build's schema, again and again without
// harm, and refuses a database a newer obdcr has migrated (a rollback must not
// run old code on a newer schema).
func TestMigrate(t *testing.T) {
	pgDSN, _ := testenv.PostgresDatabase(t)
	sqlitePath := filepath.Join(t.TempDir(), "obdcr.db")
	want := fmt.Sprintf("store at schema version %d\n", store.SchemaVersion())
	migrate := func(dsn string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run([]string{"migrate"}, func(k string) string { return map[string]string{"OBDCR_DSN": dsn}[k] }, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	for _, tc := range []struct {
		name, driver, dsn, source string
	}{
		{"SQLite", "sqlite", "sqlite://" + sqlitePath, sqlitePath},
		{"PostgreSQL", "pgx", pgDSN, pgDSN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 2 {
				if code, out, errOut := migrate(tc.dsn); code != 0 || out != want {
					t.Fatalf("run %d: exit %d, %q %q; want %q", i+1, code, out, errOut, want)
				}
			}
			db, err := sql.Open(tc.driver, tc.source)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var version, rows int
			if err := db.QueryRow(`SELECT MAX(version), COUNT(*) FROM obdcr_schema`).Scan(&version, &rows); err != nil || version != store.SchemaVersion() || rows != version {
				t.Fatalf("schema %d in %d rows (%v), want %d once each", version, rows, err, store.SchemaVersion())
			}
			if _, err := db.Exec(fmt.Sprintf(`INSERT INTO obdcr_schema (version) VALUES (%d)`, version+1)); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := migrate(tc.dsn)
			if code != 1 || !strings.Contains(errOut, "newer than this obdcr knows") {
				t.Fatalf("a newer schema: exit %d, %q", code, errOut)
			}
		})
	}
	// A store that cannot be opened: one line naming the variable (once), never the password.
	for _, tc := range []struct{ dsn, want string }{
		{"mysql://db/obdcr", "obdcr migrate: OBDCR_DSN: must be memory, sqlite://PATH or postgres://"},
		{"sqlite://", "obdcr migrate: OBDCR_DSN: sqlite:// needs a file path"},
		{"sqlite://" + filepath.Join(t.TempDir(), "missing", "obdcr.db"), "obdcr migrate: OBDCR_DSN: SQLite file "},
		{"postgres://obdcr:secret-password@127.0.0.1:1/obdcr?connect_timeout=2", "obdcr migrate: OBDCR_DSN: PostgreSQL: "},
	} {
		code, _, errOut := migrate(tc.dsn)
		if code != 1 || !strings.HasPrefix(errOut, tc.want) || strings.Count(errOut, "\n") != 1 || strings.Count(errOut, "OBDCR_DSN") != 1 || strings.Contains(errOut, "secret-password") {
			t.Errorf("%s: exit %d, %q; want one line starting %q", tc.dsn, code, errOut, tc.want)
		}
	}
}
