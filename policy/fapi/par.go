package fapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// RequestURIPrefix starts every request_uri the edge issues (RFC 9126 §2.2).
const RequestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// PARLifetime is a request_uri's: short, as RFC 9126 §2.2 advises and the CDS sets.
const PARLifetime = 60 * time.Second

// HandleStore is the shared single-use store (policy/store.Handles).
type HandleStore interface {
	PutHandle(ctx context.Context, key string, value []byte, until time.Time) error
	TakeHandle(ctx context.Context, key string) ([]byte, bool, error)
	PeekHandle(ctx context.Context, key string) ([]byte, bool, error)
}

// Pushed keeps pushed authorization requests.
type Pushed struct {
	Store HandleStore
	Now   func() time.Time
}

// Push stores a verified request and returns its request_uri.
func (p *Pushed) Push(ctx context.Context, r *AuthRequest) (string, error) {
	id := randomID()
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	if err := p.Store.PutHandle(ctx, parKey(r.ClientID, id), b, p.Now().Add(PARLifetime)); err != nil {
		return "", unavailable(err)
	}
	return RequestURIPrefix + id, nil
}

// parKey names a pushed request under its client too: another client's
// request_uri finds nothing, and so cannot use up the real client's.
func parKey(clientID, id string) string {
	sum := sha256.Sum256([]byte(clientID))
	return "par:" + id + ":" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Pull reads the request a request_uri names, for the client it was pushed by.
// It stays until the authorization is answered (Release), so that a browser
// reloading the page before then is served again (RFC 9126 §4); after that it
// is refused.
func (p *Pushed) Pull(ctx context.Context, c *Client, requestURI string) (*AuthRequest, error) {
	id, ok := strings.CutPrefix(requestURI, RequestURIPrefix)
	if !ok || id == "" || len(id) > 64 {
		return nil, refuse(InvalidRequestURI, "request_uri is not one this server issued")
	}
	b, ok, err := p.Store.PeekHandle(ctx, parKey(c.ID, id))
	if err != nil {
		return nil, unavailable(err)
	}
	if !ok {
		return nil, refuse(InvalidRequestURI, "request_uri is unknown, expired, already used or was pushed by another client")
	}
	var r AuthRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.ClientID != c.ID {
		return nil, refuse(InvalidRequestURI, "request_uri was issued to another client")
	}
	r.PushedID = id
	return &r, nil
}

// unavailable: the shared store failed; the caller may retry. The store's own
// error is not sent: it may name the database.
func unavailable(error) *Error {
	return &Error{Code: TemporarilyUnavailable, Description: "pending authorization requests cannot be stored or read now; try again", Status: 503}
}

// HandleLifetime is how long a browser may take through the bank's login and
// consent before the callback.
const HandleLifetime = 15 * time.Minute

// Hold keeps a request while the browser is at Hydra; the handle is the state
// Hydra sees and returns to the callback.
func (p *Pushed) Hold(ctx context.Context, r *AuthRequest) (string, error) {
	id := randomID()
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	if err := p.Store.PutHandle(ctx, "auth:"+id, b, p.Now().Add(HandleLifetime)); err != nil {
		return "", unavailable(err)
	}
	return id, nil
}

// Release takes a held request, once.
func (p *Pushed) Release(ctx context.Context, handle string) (*AuthRequest, error) {
	if handle == "" || len(handle) > 64 {
		return nil, page(InvalidRequest, "the callback's state is not one this server issued")
	}
	b, ok, err := p.Store.TakeHandle(ctx, "auth:"+handle)
	if err != nil {
		return nil, unavailable(err)
	}
	if !ok {
		return nil, page(InvalidRequest, "this authorization was already answered, or took longer than %s", HandleLifetime)
	}
	var r AuthRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.PushedID != "" {
		// Answered: the request_uri is used up. Were this to fail, it would
		// still expire within PARLifetime.
		_, _, _ = p.Store.TakeHandle(ctx, parKey(r.ClientID, r.PushedID))
	}
	return &r, nil
}

// randomID is 256 bits, base64url: unguessable handles and request_uris.
func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// CodeLifetime bounds how long the edge remembers where a code was sent; Hydra's
// own code lifetime is shorter by default (10 minutes).
const CodeLifetime = 15 * time.Minute

func codeKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return "code:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// NoteCode remembers which client and redirect URI a code was answered to; only
// its hash is stored.
func (p *Pushed) NoteCode(ctx context.Context, code, clientID, redirectURI string) error {
	b, _ := json.Marshal([2]string{clientID, redirectURI})
	if err := p.Store.PutHandle(ctx, codeKey(code), b, p.Now().Add(CodeLifetime)); err != nil {
		return unavailable(err)
	}
	return nil
}

// CheckCode: a code is redeemed by the client it was answered to, with the very
// redirect_uri of its authorization request (RFC 6749 §4.1.3). The record is
// read, not taken: Hydra keeps a code single-use, and a replay must reach it so
// that it revokes what the code gave (RFC 6749 §4.1.2); a request Hydra refuses
// (a wrong code_verifier, Hydra down) leaves the code for the client's retry.
func (p *Pushed) CheckCode(ctx context.Context, code, clientID, redirectURI string) error {
	b, ok, err := p.Store.PeekHandle(ctx, codeKey(code))
	if err != nil {
		return unavailable(err)
	}
	var v [2]string
	if !ok || json.Unmarshal(b, &v) != nil {
		return refuse("invalid_grant", "the code is unknown or expired")
	}
	if v[0] != clientID || v[1] != redirectURI {
		return refuse("invalid_grant", "redirect_uri is not the one the code was issued for, or the code is another client's")
	}
	return nil
}
