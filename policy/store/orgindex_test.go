package store_test

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Every backend keeps the org index alike: notes, moves, forgets, limits,
// what was noted before a time, and completeness (shared between replicas).
func TestOrgIndex(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dsn := b.dsn(t)
			s := open(t, dsn)
			sorted := func(ids []string, complete bool, err error) []string {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(ids)
				return ids
			}
			if _, complete, _ := s.OrgClients(ctx, "a", 10); complete {
				t.Fatal("a new index says it is complete")
			}
			for _, n := range []struct{ org, id string }{{"a", "c1"}, {"a", "c2"}, {"a", "c3"}, {"b", "c4"}} {
				if err := s.NoteClient(ctx, n.org, n.id); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(5 * time.Millisecond)
			mark := time.Now()
			time.Sleep(5 * time.Millisecond)
			steps := []struct {
				name   string
				do     func() error
				org    string
				limit  int
				want   []string
				before []string // NotedBefore(mark)
			}{
				{"noted", nil, "a", 10, []string{"c1", "c2", "c3"}, []string{"c1", "c2", "c3", "c4"}},
				{"a limit", nil, "a", 2, nil, nil},
				{"noted again: refreshed", func() error { return s.NoteClient(ctx, "a", "c1") }, "a", 10, []string{"c1", "c2", "c3"}, []string{"c2", "c3", "c4"}},
				{"moved to another organisation", func() error { return s.NoteClient(ctx, "b", "c2") }, "b", 10, []string{"c2", "c4"}, []string{"c3", "c4"}},
				{"forgotten", func() error { return s.ForgetClient(ctx, "c3") }, "a", 10, []string{"c1"}, []string{"c4"}},
				{"forgetting what is not there", func() error { return s.ForgetClient(ctx, "nope") }, "a", 10, []string{"c1"}, []string{"c4"}},
				{"a young note is not stale", func() error { return s.ForgetStale(ctx, "c1", time.Hour) }, "a", 10, []string{"c1"}, []string{"c4"}},
				{"an old note is", func() error { return s.ForgetStale(ctx, "c4", 5*time.Millisecond) }, "b", 10, []string{"c2"}, []string{}},
			}
			for _, st := range steps {
				if st.do != nil {
					if err := st.do(); err != nil {
						t.Fatalf("%s: %v", st.name, err)
					}
				}
				got := sorted(s.OrgClients(ctx, st.org, st.limit))
				if st.want == nil {
					if len(got) != st.limit {
						t.Fatalf("%s: %d ids, want %d", st.name, len(got), st.limit)
					}
					continue
				}
				if !slices.Equal(got, st.want) {
					t.Fatalf("%s: %v, want %v", st.name, got, st.want)
				}
				before, err := s.NotedBefore(ctx, mark, 10)
				if slices.Sort(before); err != nil || !slices.Equal(before, st.before) {
					t.Fatalf("%s: noted before the mark %v, want %v (%v)", st.name, before, st.before, err)
				}
			}
			if err := s.MarkComplete(ctx); err != nil {
				t.Fatal(err)
			}
			if _, complete, _ := s.OrgClients(ctx, "a", 10); !complete {
				t.Fatal("not complete once marked")
			}
			if dsn != "memory" {
				replica := open(t, dsn)
				if ids, complete, _ := replica.OrgClients(ctx, "b", 10); !complete || !slices.Equal(ids, []string{"c2"}) {
					t.Fatalf("a second replica sees %v, complete %v", ids, complete)
				}
			}
		})
	}
}
