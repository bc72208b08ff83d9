package au_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/au"
	"github.com/obdcr/obdcr/policy/policytest"
)

var set, del = policytest.Set, policytest.Del

func newFixture(t *testing.T, statuses *au.StatusBook) *policytest.Fixture {
	return policytest.NewFixture(t, sandbox.AU, func(keys policy.TrustStore, replay policy.ReplayCache, jwks string) *policy.Profile {
		return au.New(au.Config{RegisterJWKS: jwks, Keys: keys, Replay: replay, Statuses: statuses})
	})
}

func TestAURules(t *testing.T) {
	type R = policytest.Refusal
	r := func(code policy.Code, mention, rule string) R { return R{Code: code, Mention: mention, Rule: rule} }
	cases := []struct {
		name     string
		ssa, req func(map[string]any)
		want     R
	}{
		{name: "valid", want: R{}},
		{name: "ssa without exp", ssa: del("exp"), want: r(policy.InvalidSoftwareStatement, "exp", policy.RuleSSAClaims)},
		{name: "ssa expired", ssa: set("exp", time.Now().Add(-time.Minute).Unix()), want: r(policy.InvalidSoftwareStatement, "software_statement.exp", policy.RuleSSALifetime)},
		{name: "ssa iss of the UK directory", ssa: set("iss", "OpenBanking Ltd"), want: r(policy.InvalidSoftwareStatement, "OpenBanking Ltd", policy.StepSelect)},
		{name: "iss not software_id", req: set("iss", "x"), want: r(policy.InvalidClientMetadata, "iss", policy.RuleReqIssuer)},
		{name: "aud not the issuer", req: set("aud", "https://other"), want: r(policy.InvalidClientMetadata, "aud", policy.RuleReqAudience)},
		{name: "exp missing", req: del("exp"), want: r(policy.InvalidClientMetadata, "exp", policy.RuleReqLifetime)},
		{name: "iat missing", req: del("iat"), want: r(policy.InvalidClientMetadata, "iat", policy.RuleReqLifetime)},
		{name: "jti missing", req: del("jti"), want: r(policy.InvalidClientMetadata, "jti", policy.RuleReqJTI)},
		{name: "redirect outside ssa", req: set("redirect_uris", []string{"https://x.example/cb"}), want: r(policy.InvalidRedirectURI, "redirect_uris", policy.RuleRedirectURIs)},
		{name: "redirect absent means ssa's", req: del("redirect_uris"), want: R{}},
		{name: "auth method absent means private_key_jwt", req: del("token_endpoint_auth_method"), want: R{}},
		{name: "auth method client_secret_basic", req: set("token_endpoint_auth_method", "client_secret_basic"), want: r(policy.InvalidClientMetadata, "token_endpoint_auth_method", policy.RuleAuthMethod)},
		{name: "auth signing alg RS256", req: set("token_endpoint_auth_signing_alg", "RS256"), want: r(policy.InvalidClientMetadata, "token_endpoint_auth_signing_alg", policy.RuleAuthSigningAlg)},
		{name: "auth signing alg ES256", req: set("token_endpoint_auth_signing_alg", "ES256"), want: R{}},
		{name: "grant types without authorization_code", req: set("grant_types", []string{"client_credentials"}), want: r(policy.InvalidClientMetadata, "authorization_code", policy.RuleGrantTypes)},
		{name: "grant type implicit", req: set("grant_types", []string{"authorization_code", "implicit"}), want: r(policy.InvalidClientMetadata, "implicit", policy.RuleGrantTypes)},
		{name: "response type hybrid retired", req: set("response_types", []string{"code id_token"}), want: r(policy.InvalidClientMetadata, "response_types", policy.RuleResponseTypes)},
		{name: "id token alg missing", req: del("id_token_signed_response_alg"), want: r(policy.InvalidClientMetadata, "id_token_signed_response_alg", "id_token_signed_response_alg")},
		{name: "id token alg RS256", req: set("id_token_signed_response_alg", "RS256"), want: r(policy.InvalidClientMetadata, "id_token_signed_response_alg", "id_token_signed_response_alg")},
		{name: "authorization signed alg missing with code", req: del("authorization_signed_response_alg"), want: r(policy.InvalidClientMetadata, "authorization_signed_response_alg", "authorization_response")},
		{name: "authorization signed alg none", req: set("authorization_signed_response_alg", "none"), want: r(policy.InvalidClientMetadata, "authorization_signed_response_alg", "authorization_response")},
		{name: "authorization enc without alg", req: set("authorization_encrypted_response_enc", "A256GCM"), want: r(policy.InvalidClientMetadata, "authorization_encrypted_response_alg", "authorization_response")},
		{name: "authorization enc alg RSA1_5", req: set("authorization_encrypted_response_alg", "RSA1_5"), want: r(policy.InvalidClientMetadata, "authorization_encrypted_response_alg", "authorization_response")},
		{name: "authorization enc A128GCM", req: func(m map[string]any) {
			m["authorization_encrypted_response_alg"] = "RSA-OAEP"
			m["authorization_encrypted_response_enc"] = "A128GCM"
		}, want: r(policy.InvalidClientMetadata, "authorization_encrypted_response_enc", "authorization_response")},
		{name: "authorization enc RSA-OAEP-256 defaults enc", req: set("authorization_encrypted_response_alg", "RSA-OAEP-256"), want: R{}},
		{name: "id token encryption with code", req: set("id_token_encrypted_response_alg", "RSA-OAEP"), want: r(policy.InvalidClientMetadata, "id_token_encrypted_response_alg", "id_token_encryption")},
		{name: "request object alg RS256", req: set("request_object_signing_alg", "RS256"), want: r(policy.InvalidClientMetadata, "request_object_signing_alg", "request_object_signing_alg")},
		{name: "request object alg absent", req: del("request_object_signing_alg"), want: R{}},
		{name: "application_type native", req: set("application_type", "native"), want: r(policy.InvalidClientMetadata, "application_type", policy.RuleAppType)},
		{name: "application_type absent means web", req: del("application_type"), want: R{}},
		{name: "empty strings are absent", req: func(m map[string]any) {
			for _, k := range []string{"application_type", "request_object_signing_alg", "authorization_encrypted_response_alg", "authorization_encrypted_response_enc", "scope"} {
				m[k] = ""
			}
		}, want: R{}},
		{name: "unknown claims ignored", req: set("x_unknown", []int{1, 2}), want: R{}},
		{name: "software_statement missing", req: del("software_statement"), want: r(policy.InvalidSoftwareStatement, "software_statement", policy.StepSelect)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			_, err := f.Register(f.Request(t, c.ssa, c.req))
			c.want.Check(t, err)
			if c.want.Code != "" && f.Hydra.Len() != 0 {
				t.Errorf("a refused request left a client")
			}
		})
	}
}

