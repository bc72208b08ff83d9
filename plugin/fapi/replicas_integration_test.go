package fapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
)

// TestEdgeTwoReplicas: two replicas on one store. The request is pushed to A,
// the browser starts at B's authorization endpoint, Hydra sends it back to the
// issuer (A) whose callback takes the handle B made, and the code is redeemed
// at B; a request_uri taken on one replica cannot be used on the other.
func TestEdgeTwoReplicas(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "obdcr.db")
	a := startEdge(t, func(e map[string]string) { e["OBDCR_DSN"] = dsn })
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	bEdge := fmt.Sprintf("127.0.0.1:%d", port)
	b := startEdge(t, func(e map[string]string) { e["OBDCR_DSN"] = dsn; e["OBDCR_EDGE_LISTEN"] = bEdge })
	doc := readDoc(t)
	ctx := context.Background()
	tpp, c, clientID := register(t, a, sandbox.AU)
	r := sandbox.AuthorizeRequest{AuthURL: "https://" + bEdge + "/oauth2/auth", Issuer: doc.Issuer, ClientID: clientID,
		PARURL: a.URL + "/oauth2/par", RedirectURI: tpp.RedirectURIs[0], ResponseType: "code",
		Scope: "openid bank:accounts.basic:read", ResponseMode: "jwt"}
	res, err := c.Authorize(ctx, r, env.Sandbox.PKI().Pool())
	if err != nil || res.Response == "" {
		t.Fatalf("PAR on A, authorize on B: %v %+v", err, res)
	}
	p, err := sandbox.OpenJARM(res.Response, doc.keys, doc.Issuer, clientID)
	if err != nil || p.Get("code") == "" || p.Get("state") != res.SentState {
		t.Fatalf("JARM: %v %v", err, p)
	}
	res.Code = p.Get("code")
	if _, err := c.ExchangeCode(ctx, b.URL+"/oauth2/token", clientID, r.RedirectURI, res); err != nil {
		t.Fatalf("redeeming on B: %v", err)
	}
	// A request_uri pushed to A, used at A, refused at B.
	var uri string
	r.AuthURL = doc.Authorization
	first, err := c.Authorize(ctx, withURI(r, &uri), env.Sandbox.PKI().Pool())
	if err != nil || first.Response == "" {
		t.Fatalf("first use on A: %v %+v", err, first)
	}
	again := sandbox.AuthorizeRequest{AuthURL: "https://" + bEdge + "/oauth2/auth", ClientID: clientID, RedirectURI: r.RedirectURI,
		Query: func(q url.Values) { delete(q, "request"); q["request_uri"] = []string{uri} }}
	second, err := c.Authorize(ctx, again, env.Sandbox.PKI().Pool())
	if err != nil || second.PageStatus != http.StatusBadRequest {
		t.Fatalf("the same request_uri on B: %v %+v", err, second)
	}
}

// withURI records the request_uri the browser is sent with.
func withURI(r sandbox.AuthorizeRequest, uri *string) sandbox.AuthorizeRequest {
	r.Query = func(q url.Values) {
		if v := q["request_uri"]; len(v) > 0 {
			*uri = v[0]
		}
	}
	return r
}
