package fapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"time"
)

// JWT access tokens carry cnf (RFC 8705 §3.1) through Hydra's token hook
// (oauth2.token_hook, v2.3.0 oauth2/token_hook.go). Hydra signs the JWT; the
// hook may add claims, but it is sent only Hydra's session and a sanitised
// form: fosite's Request.Sanitize keeps grant_type, response_type, scope,
// client_id and the one parameter Hydra allows, "assertion". The edge is the
// only caller of Hydra's token endpoint for its clients, so it sends a fresh
// random nonce as "assertion" (ignored by every grant but jwt-bearer, which the
// edge never sends on) and records, under it and the client, the certificate
// of this one token request (in the bindings table: a short-lived binding). The hook finds exactly that request's certificate:
// no key by client, nothing to guess, and concurrent requests of one client
// over two certificates never meet.

// HookParam is the form parameter that carries the in-flight nonce to the hook.
const HookParam = "assertion"

// InFlightLifetime bounds an in-flight entry: the edge's call to Hydra ends
// well within it, and the edge deletes the entry when Hydra answers.
const InFlightLifetime = time.Minute

// InFlight keeps the edge's token requests that Hydra is serving, for the hook.
type InFlight struct {
	Store BindingStore
	Now   func() time.Time
}

// inFlightKey names the client too: another client's nonce finds nothing.
func inFlightKey(clientID, nonce string) string {
	sum := sha256.Sum256([]byte(clientID + "\n" + nonce))
	return "hook:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// Begin records that clientID's token request over cert is going to Hydra
// (cert nil: the profile's bound_tokens is false); nonce goes as HookParam,
// and done forgets it once Hydra has answered.
func (f *InFlight) Begin(ctx context.Context, clientID string, cert *x509.Certificate) (nonce string, done func(), err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	nonce = base64.RawURLEncoding.EncodeToString(b)
	x5t := ""
	if cert != nil {
		x5t = Thumbprint(cert)
	}
	if err := f.Store.PutBinding(ctx, inFlightKey(clientID, nonce), x5t, f.Now().Add(InFlightLifetime)); err != nil {
		return "", nil, &Error{Code: TemporarilyUnavailable, Description: "the token request cannot be recorded now; try again", Status: 503}
	}
	return nonce, func() {
		// Detached from the request: a cancelled client must not leave the
		// entry behind (it would expire anyway, within InFlightLifetime).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = f.Store.DeleteBinding(ctx, inFlightKey(clientID, nonce))
	}, nil
}

// HookRequest is the part of Hydra's TokenHookRequest the hook reads.
type HookRequest struct {
	Session struct {
		Extra   map[string]any `json:"extra"`
		IDToken struct {
			Claims struct {
				Extra map[string]any `json:"ext"`
			} `json:"id_token_claims"`
		} `json:"id_token"`
	} `json:"session"`
	Request struct {
		ClientID string              `json:"client_id"`
		Payload  map[string][]string `json:"payload"`
	} `json:"request"`
}

// HookSession is Hydra's TokenHookResponse session. Hydra replaces the
// session's access-token extra claims and the ID token's extra claims with
// what the hook answers (token_hook.go: session.Extra = …AccessToken;
// idTokenClaims.Extra = …IDToken), so both carry what the session had.
type HookSession struct {
	AccessToken map[string]any `json:"access_token"`
	IDToken     map[string]any `json:"id_token"`
}

// Claims answers Hydra's token hook: the session's claims plus cnf with the
// thumbprint of the certificate of the edge's token request that carries the
// nonce. A request without the edge's nonce, or whose nonce names another
// client, is refused (Hydra then issues no token), so no access token leaves
// Hydra without its binding. An unbound request (bound_tokens false) gets the
// session's claims without cnf.
func (f *InFlight) Claims(ctx context.Context, r *HookRequest) (*HookSession, error) {
	nonces := r.Request.Payload[HookParam]
	if len(nonces) != 1 || nonces[0] == "" || len(nonces[0]) > 256 {
		return nil, &Error{Code: AccessDenied, Status: 403,
			Description: "the token request did not come through the edge: no in-flight nonce, so no certificate to bind"}
	}
	x5t, ok, err := f.Store.Binding(ctx, inFlightKey(r.Request.ClientID, nonces[0]))
	if err != nil {
		return nil, &Error{Code: TemporarilyUnavailable, Description: "in-flight token requests cannot be read now", Status: 503}
	}
	if !ok {
		return nil, &Error{Code: AccessDenied, Status: 403, Description: "no in-flight token request of this client at the edge carries this nonce (unknown, expired or another client's)"}
	}
	at := make(map[string]any, len(r.Session.Extra)+1)
	for k, v := range r.Session.Extra {
		at[k] = v
	}
	// A refreshed session keeps the last token's cnf: always replaced.
	delete(at, "cnf")
	if x5t != "" {
		at["cnf"] = map[string]any{"x5t#S256": x5t}
	}
	return &HookSession{AccessToken: at, IDToken: r.Session.IDToken.Claims.Extra}, nil
}
