package plugin_test

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy/policytest"
)

// registered is a TPP with a registration and a management token.
type registered struct {
	tpp      *sandbox.TPP
	client   *sandbox.Client
	clientID string
	token    string
	created  map[string]any
}

func registerTPP(t *testing.T, o *testenv.Obdcr, profile string) registered {
	t.Helper()
	tpp, c := newTPP(t, profile)
	ctx := context.Background()
	res, err := c.Register(ctx, o.URL, request(t, tpp, nil, nil))
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("register: %v %v", err, res)
	}
	id := res.JSON()["client_id"].(string)
	scope := ""
	if profile == sandbox.AU {
		scope = "cdr:registration"
	}
	tok, tres, err := c.Token(ctx, env.Hydra.TokenURL(), id, scope)
	if err != nil {
		t.Fatalf("token: %v %v", err, tres)
	}
	return registered{tpp: tpp, client: c, clientID: id, token: tok, created: res.JSON()}
}

func wantUnauthorized(t *testing.T, res *sandbox.Response, err error, mention string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusUnauthorized || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("want 401 invalid_token, got %d %q %s", res.Status, res.Header.Get("WWW-Authenticate"), res.Body)
	}
	if !strings.Contains(string(res.Body), mention) {
		t.Errorf("body %s does not mention %q", res.Body, mention)
	}
}

func TestManagementGetPutDelete(t *testing.T) {
	o := startObdcr(t, nil)
	ctx := context.Background()
	for _, profile := range []string{sandbox.UK, sandbox.AU} {
		t.Run(profile, func(t *testing.T) {
			r := registerTPP(t, o, profile)
			reads := func() float64 {
				v, _ := sandbox.MetricSum(o.AdminURL+"/metrics", "obdcr_management_total",
					map[string]string{"profile": profile, "operation": "get", "outcome": "approved"})
				return v
			}
			before := reads()
			res, err := r.client.Get(ctx, o.URL, r.clientID, r.token)
			if err != nil || res.Status != http.StatusOK {
				t.Fatalf("GET: %v %d %s", err, res.Status, res.Body)
			}
			for range 20 {
				if res, err := r.client.Get(ctx, o.URL, r.clientID, r.token); err != nil || res.Status != http.StatusOK {
					t.Fatalf("GET: %v %v", err, res)
				}
			}
			if got := reads() - before; got != 21 {
				t.Errorf("obdcr_management_total counted %v reads, want 21", got)
			}
			if got := res.JSON(); !reflect.DeepEqual(got, r.created) {
				a, _ := json.Marshal(r.created)
				b, _ := json.Marshal(got)
				t.Fatalf("GET differs from the POST answer:\nPOST %s\nGET  %s", a, b)
			}

			// PUT: move to the SSA's second redirect URI
			now := time.Now()
			ssa, _ := env.Sandbox.Authority(profile).SSA(r.tpp, now, nil)
			jwt, _ := r.tpp.Request(ssa, env.Issuer(), now, func(m map[string]any) { m["redirect_uris"] = []string{r.tpp.RedirectURIs[1]} })
			res, err = r.client.Update(ctx, o.URL, r.clientID, r.token, jwt)
			if err != nil || res.Status != http.StatusOK {
				t.Fatalf("PUT: %v %d %s", err, res.Status, res.Body)
			}
			hc, _ := hydraAdmin(t).Get(ctx, r.clientID)
			if strings.Join(hc.RedirectURIs, " ") != r.tpp.RedirectURIs[1] {
				t.Errorf("Hydra redirect_uris after PUT: %v", hc.RedirectURIs)
			}
			if res.JSON()["client_id_issued_at"] != r.created["client_id_issued_at"] {
				t.Errorf("client_id_issued_at changed on PUT")
			}

			// DELETE, then the client and its token are gone
			res, err = r.client.Delete(ctx, o.URL, r.clientID, r.token)
			if err != nil || res.Status != http.StatusNoContent {
				t.Fatalf("DELETE: %v %d %s", err, res.Status, res.Body)
			}
			if _, err := hydraAdmin(t).Get(ctx, r.clientID); err != hydra.ErrNotFound {
				t.Errorf("Hydra still has the client: %v", err)
			}
			res, err = r.client.Get(ctx, o.URL, r.clientID, r.token)
			wantUnauthorized(t, res, err, "not active")

			// every write is in the audit, newest first; reads are counted, not audited
			_, body := adminCall(t, o, http.MethodGet, "/admin/audit?kind=management&software_id="+r.tpp.SoftwareID, "")
			var entries []map[string]any
			_ = json.Unmarshal(body, &entries)
			var outcomes []string
			for _, e := range entries {
				outcomes = append(outcomes, e["outcome"].(string))
			}
			if strings.Join(outcomes, ",") != "deleted,updated" {
				t.Errorf("management audit outcomes %v, want deleted, updated", outcomes)
			}
		})
	}
}