// The CDS reference server answers the first problem in a fixed order; a request
// with several gets the earliest class's code.
func TestAUErrorOrder(t *testing.T) {
	cases := []struct {
		name     string
		ssa, req func(map[string]any)
		want     policy.Code
	}{
		{"ssa before request", set("exp", time.Now().Add(-time.Hour).Unix()), set("aud", "https://other"), policy.InvalidSoftwareStatement},
		{"request before redirect", nil, func(m map[string]any) {
			m["aud"] = "https://other"
			m["redirect_uris"] = []string{"https://x.example/cb"}
		}, policy.InvalidClientMetadata},
		{"redirect before other metadata", nil, func(m map[string]any) {
			m["redirect_uris"] = []string{"https://x.example/cb"}
			m["response_types"] = []string{"token"}
		}, policy.InvalidRedirectURI},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			_, err := f.Register(f.Request(t, c.ssa, c.req))
			if e, ok := policy.AsError(err); !ok || e.Code != c.want {
				t.Fatalf("got %v, want %s", err, c.want)
			}
		})
	}
}

func TestAURegistrationContents(t *testing.T) {
	f := newFixture(t, nil)
	f.Settings(func(s *policy.State) {
		s.Settings.Scopes = []string{"openid", "bank:accounts.basic:read", "cdr:registration"}
	})
	reg, err := f.Register(f.Request(t, nil, set("scope", "openid bank:accounts.basic:read bank:transactions:read energy:unknown")))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Hydra.Clients[reg.ClientID]
	// offline_access: the client registered refresh_token, and Hydra issues refresh tokens only for it.
	if c.Scope != "openid bank:accounts.basic:read cdr:registration offline_access" {
		t.Errorf("scope %q: unsupported scopes must be dropped, cdr:registration kept and offline_access allowed", c.Scope)
	}
	if reg.Metadata.Scope != "openid bank:accounts.basic:read cdr:registration" {
		t.Errorf("registered scope %q: offline_access is Hydra's, not the registration's", reg.Metadata.Scope)
	}
	if c.TokenEndpointAuthMethod != "private_key_jwt" || c.RequestObjectSigningAlg != "PS256" || strings.Join(c.ResponseTypes, " ") != "code" {
		t.Errorf("hydra client %+v", c)
	}
	resp, _ := f.Registrar.Response(reg)
	for _, k := range []string{"software_id", "software_roles", "org_id", "org_name", "client_name", "client_description", "client_uri", "jwks_uri", "logo_uri", "revocation_uri", "recipient_base_uri", "software_statement", "client_id_issued_at"} {
		if resp[k] == nil {
			t.Errorf("response lacks %s", k)
		}
	}
	if resp["software_statement"] != reg.SoftwareStatement {
		t.Error("the SSA was not returned unmodified")
	}
	b, _ := json.Marshal(resp)
	if strings.Contains(string(b), "id_token_encrypted_response_alg") || strings.Contains(string(b), "x_unknown") {
		t.Errorf("empty or unknown claims were returned: %s", b)
	}
}

