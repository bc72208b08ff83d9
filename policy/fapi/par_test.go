package fapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/obdcr/obdcr/policy/store"
)

// TestPushedLifetime: a request_uri is refused once its 60 seconds have
// passed, once its authorization was answered (a reload before that is
// served), and for another client (without using it up); a code is
// redeemed by its client, with its redirect URI.
func TestPushedLifetime(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	st := store.NewMemoryWithClock(clock)
	p := &Pushed{Store: st, Now: clock}
	c := &Client{ID: "c1"}
	push := func() string {
		uri, err := p.Push(ctx, &AuthRequest{ClientID: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		return uri
	}
	code := func(err error) string {
		var fe *Error
		if errors.As(err, &fe) {
			return fe.Code
		}
		return ""
	}
	uri := push()
	now = now.Add(PARLifetime)
	if _, err := p.Pull(ctx, c, uri); code(err) != InvalidRequestURI {
		t.Fatalf("an expired request_uri: %v", err)
	}
	now = now.Add(-PARLifetime)
	uri = push()
	if _, err := p.Pull(ctx, &Client{ID: "c2"}, uri); code(err) != InvalidRequestURI {
		t.Fatalf("another client's request_uri: %v", err)
	}
	// Another client's try does not use it up.
	if r, err := p.Pull(ctx, c, uri); err != nil || r.ClientID != "c1" {
		t.Fatalf("the request_uri after another client presented it: %v", err)
	}
	uri = push()
	if r, err := p.Pull(ctx, c, uri); err != nil || r.ClientID != "c1" {
		t.Fatalf("a fresh request_uri: %v", err)
	}
	// A reload before the authorization is answered is served again (RFC 9126 §4).
	r, err := p.Pull(ctx, c, uri)
	if err != nil {
		t.Fatalf("a request_uri again before its authorization was answered: %v", err)
	}
	handle, err := p.Hold(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Release(ctx, handle); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Pull(ctx, c, uri); code(err) != InvalidRequestURI {
		t.Fatalf("a request_uri after its authorization was answered: %v", err)
	}

	if err := p.NoteCode(ctx, "code-1", "c1", "https://tpp/cb"); err != nil {
		t.Fatal(err)
	}
	if err := p.CheckCode(ctx, "code-1", "c1", "https://tpp/other"); code(err) != "invalid_grant" {
		t.Fatalf("a code with another redirect_uri: %v", err)
	}
	if err := p.CheckCode(ctx, "code-1", "c2", "https://tpp/cb"); code(err) != "invalid_grant" {
		t.Fatalf("another client's code: %v", err)
	}
	// Neither used it up; a second redemption goes on to Hydra, which keeps
	// codes single-use and revokes on a replay.
	for i := 0; i < 2; i++ {
		if err := p.CheckCode(ctx, "code-1", "c1", "https://tpp/cb"); err != nil {
			t.Fatalf("a code with its redirect_uri (%d): %v", i+1, err)
		}
	}
	if err := p.CheckCode(ctx, "code-never", "c1", "https://tpp/cb"); code(err) != "invalid_grant" {
		t.Fatalf("a code never issued: %v", err)
	}
	now = now.Add(CodeLifetime)
	if err := p.CheckCode(ctx, "code-1", "c1", "https://tpp/cb"); code(err) != "invalid_grant" {
		t.Fatalf("an expired code record: %v", err)
	}
}
