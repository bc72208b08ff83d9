package plugin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/obdcr/obdcr/plugin/reload"
	pf "github.com/obdcr/obdcr/policy/fapi"
	"github.com/obdcr/obdcr/policy/store"
)

// assertionKeyName is the shared secret holding the key obdcr signs its client
// assertions to Hydra with. It is not the edge signing key: an edge
// registration's Hydra client trusts this key (inline JWKS), and it never
// changes, so rotating OBDCR_EDGE_SIGNING_KEY_FILE (JARM, ID tokens) touches no
// Hydra client. Kept in the store, so every replica signs with the same one.
const assertionKeyName = "edge.hydra-assertion-key"

// assertionKey reads the shared assertion key, generating it (ES256: the
// cheapest signature Hydra accepts for private_key_jwt) on the first start.
func assertionKey(ctx context.Context, secrets store.Secrets) (*pf.SigningKey, error) {
	return storedKey(ctx, secrets, assertionKeyName, "ES256")
}

// idTokenKeyName is the shared secret holding the key in alg that signs hybrid
// ID tokens when the edge signing key is in another alg. A client registers
// id_token_signed_response_alg as Hydra signs (policy.IDTokenSigningAlg), and
// the front-channel ID token must be in that alg too (OIDC Registration §2):
// with an ES256 edge key and Hydra at PS256, it is signed by this key, which
// the edge's JWKS publishes.
func idTokenKeyName(alg string) string { return "edge.id-token-key." + alg }

// idTokenKeys are the stored ID-token keys, one per alg FAPI allows.
func idTokenKeys(ctx context.Context, secrets store.Secrets) ([]*pf.SigningKey, error) {
	var keys []*pf.SigningKey
	for _, alg := range pf.Algs {
		k, err := storedKey(ctx, secrets, idTokenKeyName(alg), alg)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// storedKey reads a shared signing key, generating it in alg (ES256: P-256,
// PS256: RSA 2048) when no replica has yet.
func storedKey(ctx context.Context, secrets store.Secrets, name, alg string) (*pf.SigningKey, error) {
	b, err := secrets.Secret(ctx, name, func() ([]byte, error) {
		var raw any
		var err error
		if alg == "PS256" {
			raw, err = rsa.GenerateKey(rand.Reader, 2048)
		} else {
			raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		if err != nil {
			return nil, err
		}
		k, err := jwk.FromRaw(raw)
		if err != nil {
			return nil, err
		}
		return json.Marshal(k)
	})
	if err != nil {
		return nil, fmt.Errorf("the edge's key %s in the store: %w", name, err)
	}
	k, err := jwk.ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("the edge's key %s in the store: %w", name, err)
	}
	return signingKeyOf(k)
}

// keyGrace is how long a replaced edge signing key stays in the published JWKS.
// What it signed is a front-channel answer: a JARM response (exp 5 minutes,
// never over 10) or a hybrid ID token checked on arrival with its code, and
// Hydra's authorization codes live 10 minutes by default (TTL_AUTH_CODE). After
// 10 minutes nothing signed with the old key can still be usefully verified.
const keyGrace = 10 * time.Minute

// maxRetired bounds the replaced keys remembered: rotating faster than one per
// grace period is an operator's loop, not a rotation.
const maxRetired = 8

// keyRing is OBDCR_EDGE_SIGNING_KEY_FILE's key as it is now, and those it
// replaced on this replica, each published for keyGrace after it was replaced.
type keyRing struct {
	file *reload.Value[*pf.SigningKey]
	now  func() time.Time

	mu      sync.Mutex
	last    *pf.SigningKey
	retired []retiredKey
}

type retiredKey struct {
	key   jwk.Key
	until time.Time
}

func newKeyRing(file *reload.Value[*pf.SigningKey], now func() time.Time) *keyRing {
	if now == nil {
		now = time.Now
	}
	return &keyRing{file: file, now: now, last: file.Get()}
}

// Get is the key to sign with; a change of the file is noted here, so the key
// replaced is retired from the moment nothing signs with it any more.
func (r *keyRing) Get() *pf.SigningKey {
	k := r.file.Get()
	r.mu.Lock()
	defer r.mu.Unlock()
	if k != r.last {
		if r.last.Public.KeyID() != k.Public.KeyID() {
			r.retired = append(r.retired, retiredKey{key: r.last.Public, until: r.now().Add(keyGrace)})
			if len(r.retired) > maxRetired {
				r.retired = r.retired[len(r.retired)-maxRetired:]
			}
		}
		r.last = k
	}
	return k
}

// Published are the public keys to publish: the current one first, then those
// replaced less than keyGrace ago.
func (r *keyRing) Published() []jwk.Key {
	cur := r.Get()
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	out := []jwk.Key{cur.Public}
	seen := map[string]bool{cur.Public.KeyID(): true}
	kept := r.retired[:0]
	for _, k := range r.retired {
		if now.Before(k.until) {
			kept = append(kept, k)
			if !seen[k.key.KeyID()] {
				seen[k.key.KeyID()] = true
				out = append(out, k.key)
			}
		}
	}
	r.retired = kept
	return out
}
