package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/obdcr/obdcr/policy/store"
)

// BenchmarkSQLiteWrites times the store writes a registration makes on SQLite, one at a time:
// the audit entry, the replay claim and the org index note (RESULTS.md quotes it).
func BenchmarkSQLiteWrites(b *testing.B) {
	ctx := context.Background()
	s, err := store.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "x.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.Run("org_index_note", func(b *testing.B) {
		for i := range b.N {
			_ = s.NoteClient(ctx, fmt.Sprintf("org-%d", i%1000), fmt.Sprintf("client-%d-%d", i, time.Now().UnixNano()))
		}
	})
	b.Run("replay_claim", func(b *testing.B) {
		for i := range b.N {
			_, _ = s.Claim(ctx, fmt.Sprintf("jti-%d-%d", i, time.Now().UnixNano()), time.Now().Add(time.Hour))
		}
	})
	b.Run("audit_entry", func(b *testing.B) {
		for i := range b.N {
			_ = s.Append(ctx, store.AuditEntry{Kind: "registration", Profile: "uk", SoftwareID: fmt.Sprint(i), OrgID: "o", ClientID: fmt.Sprint(i), Outcome: "approved"})
		}
	})
}

// BenchmarkSQLiteBinding times what the FAPI edge adds to a token request on
// SQLite (binding the access token: PutBinding) and to each use of the token
// (reading the binding: Binding), with 20,000 live bindings in the table.
func BenchmarkSQLiteBinding(b *testing.B) {
	ctx := context.Background()
	s, err := store.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "x.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	until := time.Now().Add(time.Hour)
	for i := range 20_000 {
		if err := s.PutBinding(ctx, fmt.Sprintf("cnf:seed-%d", i), "x5t", until); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("bind", func(b *testing.B) {
		for i := range b.N {
			_ = s.PutBinding(ctx, fmt.Sprintf("cnf:%d-%d", i, time.Now().UnixNano()), "x5t", until)
		}
	})
	b.Run("read", func(b *testing.B) {
		for i := range b.N {
			_, _, _ = s.Binding(ctx, fmt.Sprintf("cnf:seed-%d", i%20_000))
		}
	})
}