func TestAUMultipleRegistrationsNotAllowed(t *testing.T) {
	s := au.Defaults()
	s.MultipleRegistrations = true
	if err := s.Validate(au.Limits); err == nil || !strings.Contains(err.Error(), "multiple_registrations") {
		t.Fatalf("AU allowed multiple registrations per software_id: %v", err)
	}
}

// register is a fake CDR Register status service.
type register struct {
	*httptest.Server
	mu       sync.Mutex
	products map[string]string
	entities map[string]string
	body     string // served as is when set
	down     bool
	hits     int
	polls    int // product list requests: one per poll
	// hold, when set, keeps each product list request waiting until it is closed,
	// so that a test can see a poll in flight.
	hold chan struct{}
}

func newRegister(t testing.TB) *register {
	r := &register{products: map[string]string{}, entities: map[string]string{}}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		products := strings.HasSuffix(req.URL.Path, "/software-products/status")
		r.mu.Lock()
		hold := r.hold
		if products {
			r.polls++
		}
		r.mu.Unlock()
		if products && hold != nil {
			<-hold
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.hits++
		if req.Header.Get("x-v") == "" {
			http.Error(w, "x-v required", http.StatusBadRequest)
			return
		}
		switch {
		case r.down:
			http.Error(w, "down", http.StatusServiceUnavailable)
		case r.body != "":
			_, _ = w.Write([]byte(r.body))
		case products:
			writeRows(w, "softwareProductId", r.products)
		default:
			writeRows(w, "legalEntityId", r.entities)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

// set changes the Register under its lock.
func (r *register) set(f func(r *register)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *register) pollCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.polls
}

func writeRows(w http.ResponseWriter, idField string, m map[string]string) {
	var rows []map[string]string
	for id, st := range m {
		rows = append(rows, map[string]string{idField: id, "status": st})
	}
	if rows == nil {
		rows = []map[string]string{}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"data": rows, "links": map[string]string{}, "meta": map[string]any{}})
}

func (r *register) book(t testing.TB, removed *[]string) *au.StatusBook {
	return r.bookWith(t, removed, au.StatusBookConfig{})
}

// bookWith is a book on this Register; cfg sets the wait bounds.
func (r *register) bookWith(t testing.TB, removed *[]string, cfg au.StatusBookConfig) *au.StatusBook {
	p := policy.DefaultFetchPolicy()
	p.AllowPrivate = true
	p.TLS = r.Client().Transport.(*http.Transport).TLSClientConfig
	var mu sync.Mutex
	cfg.RegisterURL, cfg.Interval, cfg.Fetch = r.URL, time.Hour, p
	cfg.Remove = func(_ context.Context, id string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		*removed = append(*removed, id)
		return "client-of-" + id, nil
	}
	return au.NewStatusBook(cfg)
}

func TestStatusBook(t *testing.T) {
	ctx := context.Background()
	t.Run("REMOVED product is cleaned up once", func(t *testing.T) {
		reg := newRegister(t)
		reg.products["p1"], reg.products["p2"] = "ACTIVE", "ACTIVE"
		var removed []string
		b := reg.book(t, &removed)
		if err := b.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		reg.mu.Lock()
		reg.products["p2"] = "REMOVED"
		reg.mu.Unlock()
		_ = b.Poll(ctx)
		_ = b.Poll(ctx)
		if strings.Join(removed, ",") != "p2" {
			t.Fatalf("removed %v, want [p2] once", removed)
		}
	})
	for _, fault := range []struct {
		name string
		set  func(r *register)
	}{
		{"Register down", func(r *register) { r.down = true }},
		{"garbage", func(r *register) { r.body = "<html>maintenance</html>" }},
		{"version 1 shape", func(r *register) {
			r.body = `{"softwareProducts":[{"softwareProductId":"p1","softwareProductStatus":"REMOVED"}]}`
		}},
		{"entry without id", func(r *register) { r.body = `{"data":[{"status":"REMOVED"}]}` }},
	} {
		t.Run(fault.name+" keeps the last statuses and removes nothing", func(t *testing.T) {
			reg := newRegister(t)
			reg.products["p1"] = "ACTIVE"
			var removed []string
			b := reg.book(t, &removed)
			_ = b.Poll(ctx)
			reg.mu.Lock()
			fault.set(reg)
			reg.mu.Unlock()
			if err := b.Poll(ctx); err == nil {
				t.Fatal("a faulty poll reported success")
			}
			if b.Product("p1") != "ACTIVE" || len(removed) != 0 {
				t.Fatalf("status %q, removed %v", b.Product("p1"), removed)
			}
		})
	}
	t.Run("an unknown status value keeps the last known", func(t *testing.T) {
		reg := newRegister(t)
		reg.products["p1"] = "ACTIVE"
		var removed []string
		b := reg.book(t, &removed)
		_ = b.Poll(ctx)
		reg.mu.Lock()
		reg.products["p1"] = "FROZEN"
		reg.mu.Unlock()
		_ = b.Poll(ctx)
		if b.Product("p1") != "ACTIVE" {
			t.Fatalf("status %q", b.Product("p1"))
		}
	})
}

func TestAUStatusRule(t *testing.T) {
	reg := newRegister(t)
	var removed []string
	b := reg.book(t, &removed)
	cases := []struct {
		name            string
		product, entity string
		want            policy.Code
		mention         string
	}{
		{"active", "ACTIVE", "ACTIVE", "", ""},
		{"product inactive", "INACTIVE", "ACTIVE", policy.UnapprovedSoftwareStatement, "INACTIVE"},
		{"product removed", "REMOVED", "ACTIVE", policy.UnapprovedSoftwareStatement, "REMOVED"},
		{"entity suspended", "ACTIVE", "SUSPENDED", policy.UnapprovedSoftwareStatement, "SUSPENDED"},
		{"product unknown to the Register", "", "ACTIVE", policy.UnapprovedSoftwareStatement, "not known"},
		{"data recipient unknown to the Register", "ACTIVE", "", policy.UnapprovedSoftwareStatement, "legal_entity_id: data recipient"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, b) // a new software product each time
			reg.mu.Lock()
			if c.product != "" {
				reg.products[f.TPP.SoftwareID] = c.product
			}
			if c.entity != "" {
				reg.entities[f.TPP.LegalEntityID] = c.entity
			}
			reg.mu.Unlock()
			if err := b.Poll(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, err := f.Register(f.Request(t, nil, nil))
			policytest.Refusal{Code: c.want, Mention: c.mention}.Check(t, err)
		})
	}
}

