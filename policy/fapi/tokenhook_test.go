package fapi

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// hookRequest is Hydra v2.3.0's token hook body, as it sends it, for clientID
// with nonce as the payload's assertion ("" for none).
func hookRequest(t *testing.T, clientID, nonce string) *HookRequest {
	t.Helper()
	payload := `{"client_id":["` + clientID + `"],"grant_type":["authorization_code"]`
	if nonce != "" {
		payload += `,"assertion":["` + nonce + `"]`
	}
	body := `{"session":{"id_token":{"id_token_claims":{"ext":{"acr_note":"x"}},"subject":"u1"},
		"extra":{"consented":"yes","cnf":{"x5t#S256":"old"}},"client_id":"` + clientID + `"},
		"request":{"client_id":"` + clientID + `","grant_types":["authorization_code"],"payload":` + payload + `}}}`
	var r HookRequest
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// TestTokenHook: the hook answers the cnf of the one token request whose nonce
// Hydra forwards, keeping the session's claims (none for a request its profile
// leaves unbound); it refuses (so Hydra issues
// nothing) a request without the edge's nonce, another client's nonce, and one
// the edge has finished with or that expired.
func TestTokenHook(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	mem := store.NewMemoryWithClock(func() time.Time { return now })
	f := &InFlight{Store: mem, Now: func() time.Time { return now }}
	a, b := selfSigned(t, "a"), selfSigned(t, "b")
	// One client, two certificates, both in flight at once.
	na, doneA, err := f.Begin(ctx, "c1", a)
	if err != nil {
		t.Fatal(err)
	}
	nb, doneB, err := f.Begin(ctx, "c1", b)
	if err != nil {
		t.Fatal(err)
	}
	nExp, _, _ := f.Begin(ctx, "c1", a)
	nUnbound, _, _ := f.Begin(ctx, "c1", nil) // bound_tokens false
	for _, tc := range []struct {
		name, client, nonce, want, code string
		before                          func()
	}{
		{name: "first certificate", client: "c1", nonce: na, want: policy.Thumbprint(a)},
		{name: "second certificate, same client", client: "c1", nonce: nb, want: policy.Thumbprint(b)},
		{name: "unbound by its profile: no cnf, not the session's old one", client: "c1", nonce: nUnbound},
		{name: "no nonce: not through the edge", client: "c1", code: AccessDenied},
		{name: "an unknown nonce", client: "c1", nonce: "guessed", code: AccessDenied},
		{name: "another client's nonce", client: "c2", nonce: na, code: AccessDenied},
		{name: "after the edge is done", client: "c1", nonce: nb, code: AccessDenied, before: doneB},
		{name: "expired", client: "c1", nonce: nExp, code: AccessDenied, before: func() { now = now.Add(InFlightLifetime + time.Second) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			s, err := f.Claims(ctx, hookRequest(t, tc.client, tc.nonce))
			if tc.code != "" {
				if fe, ok := err.(*Error); !ok || fe.Code != tc.code || fe.Status != 403 {
					t.Fatalf("got %v %v, want %s 403", s, err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if cnf, ok := s.AccessToken["cnf"]; ok {
					t.Fatalf("an unbound token gets cnf %v", cnf)
				}
			} else if got := s.AccessToken["cnf"].(map[string]any)["x5t#S256"]; got != tc.want {
				t.Fatalf("cnf x5t#S256 %v, want %s", got, tc.want)
			}
			if s.AccessToken["consented"] != "yes" || s.IDToken["acr_note"] != "x" {
				t.Fatalf("the session's own claims are lost: %+v", s)
			}
		})
	}
	doneA()
	if _, ok, _ := mem.Binding(ctx, inFlightKey("c1", na)); ok {
		t.Fatal("an in-flight entry outlived its token request")
	}
}
