package plugin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/obdcr/obdcr/plugin/reload"
	"github.com/obdcr/obdcr/policy/store"
)

func writeECKey(t *testing.T, path string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func kids(keys []jwk.Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.KeyID()
	}
	return out
}

// TestKeyRing: after the signing key file changes, the new key signs and is
// published first, the key it replaced stays published for keyGrace and no
// longer, and rotating back and forth never publishes a key twice.
func TestKeyRing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.pem")
	writeECKey(t, path)
	file, err := reload.New(reload.Options{Name: "OBDCR_EDGE_SIGNING_KEY_FILE"}, parseSigningKey, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ring := newKeyRing(file, func() time.Time { return now })
	old := ring.Get().Public.KeyID()
	if got := kids(ring.Published()); len(got) != 1 || got[0] != old {
		t.Fatalf("before rotation: published %v, want [%s]", got, old)
	}
	writeECKey(t, path)
	time.Sleep(reload.CheckEvery + reload.SettleFor + 100*time.Millisecond)
	cur := ring.Get().Public.KeyID()
	if cur == old {
		t.Fatal("the new key file was not applied")
	}
	steps := []struct {
		after time.Duration
		want  []string
	}{
		{0, []string{cur, old}},
		{keyGrace - time.Second, []string{cur, old}},
		{keyGrace + time.Second, []string{cur}},
	}
	start := now
	for _, s := range steps {
		now = start.Add(s.after)
		if got := kids(ring.Published()); len(got) != len(s.want) || got[0] != s.want[0] || (len(got) == 2 && got[1] != s.want[1]) {
			t.Errorf("%s after rotation: published %v, want %v", s.after, got, s.want)
		}
	}
}

// TestAssertionKey: the assertion key is made once and every replica of one
// store reads the same one, whatever the edge signing key is.
func TestAssertionKey(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "o.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := assertionKey(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	b, err := assertionKey(ctx, st)
	if err != nil || a.Public.KeyID() != b.Public.KeyID() || a.Alg != "ES256" {
		t.Fatalf("two reads: %s and %s (%s, %v)", a.Public.KeyID(), b.Public.KeyID(), a.Alg, err)
	}
	if _, err := a.Sign(map[string]any{"iss": "c"}); err != nil {
		t.Fatalf("the stored key does not sign: %v", err)
	}
}
