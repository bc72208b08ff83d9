package plugin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"time"
)

// consoleBackend is the console's sign-in and sessions: the admin tokens, and
// the shared store that ends a session on every replica. What the console does
// once signed in goes through the service, as the admin API's calls do.
type consoleBackend struct{ s *Server }

func (b consoleBackend) Authenticate(token string) (string, bool) {
	name := b.s.adminTokenName(token)
	return name, name != ""
}

// EndSession holds the session id in the shared replay store, which every
// replica reads and which forgets it once the session would have expired.
func (b consoleBackend) EndSession(ctx context.Context, id string, until time.Time) error {
	_, err := b.s.store.Claim(ctx, endedSessionKey(id), until)
	return err
}

func (b consoleBackend) SessionEnded(ctx context.Context, id string) (bool, error) {
	return b.s.store.Seen(ctx, endedSessionKey(id))
}

func randomSessionKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand never fails on supported platforms
	return k
}

// endedSessionKey cannot meet a jti's key: those are hex SHA-256 sums.
func endedSessionKey(id string) string { return "console-session-ended:" + id }

func (b consoleBackend) SessionKey() []byte {
	tokens := b.s.adminTokens.Get()
	if len(tokens) == 0 {
		// OBDCR_ADMIN_TOKEN_FILE failed closed. A key made of no token would be
		// a constant anyone can compute; a fresh random one verifies no session.
		return randomSessionKey()
	}
	h := sha256.New()
	h.Write([]byte("obdcr console session\x00"))
	for _, t := range tokens {
		h.Write([]byte(t.name))
		h.Write(t.hash[:])
	}
	return h.Sum(nil)
}

// trustedProxy says whether a request came from OBDCR_TRUSTED_PROXIES.
func (s *Server) trustedProxy(r *http.Request) bool { return s.certs.fromTrustedProxy(r) }