func TestManagementRefusals(t *testing.T) {
	o := startObdcr(t, nil)
	ctx := context.Background()
	a := registerTPP(t, o, sandbox.UK)
	b := registerTPP(t, o, sandbox.UK)

	t.Run("another client's token", func(t *testing.T) {
		res, err := a.client.Get(ctx, o.URL, a.clientID, b.token)
		wantUnauthorized(t, res, err, "not issued to this client")
	})
	t.Run("a client_id that does not exist", func(t *testing.T) {
		res, err := a.client.Get(ctx, o.URL, "00000000-0000-0000-0000-000000000000", a.token)
		wantUnauthorized(t, res, err, "not issued to this client")
	})
	t.Run("a made-up token", func(t *testing.T) {
		res, err := a.client.Get(ctx, o.URL, a.clientID, "ory_at_madeup.token")
		wantUnauthorized(t, res, err, "not active")
	})
	t.Run("no token", func(t *testing.T) {
		res, err := a.client.Get(ctx, o.URL, a.clientID, "")
		if err != nil || res.Status != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%v %d %v", err, res.Status, res.Header)
		}
	})
	t.Run("the right token over another certificate", func(t *testing.T) {
		other, _ := env.Sandbox.PKI().Client(pkix.Name{OrganizationalUnit: []string{a.tpp.OrgID}, CommonName: a.tpp.SoftwareID}, nil)
		c := sandbox.NewClientWithCert(a.tpp, env.Sandbox.PKI().Pool(), &other.TLS)
		res, err := c.Get(ctx, o.URL, a.clientID, a.token)
		wantUnauthorized(t, res, err, "certificate")
	})
	t.Run("a revoked token", func(t *testing.T) {
		c := registerTPP(t, o, sandbox.UK)
		if err := hydraAdmin(t).RevokeTokens(ctx, c.clientID); err != nil {
			t.Fatal(err)
		}
		res, err := c.client.Get(ctx, o.URL, c.clientID, c.token)
		wantUnauthorized(t, res, err, "not active")
	})
	t.Run("PUT with a bad redirect URI leaves the registration intact", func(t *testing.T) {
		before, _ := hydraAdmin(t).Get(ctx, a.clientID)
		jwt := request(t, a.tpp, nil, policytest.Set("redirect_uris", []string{"https://evil.example/cb"}))
		res, err := a.client.Update(ctx, o.URL, a.clientID, a.token, jwt)
		if err != nil || res.Status != http.StatusBadRequest || res.JSON()["error"] != "invalid_redirect_uri" {
			t.Fatalf("%v %d %s", err, res.Status, res.Body)
		}
		after, _ := hydraAdmin(t).Get(ctx, a.clientID)
		if !reflect.DeepEqual(before.RedirectURIs, after.RedirectURIs) || string(before.Metadata) != string(after.Metadata) {
			t.Fatalf("the registration changed: %v -> %v", before.RedirectURIs, after.RedirectURIs)
		}
	})
	t.Run("PUT with another software's SSA", func(t *testing.T) {
		jwt := request(t, b.tpp, nil, nil)
		res, err := a.client.Update(ctx, o.URL, a.clientID, a.token, jwt)
		if err != nil || res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), "software") {
			t.Fatalf("%v %d %s", err, res.Status, res.Body)
		}
	})
	t.Run("a client_id not of the shape this server issues", func(t *testing.T) {
		res, err := a.client.Get(ctx, o.URL, "bank-app", a.token)
		wantUnauthorized(t, res, err, "not one this server issues")
	})
	t.Run("the token of a Hydra client obdcr did not register", func(t *testing.T) {
		id := uuid.NewString()
		native := `{"client_id":"` + id + `","client_secret":"a-secret-of-the-bank-0123456789","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic"}`
		res, err := http.Post(env.Hydra.AdminURL+"/admin/clients", "application/json", strings.NewReader(native))
		if err != nil || res.StatusCode != http.StatusCreated {
			t.Fatalf("%v %v", err, res)
		}
		t.Cleanup(func() { _ = hydraAdmin(t).Delete(context.Background(), id) })
		req, _ := http.NewRequest(http.MethodPost, env.Hydra.TokenURL(), strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, "a-secret-of-the-bank-0123456789")
		res, err = http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("the bank's client's token: %v %v", err, res)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(res.Body).Decode(&tok)
		res.Body.Close()
		got, err := a.client.Get(ctx, o.URL, id, tok.AccessToken)
		wantUnauthorized(t, got, err, "not issued to this client")
	})
	t.Run("PUT of the wrong media type, or too large", func(t *testing.T) {
		for _, tc := range []struct {
			contentType string
			body        []byte
			status      int
		}{
			{"application/json", []byte(`{"redirect_uris":[]}`), http.StatusUnsupportedMediaType},
			{"application/jwt", bytes.Repeat([]byte("a"), 65*1024), http.StatusRequestEntityTooLarge},
		} {
			req, _ := http.NewRequest(http.MethodPut, o.URL+"/register/"+a.clientID, bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			req.Header.Set("Authorization", "Bearer "+a.token)
			res, err := a.client.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Errorf("%s of %d bytes: %d, want %d", tc.contentType, len(tc.body), res.StatusCode, tc.status)
			}
		}
	})
	t.Run("PUT with an SSA of another profile", func(t *testing.T) {
		now := time.Now()
		ssa, _ := env.Sandbox.Authority(sandbox.AU).SSA(a.tpp, now, nil)
		jwt, _ := a.tpp.Request(ssa, env.Issuer(), now, nil)
		res, err := a.client.Update(ctx, o.URL, a.clientID, a.token, jwt)
		if err != nil || res.Status != http.StatusBadRequest || res.JSON()["error"] != "invalid_software_statement" ||
			!strings.Contains(string(res.Body), "registered under the uk profile") {
			t.Fatalf("%v %d %s", err, res.Status, res.Body)
		}
	})
	t.Run("AU token without cdr:registration", func(t *testing.T) {
		r := registerTPP(t, o, sandbox.AU)
		tok, tres, err := r.client.Token(ctx, env.Hydra.TokenURL(), r.clientID, "bank:accounts.basic:read")
		if err != nil {
			t.Fatalf("%v %v", err, tres)
		}
		res, err := r.client.Get(ctx, o.URL, r.clientID, tok)
		if err != nil || res.Status != http.StatusForbidden || res.JSON()["error"] != "insufficient_scope" ||
			!strings.Contains(res.Header.Get("WWW-Authenticate"), "insufficient_scope") {
			t.Fatalf("%v %d %s %v", err, res.Status, res.Body, res.Header)
		}
	})
	t.Run("DELETE switched off", func(t *testing.T) {
		if status, body := adminCall(t, o, http.MethodPut, "/admin/policies/uk", `{"settings":{"allow_delete":false}}`); status != http.StatusOK {
			t.Fatalf("switching DELETE off: %d %s", status, body)
		}
		res, err := a.client.Delete(ctx, o.URL, a.clientID, a.token)
		if err != nil || res.Status != http.StatusMethodNotAllowed {
			t.Fatalf("%v %d %s", err, res.Status, res.Body)
		}
		if _, err := hydraAdmin(t).Get(ctx, a.clientID); err != nil {
			t.Fatalf("the client went: %v", err)
		}
	})
}