// A dry run judges on what the Register has listed; it makes no poll.
func TestAUStatusDryRun(t *testing.T) {
	reg := newRegister(t)
	var removed []string
	b := reg.book(t, &removed)
	if err := b.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, b)
	polls := reg.pollCount()
	rep, _, err := f.Registrar.DryRun(context.Background(), policy.Submission{JWT: f.Request(t, nil, nil), Certificate: f.Cert})
	if err != nil {
		t.Fatal(err)
	}
	var verdict policy.RuleResult
	for _, r := range rep.Rules {
		if r.Rule == "cdr_register.status" {
			verdict = r
		}
	}
	if verdict.Verdict != policy.Skipped || !strings.Contains(verdict.Message, "not judged: the Register has not listed it yet") {
		t.Errorf("verdict %+v", verdict)
	}
	if reg.pollCount() != polls {
		t.Errorf("the dry run polled the Register")
	}
}

// JARM is required by the CDS and recorded, but Hydra cannot do it: a dry run
// says so on the rule that found it.
func TestAUDryRunFlagsJARM(t *testing.T) {
	f := newFixture(t, nil)
	rep, _, err := f.Registrar.DryRun(context.Background(), policy.Submission{JWT: f.Request(t, nil, nil), Certificate: f.Cert})
	if err != nil || rep.Outcome != "approved" {
		t.Fatalf("%+v %v", rep, err)
	}
	for _, r := range rep.Rules {
		if r.Rule == policy.RuleHydraLimits {
			if r.Verdict != policy.Pass || !strings.Contains(r.Message, "warning: authorization_signed_response_alg (JARM) is recorded but not honoured") {
				t.Fatalf("%+v", r)
			}
			return
		}
	}
	t.Fatalf("no %s verdict in %+v", policy.RuleHydraLimits, rep.Rules)
}

func TestAUOneRegistrationPerSoftwareProduct(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := f.Register(f.Request(t, nil, nil)); err != nil {
		t.Fatal(err)
	}
	_, err := f.Register(f.Request(t, nil, nil))
	policytest.Refusal{Code: policy.InvalidClientMetadata, Mention: "already has a registration", Rule: policy.StepCreate}.Check(t, err)
	if f.Hydra.Len() != 1 {
		t.Fatalf("%d clients for one software product", f.Hydra.Len())
	}
}
