package fapi_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/plugin/reload"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

// writeEdgeKey writes a new RSA edge signing key and returns its kid.
func writeEdgeKey(t *testing.T, path string) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	sk, err := pf.NewSigningKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return sk.Public.KeyID()
}

// TestEdgeKeyRotation: rotating OBDCR_EDGE_SIGNING_KEY_FILE leaves a client
// registered before it working at the edge (its code and client_credentials
// grants: Hydra trusts obdcr's assertion key, not the edge key); its JARM
// response is signed with the new key, which the JWKS publishes, together with
// the key it replaced (JARM responses signed just before still verify).
func TestEdgeKeyRotation(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "edge.pem")
	oldKid := writeEdgeKey(t, keyFile)
	o := startEdge(t, func(e map[string]string) { e["OBDCR_EDGE_SIGNING_KEY_FILE"] = keyFile })
	tpp, c, clientID := register(t, o, sandbox.AU)

	newKid := writeEdgeKey(t, keyFile)
	time.Sleep(reload.CheckEvery + 2*reload.SettleFor)
	doc := readDoc(t)
	for _, kid := range []string{newKid, oldKid} {
		if _, ok := doc.keys.LookupKeyID(kid); !ok {
			t.Errorf("the JWKS after rotation lacks %s (new %s, old %s)", kid, newKid, oldKid)
		}
	}
	ctx := context.Background()
	ar := sandbox.AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: clientID, PARURL: doc.PAR,
		RedirectURI: tpp.RedirectURIs[0], ResponseType: "code", Scope: "openid bank:accounts.basic:read", ResponseMode: "jwt"}
	a, err := c.Authorize(ctx, ar, env.Sandbox.PKI().Pool())
	if err != nil || a.Response == "" {
		t.Fatalf("authorization after rotation: %v %+v", err, a)
	}
	msg, err := jws.Parse([]byte(a.Response))
	if err != nil || msg.Signatures()[0].ProtectedHeaders().KeyID() != newKid {
		t.Fatalf("the JARM response is not signed with the new key %s (%v)", newKid, err)
	}
	p, err := sandbox.OpenJARM(a.Response, doc.keys, doc.Issuer, clientID)
	if err != nil || p.Get("code") == "" {
		t.Fatalf("the JARM response: %v %v", p, err)
	}
	a.Code, a.State = p.Get("code"), p.Get("state")
	if _, err := c.ExchangeCode(ctx, doc.Token, clientID, ar.RedirectURI, a); err != nil {
		t.Errorf("an older client's code after rotation: %v", err)
	}
	if _, res, err := c.Token(ctx, doc.Token, clientID, "cdr:registration"); err != nil || res.Status != http.StatusOK {
		t.Errorf("an older client's client_credentials after rotation: %v %+v", err, res)
	}
}
