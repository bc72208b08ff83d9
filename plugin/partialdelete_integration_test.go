package plugin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/hydra"
)

// A DELETE that revoked the client's tokens and then could not delete the
// client (Hydra failed the client delete, as when its database restarts): the
// answer says the outcome is not known and to send the DELETE again; the TPP's
// old token is revoked, a new one works (the client is still there), and the
// DELETE sent again is answered 204 and removes the client. This is what the
// fault run's pg-restart showed (issue 31): the TPP's own client, kept because
// the TPP stopped sending the DELETE.
func TestPartialDeleteRetried(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse(env.Hydra.AdminURL)
	var failed atomic.Int32
	forward := httputil.NewSingleHostReverseProxy(u)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/admin/clients/") && failed.Add(1) == 1 {
			http.Error(w, `{"error":"server_error","error_description":"terminating connection due to administrator command"}`, http.StatusInternalServerError)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	o := startObdcr(t, func(c *serverConfig) { c.HydraAdminURL = proxy.URL })
	reg := registerTPP(t, o, sandbox.UK)
	ctx := context.Background()

	res, err := reg.client.Delete(ctx, o.URL, reg.clientID, reg.token)
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := res.JSON()["error_description"].(string)
	if res.Status < 500 || res.Header.Get("Retry-After") == "" || !strings.Contains(desc, "whether the registration was deleted is not known; send the DELETE again") {
		t.Fatalf("the partial delete was answered %d %s", res.Status, res.Body)
	}
	if _, err := hydraAdmin(t).Get(ctx, reg.clientID); err != nil {
		t.Fatalf("the client should still be at Hydra after the failed client delete: %v", err)
	}
	// The old token was revoked before the client delete failed.
	res, err = reg.client.Delete(ctx, o.URL, reg.clientID, reg.token)
	wantUnauthorized(t, res, err, "not active")

	tok, tres, err := reg.client.Token(ctx, env.Hydra.TokenURL(), reg.clientID, "")
	if err != nil {
		t.Fatalf("a new token for the client still at Hydra: %v %v", err, tres)
	}
	res, err = reg.client.Delete(ctx, o.URL, reg.clientID, tok)
	if err != nil || res.Status != http.StatusNoContent {
		t.Fatalf("the DELETE sent again: %v %v", err, res)
	}
	if _, err := hydraAdmin(t).Get(ctx, reg.clientID); err != hydra.ErrNotFound {
		t.Fatalf("the client is at Hydra after the 204: %v", err)
	}
	// And the software can register again.
	res, err = reg.client.Register(ctx, o.URL, request(t, reg.tpp, nil, nil))
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("registering again after the 204: %v %v", err, res)
	}
}
