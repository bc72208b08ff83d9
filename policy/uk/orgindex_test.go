package uk_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// failingIndex is an org index whose store is down.
type failingIndex struct{ policy.OrgIndex }

func (failingIndex) NoteClient(context.Context, string, string) error {
	return errors.New("store down")
}

// An organisation's registrations are found through the org index once it has
// been filled from Hydra, with one read per client and no scan of Hydra's list;
// what Hydra no longer holds is forgotten; until the fill, Hydra's list answers.
func TestOrgIndexFindsAnOrganisationsRegistrations(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.Settings(func(st *policy.State) { st.Settings.MultipleRegistrations = true })
	org := f.TPP.OrgID

	// Two registrations made by an obdcr without the index (an older release).
	var want []string
	for range 2 {
		reg, err := f.Register(f.Request(t, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, reg.ClientID)
	}
	// Another organisation's registration, and a client obdcr did not make.
	other, _ := f.Hydra.Get(ctx, want[0])
	other.ID, other.Owner = uuid.NewString(), "other-org"
	var meta map[string]any
	_ = json.Unmarshal(other.Metadata, &meta)
	meta["org_id"] = "other-org"
	other.Metadata, _ = json.Marshal(meta)
	f.Hydra.Clients[other.ID] = other
	f.Hydra.Clients["hand-made"] = hydra.Client{ID: "hand-made", Owner: org}

	clock := time.Now()
	idx := store.NewMemoryWithClock(func() time.Time { return clock })
	f.Registrar.Orgs = idx
	f.Hydra.PageSize = 2

	// Not filled yet: Hydra's list answers (and sees only what obdcr registered).
	regs, err := f.Registrar.Find(ctx, "", org)
	if err != nil || len(regs) != 2 || f.Hydra.OwnerLists != 1 {
		t.Fatalf("before the fill: %d registrations, %d owner lists, %v", len(regs), f.Hydra.OwnerLists, err)
	}

	// A registration while the index exists is noted; one whose create failed
	// leaves a noted id that Hydra does not hold.
	reg, err := f.Register(f.Request(t, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, reg.ClientID)
	// Creates Hydra refuses leave no note behind (each would be one more id
	// otherwise); one whose outcome is unknown leaves one, for lookups to clear.
	for _, refusal := range []error{hydra.ErrConflict, &hydra.RejectedError{Message: "no"}, &hydra.RejectedError{Message: "no"}} {
		f.Hydra.FailCreate, f.Hydra.FailBefore = refusal, true
		if _, err := f.Register(f.Request(t, nil, nil)); err == nil {
			t.Fatal("a failed create was approved")
		}
	}
	if ids, _, _ := idx.OrgClients(ctx, org, 100); len(ids) != 1 || ids[0] != reg.ClientID {
		t.Fatalf("after refused creates the index holds %v, want only %s", ids, reg.ClientID)
	}
	f.Hydra.FailCreate = &hydra.UnavailableError{}
	if _, err := f.Register(f.Request(t, nil, nil)); err == nil {
		t.Fatal("a failed create was approved")
	}
	f.Hydra.FailCreate, f.Hydra.FailBefore = nil, false

	res, err := f.Registrar.ResyncOrgIndex(ctx, f.Hydra)
	if err != nil {
		t.Fatal(err)
	}
	if res.Clients != 5 || res.Noted != 4 || res.Pages != 3 {
		t.Fatalf("resync %+v: want 5 clients read over 3 pages, 4 noted", res)
	}

	cases := []struct {
		name   string
		before func()
		org    string
		want   func() []string
		kept   string // an id Hydra does not hold that the index must keep
	}{
		{"the organisation's three registrations", nil, org, func() []string { return want }, ""},
		{"another organisation's", nil, "other-org", func() []string { return []string{other.ID} }, ""},
		{"an organisation with none", nil, "nobody", func() []string { return nil }, ""},
		{"a create still on its way to Hydra keeps its note", func() { _ = idx.NoteClient(ctx, org, "in-flight") }, org,
			func() []string { return want }, "in-flight"},
		{"a client deleted in Hydra directly is left out", func() { delete(f.Hydra.Clients, want[1]) }, org,
			func() []string { return []string{want[0], want[2]} }, want[1]},
		{"a deregistered client is left out", func() {
			if err := f.Registrar.Deregister(ctx, want[2]); err != nil {
				t.Fatal(err)
			}
		}, org, func() []string { return []string{want[0]} }, ""},
		{"ten minutes on, notes of clients Hydra does not hold are forgotten", func() { clock = clock.Add(11 * time.Minute) }, org,
			func() []string { return []string{want[0]} }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.before != nil {
				c.before()
			}
			noted, _, _ := idx.OrgClients(ctx, c.org, 100)
			lists, gets := f.Hydra.OwnerLists, f.Hydra.Gets
			regs, err := f.Registrar.Find(ctx, "", c.org)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range regs {
				got = append(got, r.ClientID)
			}
			slices.Sort(got)
			w := slices.Sorted(slices.Values(c.want()))
			if !slices.Equal(got, w) {
				t.Fatalf("found %v, want %v", got, w)
			}
			if f.Hydra.OwnerLists != lists {
				t.Fatal("the lookup scanned Hydra's list")
			}
			if f.Hydra.Gets-gets != len(noted) {
				t.Fatalf("%d reads of Hydra for %d noted clients: want one each", f.Hydra.Gets-gets, len(noted))
			}
			if after, _, _ := idx.OrgClients(ctx, c.org, 100); c.kept != "" && !slices.Contains(after, c.kept) {
				t.Fatalf("the lookup forgot %s, noted moments ago", c.kept)
			}
		})
	}
	// Ids found gone, once old enough, are forgotten by the lookup itself.
	if ids, _, _ := idx.OrgClients(ctx, org, 100); !slices.Equal(ids, want[:1]) {
		t.Fatalf("the index still holds %v", ids)
	}

	// A store that cannot note the client: nothing is created in Hydra.
	f.Registrar.Orgs = failingIndex{idx}
	n := f.Hydra.Len()
	_, err = f.Register(f.Request(t, nil, nil))
	var down *policy.Unavailable
	if !errors.As(err, &down) || down.Dependency != "store" || f.Hydra.Len() != n {
		t.Fatalf("store down: %v, %d clients (was %d)", err, f.Hydra.Len(), n)
	}
}
