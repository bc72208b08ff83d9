package plugin_test

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
)

// env is the real Hydra and sandbox every integration test here shares.
var env *testenv.Env

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "obdcr-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env, err = testenv.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration environment:", err)
		os.Exit(1)
	}
	code := m.Run()
	env.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

func startObdcr(t *testing.T, mutate func(*serverConfig)) *testenv.Obdcr {
	t.Helper()
	cfg := env.Config()
	if mutate != nil {
		mutate(&cfg)
	}
	o, err := env.StartObdcr(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Stop() })
	return o
}

func hydraAdmin(t *testing.T) *hydra.Admin {
	t.Helper()
	a, err := hydra.NewAdmin(env.Hydra.AdminURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newTPP(t *testing.T, profile string) (*sandbox.TPP, *sandbox.Client) {
	t.Helper()
	tpp, err := env.Sandbox.AddTPP(profile, fmt.Sprintf("T%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sandbox.NewClient(tpp, env.Sandbox.PKI().Pool())
	if err != nil {
		t.Fatal(err)
	}
	return tpp, c
}

func request(t *testing.T, tpp *sandbox.TPP, ssaMut, reqMut func(map[string]any)) string {
	t.Helper()
	now := time.Now()
	ssa, err := env.Sandbox.Authority(tpp.Profile).SSA(tpp, now, ssaMut)
	if err != nil {
		t.Fatal(err)
	}
	req, err := tpp.Request(ssa, env.Issuer(), now, reqMut)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestUKRegistrationEndToEnd(t *testing.T) {
	o := startObdcr(t, nil)
	tpp, c := newTPP(t, sandbox.UK)
	ctx := context.Background()
	res, err := c.Register(ctx, o.URL, request(t, tpp, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusCreated {
		t.Fatalf("status %d: %s", res.Status, res.Body)
	}
	// Sent whole, with its length, never cached (RFC 7591 §3.2.1).
	if res.Header.Get("Content-Length") != strconv.Itoa(len(res.Body)) || res.Header.Get("Cache-Control") != "no-store" ||
		res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v for a %d-byte answer", res.Header, len(res.Body))
	}
	body := res.JSON()
	clientID, _ := body["client_id"].(string)
	if clientID != policy.ClientIDFor("uk", tpp.SoftwareID) {
		t.Fatalf("client_id %q", clientID)
	}
	if _, ok := body["client_id_issued_at"].(float64); !ok {
		t.Errorf("client_id_issued_at is not a number: %v", body["client_id_issued_at"])
	}
	if _, ok := body["client_secret"]; ok {
		t.Error("a private_key_jwt client was given a client_secret")
	}
	if body["software_id"] != tpp.SoftwareID || body["org_id"] != tpp.OrgID || body["software_statement"] == nil {
		t.Errorf("response lacks SSA metadata: %s", res.Body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type %q", ct)
	}

	hc, err := hydraAdmin(t).Get(ctx, clientID)
	if err != nil {
		t.Fatalf("Hydra has no client: %v", err)
	}
	want := map[string][2]string{
		"owner":                           {hc.Owner, tpp.OrgID},
		"jwks_uri":                        {hc.JWKSURI, tpp.JWKSURL},
		"token_endpoint_auth_method":      {hc.TokenEndpointAuthMethod, "private_key_jwt"},
		"token_endpoint_auth_signing_alg": {hc.TokenEndpointAuthSigningAlg, "PS256"},
		"request_object_signing_alg":      {hc.RequestObjectSigningAlg, "PS256"},
		"redirect_uris":                   {strings.Join(hc.RedirectURIs, " "), tpp.RedirectURIs[0]},
		"grant_types":                     {strings.Join(hc.GrantTypes, " "), "authorization_code client_credentials refresh_token"},
		"response_types":                  {strings.Join(hc.ResponseTypes, " "), "code id_token"},
		"scope":                           {hc.Scope, "openid accounts payments offline_access"}, // refresh_token registered
	}
	for name, v := range want {
		if v[0] != v[1] {
			t.Errorf("Hydra %s = %q, want %q", name, v[0], v[1])
		}
	}
	var meta map[string]any
	_ = json.Unmarshal(hc.Metadata, &meta)
	leaf, _ := tpp.Transport()
	if meta["profile"] != "uk" || meta["software_id"] != tpp.SoftwareID || meta["cert_thumbprint"] != policy.Thumbprint(leaf.TLS.Leaf) {
		t.Errorf("Hydra metadata: %v", meta)
	}

	// The client is usable: Hydra issues it a token by private_key_jwt, fetching
	// the TPP's keys from the jwks_uri obdcr registered.
	tok, tres, err := c.Token(ctx, env.Hydra.TokenURL(), clientID, "accounts")
	if err != nil {
		t.Fatalf("client_credentials with private_key_jwt: %v %v", err, tres)
	}
	it, err := hydraAdmin(t).Introspect(ctx, tok)
	if err != nil || !it.Active || it.ClientID != clientID {
		t.Fatalf("introspection: %+v %v", it, err)
	}
}

func TestUKRefusals(t *testing.T) {
	o := startObdcr(t, nil)
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	cases := []struct {
		name    string
		ssa     func(map[string]any)
		req     func(map[string]any)
		forge   bool // SSA signed by the TPP, not the directory
		code    policy.Code
		mention string
	}{
		{name: "SSA not signed by the directory", forge: true, code: policy.InvalidSoftwareStatement, mention: "not a signing key of the directory"},
		{name: "redirect outside the SSA", req: set("redirect_uris", []string{"https://evil.example/cb"}), code: policy.InvalidRedirectURI, mention: "redirect_uris"},
		{name: "organisation revoked", ssa: set("org_status", "Revoked"), code: policy.UnapprovedSoftwareStatement, mention: "org_status"},
		{name: "wrong audience", req: set("aud", "https://other.example"), code: policy.InvalidClientMetadata, mention: "aud"},
		{name: "RS256 id token", req: set("id_token_signed_response_alg", "RS256"), code: policy.InvalidClientMetadata, mention: "id_token_signed_response_alg"},
		{name: "tls_client_auth", req: set("token_endpoint_auth_method", "tls_client_auth"), code: policy.InvalidClientMetadata, mention: "Hydra cannot"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tpp, c := newTPP(t, sandbox.UK)
			var jwt string
			if tc.forge {
				forged, _ := tpp.Signing.Sign(env.Sandbox.Directory.SSAClaims(tpp, time.Now()), nil)
				jwt, _ = tpp.Request(forged, env.Issuer(), time.Now(), nil)
			} else {
				jwt = request(t, tpp, tc.ssa, tc.req)
			}
			res, err := c.Register(context.Background(), o.URL, jwt)
			if err != nil {
				t.Fatal(err)
			}
			body := res.JSON()
			if res.Status != http.StatusBadRequest || body["error"] != string(tc.code) {
				t.Fatalf("got %d %s, want 400 %s", res.Status, res.Body, tc.code)
			}
			if d, _ := body["error_description"].(string); !strings.Contains(d, tc.mention) {
				t.Errorf("description %q does not mention %q", d, tc.mention)
			}
			if _, err := hydraAdmin(t).Get(context.Background(), policy.ClientIDFor("uk", tpp.SoftwareID)); err != hydra.ErrNotFound {
				t.Errorf("a refused registration reached Hydra: %v", err)
			}
		})
	}
}

func TestUKCertificateBinding(t *testing.T) {
	o := startObdcr(t, nil)
	tpp, _ := newTPP(t, sandbox.UK)
	other, err := env.Sandbox.PKI().Client(pkix.Name{OrganizationalUnit: []string{"otherorg"}, CommonName: "othersoftware"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := sandbox.NewClientWithCert(tpp, env.Sandbox.PKI().Pool(), &other.TLS)
	res, err := c.Register(context.Background(), o.URL, request(t, tpp, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusBadRequest || res.JSON()["error"] != "unapproved_software_statement" {
		t.Fatalf("another TPP's certificate: %d %s", res.Status, res.Body)
	}

	t.Run("no client certificate", func(t *testing.T) {
		c := sandbox.NewClientWithCert(tpp, env.Sandbox.PKI().Pool(), nil)
		res, err := c.Register(context.Background(), o.URL, request(t, tpp, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusUnauthorized || res.JSON()["error"] == nil {
			t.Fatalf("no certificate: %d %s", res.Status, res.Body)
		}
	})
	t.Run("certificate from an untrusted CA", func(t *testing.T) {
		rogue, _ := sandbox.NewPKI("rogue")
		leaf, _ := rogue.Client(pkix.Name{OrganizationalUnit: []string{tpp.OrgID}, CommonName: tpp.SoftwareID}, nil)
		c := sandbox.NewClientWithCert(tpp, env.Sandbox.PKI().Pool(), nil)
		// Send the rogue certificate even though the server's CA list does not name its issuer.
		c.HTTP.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &leaf.TLS, nil
		}
		res, err := c.Register(context.Background(), o.URL, request(t, tpp, nil, nil))
		if err == nil {
			t.Fatalf("a certificate from an untrusted CA got an answer: %d %s", res.Status, res.Body)
		}
		// With TLS 1.3 the client may learn of the refusal only as its first write
		// fails: a certificate alert, or the connection reset after it.
		if msg := err.Error(); !strings.Contains(msg, "certificate") && !strings.Contains(msg, "reset") && !strings.Contains(msg, "broken") {
			t.Fatalf("want the TLS handshake refused, got %v", err)
		}
	})
}

func TestUKReplayAndDuplicate(t *testing.T) {
	o := startObdcr(t, nil)
	tpp, c := newTPP(t, sandbox.UK)
	ctx := context.Background()
	jwt := request(t, tpp, nil, nil)
	if res, _ := c.Register(ctx, o.URL, jwt); res.Status != http.StatusCreated {
		t.Fatalf("first: %d %s", res.Status, res.Body)
	}
	res, _ := c.Register(ctx, o.URL, jwt)
	if res.Status != http.StatusBadRequest || res.JSON()["error"] != "invalid_client_metadata" || !strings.Contains(string(res.Body), "jti") {
		t.Fatalf("replay: %d %s", res.Status, res.Body)
	}
	res, _ = c.Register(ctx, o.URL, request(t, tpp, nil, nil))
	if res.Status != http.StatusBadRequest || res.JSON()["error"] != "invalid_client_metadata" || !strings.Contains(string(res.Body), "already has a registration") {
		t.Fatalf("duplicate software_id: %d %s", res.Status, res.Body)
	}
}

func TestRegisterTransportErrors(t *testing.T) {
	o := startObdcr(t, nil)
	tpp, c := newTPP(t, sandbox.UK)
	jwt := request(t, tpp, nil, nil)
	cases := []struct {
		name, ctype string
		body        string
		status      int
	}{
		{"json body", "application/json", `{"software_statement":"x"}`, http.StatusUnsupportedMediaType},
		{"no content type", "", jwt, http.StatusUnsupportedMediaType},
		{"application/jose accepted", "application/jose", jwt, http.StatusCreated},
		{"over 64 KiB", "application/jwt", strings.Repeat("a", 70<<10), http.StatusRequestEntityTooLarge},
		{"not a JWT", "application/jwt", "hello", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, o.URL+"/register", strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			res, err := c.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(res.Body).Decode(&body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", res.StatusCode, tc.status, body)
			}
			if tc.status != http.StatusCreated && body["error"] == nil {
				t.Errorf("no JSON error body: %v", body)
			}
			if res.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
		})
	}
}

func TestHydraUnreachable(t *testing.T) {
	port, _ := testenv.FreePort()
	o := startObdcr(t, func(c *serverConfig) { c.HydraAdminURL = fmt.Sprintf("http://127.0.0.1:%d", port) })
	tpp, c := newTPP(t, sandbox.UK)
	res, err := c.Register(context.Background(), o.URL, request(t, tpp, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusServiceUnavailable || res.JSON()["error"] != "temporarily_unavailable" {
		t.Fatalf("Hydra down: %d %s", res.Status, res.Body)
	}
	if _, err := hydraAdmin(t).Get(context.Background(), policy.ClientIDFor("uk", tpp.SoftwareID)); err != hydra.ErrNotFound {
		t.Fatalf("client left behind: %v", err)
	}
	ready, _ := http.Get(o.AdminURL + "/health/ready")
	if ready.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("ready with Hydra down: %d", ready.StatusCode)
	}
}

func TestHealth(t *testing.T) {
	o := startObdcr(t, nil)
	for _, u := range []string{o.AdminURL + "/health/alive", o.AdminURL + "/health/ready", o.URL + "/health/ready"} {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: env.Sandbox.PKI().Pool()}}}
		res, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", u, res.StatusCode)
		}
	}
}
