package uk_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/policytest"
	"github.com/obdcr/obdcr/policy/uk"
)

const issuer = policytest.Issuer

type fixture = policytest.Fixture

func newFixture(t *testing.T) *fixture {
	return policytest.NewFixture(t, sandbox.UK, func(keys policy.TrustStore, replay policy.ReplayCache, jwks string) *policy.Profile {
		return uk.New(uk.Config{DirectoryJWKS: jwks, Keys: keys, Replay: replay})
	})
}

func TestUKRules(t *testing.T) {
	type tc struct {
		name   string
		ssa    func(map[string]any)
		req    func(map[string]any)
		cert   func(f *fixture) *x509.Certificate
		code   policy.Code // "" means approved
		claim  string      // the claim the description must name
		rule   string
		mutate func(f *fixture) // before the request
	}
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	otherCert := func(f *fixture) *x509.Certificate {
		l, err := f.PKI.Client(pkix.Name{OrganizationalUnit: []string{"someoneelse"}, CommonName: "x"}, nil)
		if err != nil {
			panic(err)
		}
		return l.TLS.Leaf
	}
	cases := []tc{
		{name: "valid request", code: ""},
		{name: "certificate-bound tokens asked for", req: set("tls_client_certificate_bound_access_tokens", true), code: policy.InvalidClientMetadata, claim: "tls_client_certificate_bound_access_tokens", rule: policy.RuleHydraLimits},
		{name: "certificate-bound tokens false", req: set("tls_client_certificate_bound_access_tokens", false), code: ""},
		{name: "PAR required", req: set("require_pushed_authorization_requests", true), code: policy.InvalidClientMetadata, claim: "require_pushed_authorization_requests", rule: policy.RuleHydraLimits},
		{name: "ID-token encryption", req: set("id_token_encrypted_response_alg", "RSA-OAEP"), code: policy.InvalidClientMetadata, claim: "id_token_encrypted_response_alg", rule: policy.RuleHydraLimits},
		{name: "client_uri javascript", req: set("client_uri", "javascript:alert(document.domain)//"), code: policy.InvalidClientMetadata, claim: "client_uri", rule: policy.RuleClientText},
		{name: "client_uri http", req: set("client_uri", "http://tpp.example"), code: policy.InvalidClientMetadata, claim: "client_uri", rule: policy.RuleClientText},
		{name: "client_uri https", req: set("client_uri", "https://tpp.example/about"), code: ""},
		{name: "logo_uri javascript where the SSA has one: the SSA's is used", req: set("logo_uri", "javascript:alert(2)"), code: ""},
		{name: "logo_uri javascript where the SSA has none", ssa: del("software_logo_uri"), req: set("logo_uri", "javascript:alert(2)"), code: policy.InvalidClientMetadata, claim: "logo_uri", rule: policy.RuleClientText},
		{name: "tos_uri data where the SSA has none", ssa: del("software_tos_uri"), req: set("tos_uri", "data:text/html,<script>x</script>"), code: policy.InvalidClientMetadata, claim: "tos_uri", rule: policy.RuleClientText},
		{name: "contacts script", req: set("contacts", []string{"<script>alert(1)</script>"}), code: policy.InvalidClientMetadata, claim: "contacts", rule: policy.RuleClientText},
		{name: "contacts with a display name", req: set("contacts", []string{"Ops <ops@tpp.example>"}), code: policy.InvalidClientMetadata, claim: "contacts", rule: policy.RuleClientText},
		{name: "contacts e-mail", req: set("contacts", []string{"ops@tpp.example", "security@tpp.example"}), code: ""},
		{name: "contacts, eleven of them", req: set("contacts", slices.Repeat([]string{"ops@tpp.example"}, 11)), code: policy.InvalidClientMetadata, claim: "more than 10 entries", rule: policy.RuleClientText},
		{name: "client_uri with user information", req: set("client_uri", "https://admin:pw@tpp.example/"), code: policy.InvalidClientMetadata, claim: "user information", rule: policy.RuleClientText},
		{name: "client_uri over 1024 bytes", req: set("client_uri", "https://tpp.example/"+strings.Repeat("a", 1024)), code: policy.InvalidClientMetadata, claim: "longer than 1024 bytes", rule: policy.RuleClientText},
		{name: "client_name forged where the SSA names the software: the SSA's is used", req: set("client_name", "Barclays Bank (official)\n"), code: ""},
		{name: "client_name with a control character where the SSA has none", ssa: del("software_client_name"), req: set("client_name", "Acme\x1b[31m"), code: policy.InvalidClientMetadata, claim: "client_name", rule: policy.RuleClientText},
		{name: "client_name too long where the SSA has none", ssa: del("software_client_name"), req: set("client_name", strings.Repeat("a", 256)), code: policy.InvalidClientMetadata, claim: "client_name", rule: policy.RuleClientText},
		{name: "ssa unknown issuer", ssa: set("iss", "Evil Directory"), code: policy.InvalidSoftwareStatement, claim: "software_statement", rule: policy.StepSelect},
		{name: "ssa expired by max age", ssa: set("iat", time.Now().Add(-48*time.Hour).Unix()), code: policy.InvalidSoftwareStatement, claim: "software_statement.iat", rule: policy.RuleSSALifetime},
		{name: "ssa iat in future", ssa: set("iat", time.Now().Add(time.Hour).Unix()), code: policy.InvalidSoftwareStatement, claim: "software_statement.iat", rule: policy.RuleSSALifetime},
		{name: "ssa nbf in future", ssa: set("nbf", time.Now().Add(2*time.Hour).Unix()), code: policy.InvalidSoftwareStatement, claim: "software_statement.nbf", rule: policy.RuleSSALifetime},
		{name: "ssa without software_id", ssa: del("software_id"), code: policy.InvalidSoftwareStatement, claim: "software_statement.software_id", rule: policy.RuleSSAClaims},
		{name: "ssa without iat", ssa: del("iat"), code: policy.InvalidSoftwareStatement, claim: "software_statement.iat", rule: policy.RuleSSAClaims},
		{name: "ssa naming no software JWKS", ssa: del("software_jwks_endpoint"), code: policy.InvalidSoftwareStatement, claim: "names no JWKS", rule: policy.RuleSSAClaims},
		{name: "ssa roles of wrong type", ssa: set("software_roles", 7), code: policy.InvalidSoftwareStatement, claim: "software_statement.software_roles", rule: policy.RuleSSAClaims},
		{name: "ssa software_version as number decodes", ssa: set("software_version", 2.1), code: ""},
		{name: "org revoked", ssa: set("org_status", "Revoked"), code: policy.UnapprovedSoftwareStatement, claim: "org_status", rule: "ssa.org_status"},
		{name: "org active in lower case", ssa: set("org_status", "active"), code: ""},
		{name: "iss not software_id", req: set("iss", "someoneelse"), code: policy.InvalidClientMetadata, claim: "iss", rule: policy.RuleReqIssuer},
		{name: "iss missing", req: del("iss"), code: policy.InvalidClientMetadata, claim: "iss", rule: policy.RuleReqIssuer},
		{name: "aud org id accepted", req: set("aud", "0015800001041RHAAY"), code: ""},
		{name: "aud as array accepted", req: set("aud", []string{"x", issuer}), code: ""},
		{name: "aud wrong", req: set("aud", "https://other.bank"), code: policy.InvalidClientMetadata, claim: "aud", rule: policy.RuleReqAudience},
		{name: "aud missing", req: del("aud"), code: policy.InvalidClientMetadata, claim: "aud", rule: policy.RuleReqAudience},
		{name: "exp missing", req: del("exp"), code: policy.InvalidClientMetadata, claim: "exp", rule: policy.RuleReqLifetime},
		{name: "exp before iat", req: set("exp", time.Now().Add(-time.Second).Unix()), code: policy.InvalidClientMetadata, claim: "must be after iat", rule: policy.RuleReqLifetime},
		{name: "a request signed over request_max_age ago", req: func(m map[string]any) {
			m["iat"], m["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(time.Minute).Unix()
		}, code: policy.InvalidClientMetadata, claim: "accepts requests up to 1h0m0s old", rule: policy.RuleReqLifetime},
		{name: "expired", req: set("exp", time.Now().Add(-time.Minute).Unix()), code: policy.InvalidClientMetadata, claim: "exp", rule: policy.RuleReqLifetime},
		{name: "iat in future", req: set("iat", time.Now().Add(10*time.Minute).Unix()), code: policy.InvalidClientMetadata, claim: "iat", rule: policy.RuleReqLifetime},
		{name: "nbf in future", req: set("nbf", time.Now().Add(time.Hour).Unix()), code: policy.InvalidClientMetadata, claim: "nbf", rule: policy.RuleReqLifetime},
		{name: "iat as string", req: set("iat", "yesterday"), code: policy.InvalidClientMetadata, claim: "iat", rule: policy.StepSelect},
		{name: "jti missing", req: del("jti"), code: policy.InvalidClientMetadata, claim: "jti", rule: policy.RuleReqJTI},
		{name: "software_id differs", req: set("software_id", "other"), code: policy.InvalidClientMetadata, claim: "software_id", rule: policy.RuleReqSoftwareID},
		{name: "transport cert of someone else", cert: otherCert, code: policy.UnapprovedSoftwareStatement, claim: "transport certificate", rule: policy.RuleTransportCert},
		{name: "redirect not in ssa", req: set("redirect_uris", []string{"https://evil.example/cb"}), code: policy.InvalidRedirectURI, claim: "redirect_uris", rule: policy.RuleRedirectURIs},
		{name: "redirect http", req: set("redirect_uris", []string{"http://acme.example.com/callback"}), code: policy.InvalidRedirectURI, claim: "https", rule: policy.RuleRedirectURIs},
		{name: "redirect localhost", ssa: set("software_redirect_uris", []string{"https://localhost/cb"}), req: set("redirect_uris", []string{"https://localhost/cb"}), code: policy.InvalidRedirectURI, claim: "localhost", rule: policy.RuleRedirectURIs},
		{name: "redirect fragment", req: set("redirect_uris", []string{"https://acme.example.com/callback#x"}), code: policy.InvalidRedirectURI, claim: "fragment", rule: policy.RuleRedirectURIs},
		{name: "redirect absent means ssa's", req: del("redirect_uris"), code: ""},
		{name: "redirect absent and the SSA lists none", ssa: set("software_redirect_uris", []string{}), req: del("redirect_uris"), code: policy.InvalidRedirectURI, claim: "none requested", rule: policy.RuleRedirectURIs},
		{name: "redirect too long", req: set("redirect_uris", []string{"https://acme.example.com/" + strings.Repeat("a", 300)}), code: policy.InvalidRedirectURI, claim: "longer than", rule: policy.RuleRedirectURIs},
		{name: "redirect without a host", req: set("redirect_uris", []string{"https:///callback"}), code: policy.InvalidRedirectURI, claim: "must name a host", rule: policy.RuleRedirectURIs},
		{name: "redirect not a URI", req: set("redirect_uris", []string{"https://acme.example.com/%zz"}), code: policy.InvalidRedirectURI, claim: "is not a URI", rule: policy.RuleRedirectURIs},
		{name: "redirect with credentials", req: set("redirect_uris", []string{"https://user:pw@acme.example.com/callback"}), code: policy.InvalidRedirectURI, claim: "credentials", rule: policy.RuleRedirectURIs},
		{name: "auth method missing", req: del("token_endpoint_auth_method"), code: policy.InvalidClientMetadata, claim: "token_endpoint_auth_method", rule: policy.RuleAuthMethod},
		{name: "tls_client_auth explained", req: set("token_endpoint_auth_method", "tls_client_auth"), code: policy.InvalidClientMetadata, claim: "Hydra cannot authenticate", rule: policy.RuleAuthMethod},
		{name: "client_secret_basic not allowed by default", req: set("token_endpoint_auth_method", "client_secret_basic"), code: policy.InvalidClientMetadata, claim: "token_endpoint_auth_method", rule: policy.RuleAuthMethod},
		{name: "auth signing alg RS256", req: set("token_endpoint_auth_signing_alg", "RS256"), code: policy.InvalidClientMetadata, claim: "token_endpoint_auth_signing_alg", rule: policy.RuleAuthSigningAlg},
		{name: "auth signing alg missing", req: del("token_endpoint_auth_signing_alg"), code: policy.InvalidClientMetadata, claim: "token_endpoint_auth_signing_alg", rule: policy.RuleAuthSigningAlg},
		{name: "subject dn without tls_client_auth", req: set("tls_client_auth_subject_dn", "CN=x"), code: policy.InvalidClientMetadata, claim: "tls_client_auth_subject_dn", rule: policy.RuleTLSClientAuth},
		{name: "grant types missing", req: del("grant_types"), code: policy.InvalidClientMetadata, claim: "grant_types", rule: policy.RuleGrantTypes},
		{name: "grant implicit", req: set("grant_types", []string{"implicit"}), code: policy.InvalidClientMetadata, claim: "grant_types", rule: policy.RuleGrantTypes},
		{name: "response type token", req: set("response_types", []string{"token"}), code: policy.InvalidClientMetadata, claim: "response_types", rule: policy.RuleResponseTypes},
		{name: "response type code allowed by default", req: set("response_types", []string{"code"}), code: ""},
		{name: "client_credentials alone needs no response type", req: func(m map[string]any) {
			m["grant_types"] = []string{"client_credentials"}
			delete(m, "response_types")
		}, code: ""},
		{name: "a signing alg for client_secret_basic", mutate: func(f *fixture) {
			f.Settings(func(st *policy.State) {
				st.Settings.TokenEndpointAuthMethods = []string{"private_key_jwt", "client_secret_basic"}
			})
		}, req: set("token_endpoint_auth_method", "client_secret_basic"), code: policy.InvalidClientMetadata, claim: "applies only to private_key_jwt", rule: policy.RuleAuthSigningAlg},
		{name: "response types without code grant", req: func(m map[string]any) { m["grant_types"] = []string{"client_credentials"} }, code: policy.InvalidClientMetadata, claim: "authorization_code", rule: policy.RuleResponseTypes},
		{name: "scope beyond roles", req: set("scope", "openid fundsconfirmations"), code: policy.InvalidClientMetadata, claim: "scope", rule: "scope"},
		{name: "scope absent means roles'", req: del("scope"), code: ""},
		{name: "application_type missing", req: del("application_type"), code: policy.InvalidClientMetadata, claim: "application_type", rule: policy.RuleAppType},
		{name: "application_type other", req: set("application_type", "desktop"), code: policy.InvalidClientMetadata, claim: "application_type", rule: policy.RuleAppType},
		{name: "id token alg RS256", req: set("id_token_signed_response_alg", "RS256"), code: policy.InvalidClientMetadata, claim: "id_token_signed_response_alg", rule: "id_token_signed_response_alg"},
		{name: "id token alg missing", req: del("id_token_signed_response_alg"), code: policy.InvalidClientMetadata, claim: "id_token_signed_response_alg", rule: "id_token_signed_response_alg"},
		{name: "request object alg none", req: set("request_object_signing_alg", "none"), code: policy.InvalidClientMetadata, claim: "request_object_signing_alg", rule: "request_object_signing_alg"},
		{name: "request object alg ES256 ok", req: set("request_object_signing_alg", "ES256"), code: ""},
		{name: "software_statement missing", req: del("software_statement"), code: policy.InvalidSoftwareStatement, claim: "software_statement", rule: policy.StepSelect},
		{name: "software_statement not a JWT", req: set("software_statement", "my-ssa"), code: policy.InvalidSoftwareStatement, claim: "software_statement", rule: policy.StepSelect},
		{name: "software_statement claims not JSON", req: set("software_statement", "eyJhbGciOiJQUzI1NiIsImtpZCI6ImsifQ.bm90IGpzb24.c2ln"), code: policy.InvalidSoftwareStatement, claim: "software_statement", rule: policy.StepSelect},
		{name: "unknown claims ignored", req: set("x_vendor", map[string]any{"a": 1}), code: ""},
		{name: "profile switched off", mutate: func(f *fixture) {
			st, _ := f.State.State(context.Background(), "uk")
			st.Enabled = false
			_ = f.State.Put(context.Background(), "uk", st)
		}, code: policy.UnapprovedSoftwareStatement, claim: "switched off", rule: policy.StepSelect},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if c.mutate != nil {
				c.mutate(f)
			}
			cert := f.Cert
			if c.cert != nil {
				cert = c.cert(f)
			}
			reg, _, err := f.Registrar.Register(context.Background(), policy.Submission{JWT: f.Request(t, c.ssa, c.req), Certificate: cert})
			policytest.Refusal{Code: c.code, Mention: c.claim, Rule: c.rule}.Check(t, err)
			if c.code == "" {
				if f.Hydra.Len() != 1 || reg.ClientID == "" {
					t.Fatalf("no client created")
				}
				return
			}
			if f.Hydra.Len() != 0 {
				t.Errorf("a refused request left %d clients in Hydra", f.Hydra.Len())
			}
		})
	}
}

func TestUKRegistrationContents(t *testing.T) {
	f := newFixture(t)
	reg, _, err := f.Registrar.Register(context.Background(), policy.Submission{JWT: f.Request(t, nil, func(m map[string]any) { delete(m, "scope") }), Certificate: f.Cert})
	if err != nil {
		t.Fatal(err)
	}
	c := f.Hydra.Clients[reg.ClientID]
	checks := map[string][2]string{
		"client_id":                  {c.ID, policy.ClientIDFor("uk", f.TPP.SoftwareID)},
		"owner":                      {c.Owner, f.TPP.OrgID},
		"jwks_uri":                   {c.JWKSURI, f.TPP.JWKSURL},
		"token_endpoint_auth_method": {c.TokenEndpointAuthMethod, "private_key_jwt"},
		"request_object_signing_alg": {c.RequestObjectSigningAlg, "PS256"},
		"scope":                      {c.Scope, "openid accounts payments offline_access"}, // refresh_token registered
		"registered scope":           {reg.Metadata.Scope, "openid accounts payments"},
		"redirect":                   {strings.Join(c.RedirectURIs, " "), f.TPP.RedirectURIs[0]},
		"client_name":                {c.Name, "Acme app"},
	}
	for name, v := range checks {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", name, v[0], v[1])
		}
	}
	back, err := policy.FromHydra(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if back.CertThumbprint != policy.Thumbprint(f.Cert) || back.SoftwareID != f.TPP.SoftwareID || back.Profile != "uk" {
		t.Errorf("metadata record lost: %+v", back)
	}
	resp, _ := f.Registrar.Response(reg)
	for _, k := range []string{"client_id", "client_id_issued_at", "software_statement", "software_roles", "org_name", "software_jwks_endpoint"} {
		if _, ok := resp[k]; !ok {
			t.Errorf("response lacks %s", k)
		}
	}
	if _, ok := resp["client_secret"]; ok {
		t.Error("a private_key_jwt client got a client_secret")
	}
}

func TestUKReplayAndDuplicate(t *testing.T) {
	f := newFixture(t)
	req := f.Request(t, nil, nil)
	if _, _, err := f.Registrar.Register(context.Background(), policy.Submission{JWT: req, Certificate: f.Cert}); err != nil {
		t.Fatal(err)
	}
	_, _, err := f.Registrar.Register(context.Background(), policy.Submission{JWT: req, Certificate: f.Cert})
	if e, ok := policy.AsError(err); !ok || e.Code != policy.InvalidClientMetadata || !strings.Contains(e.Description, "has been used already") || e.Rule != policy.RuleReqJTI {
		t.Fatalf("replay: %v", err)
	}
	// A dry run claims nothing, so the rule itself looks, and names the jti.
	rep, _, err := f.Registrar.DryRun(context.Background(), policy.Submission{JWT: req, Certificate: f.Cert})
	jti := slices.IndexFunc(rep.Rules, func(r policy.RuleResult) bool { return r.Rule == policy.RuleReqJTI })
	if err != nil || jti < 0 || rep.Rules[jti].Verdict != policy.Fail || !strings.Contains(rep.Rules[jti].Message, "has been used already") {
		t.Fatalf("dry run of a used jti: %+v %v", rep.Rules, err)
	}
	_, _, err = f.Registrar.Register(context.Background(), policy.Submission{JWT: f.Request(t, nil, nil), Certificate: f.Cert})
	if e, ok := policy.AsError(err); !ok || e.Code != policy.InvalidClientMetadata || !strings.Contains(e.Description, "software_id") || e.Rule != policy.StepCreate {
		t.Fatalf("duplicate: %v", err)
	}
	if f.Hydra.Len() != 1 {
		t.Fatalf("%d clients", f.Hydra.Len())
	}
}

func TestUKJOSEHygiene(t *testing.T) {
	f := newFixture(t)
	ssa, _ := f.Authority.SSA(f.TPP, f.Now, nil)
	claims := f.TPP.RequestClaims(ssa, issuer, f.Now)
	cases := []struct {
		name    string
		headers map[string]any
		want    string
	}{
		{"jku", map[string]any{"jku": "https://evil.example/jwks"}, "jku"},
		{"x5u", map[string]any{"x5u": "https://evil.example/cert"}, "x5u"},
		{"crit", map[string]any{"crit": []string{"exp"}, "exp": 1}, "crit"},
		{"no kid", map[string]any{"kid": ""}, "kid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := f.TPP.Signing.Sign(claims, c.headers)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = f.Registrar.Register(context.Background(), policy.Submission{JWT: []byte(req), Certificate: f.Cert})
			e, ok := policy.AsError(err)
			if !ok || e.Code != policy.InvalidClientMetadata || !strings.Contains(e.Description, c.want) || e.Rule != policy.RuleReqHeader {
				t.Fatalf("got %v (rule %v)", err, e)
			}
		})
	}
	t.Run("ssa signed by the TPP", func(t *testing.T) {
		forged, _ := f.TPP.Signing.Sign(f.Authority.SSAClaims(f.TPP, f.Now), nil)
		req, _ := f.TPP.Request(forged, issuer, f.Now, nil)
		_, _, err := f.Registrar.Register(context.Background(), policy.Submission{JWT: []byte(req), Certificate: f.Cert})
		if e, ok := policy.AsError(err); !ok || e.Code != policy.InvalidSoftwareStatement || e.Rule != policy.RuleSSASignature {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("request signed by another key", func(t *testing.T) {
		other, _ := sandbox.NewKey("PS256", f.TPP.Signing.KID)
		req, _ := other.Sign(claims, nil)
		_, _, err := f.Registrar.Register(context.Background(), policy.Submission{JWT: []byte(req), Certificate: f.Cert})
		if e, ok := policy.AsError(err); !ok || e.Code != policy.InvalidClientMetadata || e.Rule != policy.RuleReqSignature {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unsecured alg none", func(t *testing.T) {
		// header {"alg":"none","kid":"k"} with the real claims and no signature
		req := "eyJhbGciOiJub25lIiwia2lkIjoiayJ9." + b64(t, claims) + "."
		_, _, err := f.Registrar.Register(context.Background(), policy.Submission{JWT: []byte(req), Certificate: f.Cert})
		if e, ok := policy.AsError(err); !ok || e.Code != policy.InvalidClientMetadata {
			t.Fatalf("got %v", err)
		}
	})
	if f.Hydra.Len() != 0 {
		t.Fatal("hostile requests created clients")
	}
}

func TestHydraFailures(t *testing.T) {
	cases := []struct {
		name       string
		fail       error
		before     bool // Hydra fails before it committed the client
		seedOther  bool // another request's client already holds the id
		wantCode   policy.Code
		wantDown   bool
		wantLeft   int
		wantStatus string
	}{
		{name: "hydra refuses the metadata", fail: &hydra.RejectedError{Message: "bad uri"}, before: true, wantCode: policy.InvalidClientMetadata},
		{name: "hydra 500 before commit", fail: &hydra.UnavailableError{Status: 500, Err: errors.New("boom")}, before: true, wantDown: true},
		{name: "timeout after commit is compensated", fail: &hydra.UnavailableError{Timeout: true, Err: errors.New("timeout")}, wantDown: true},
		{name: "compensation spares another request's client", fail: &hydra.UnavailableError{Timeout: true, Err: errors.New("timeout")}, before: true, seedOther: true, wantDown: true, wantLeft: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if c.seedOther {
				f.Hydra.Clients[policy.ClientIDFor("uk", f.TPP.SoftwareID)] = hydra.Client{ID: policy.ClientIDFor("uk", f.TPP.SoftwareID), Metadata: []byte(`{"obdcr":1,"request_jti":"other"}`)}
			}
			f.Hydra.FailCreate, f.Hydra.FailBefore = c.fail, c.before
			_, _, err := f.Registrar.Register(context.Background(), policy.Submission{JWT: f.Request(t, nil, nil), Certificate: f.Cert})
			var down *policy.Unavailable
			switch {
			case c.wantDown:
				if !errors.As(err, &down) || down.Dependency != "hydra" {
					t.Fatalf("want hydra unavailable, got %v", err)
				}
			default:
				if e, ok := policy.AsError(err); !ok || e.Code != c.wantCode || !strings.Contains(e.Description, "bad uri") {
					t.Fatalf("want %s, got %v", c.wantCode, err)
				}
			}
			if f.Hydra.Len() != c.wantLeft {
				t.Fatalf("%d clients left in Hydra, want %d", f.Hydra.Len(), c.wantLeft)
			}
		})
	}
}

// RFC 7592 §2.2: an update Hydra refuses or cannot take leaves the registration
// exactly as it was, and the TPP is told which: its metadata (400, with Hydra's
// words), Hydra down (503), or the client gone meanwhile.
func TestUpdateFailuresKeepTheRegistration(t *testing.T) {
	cases := []struct {
		name     string
		fail     error
		deleted  bool // an admin deleted the client between the TPP's proof and the update
		check    func(error) bool
		wantKept bool
	}{
		{name: "hydra refuses the metadata", fail: &hydra.RejectedError{Message: "bad uri"}, wantKept: true, check: func(err error) bool {
			e, ok := policy.AsError(err)
			return ok && e.Code == policy.InvalidClientMetadata && strings.Contains(e.Description, "bad uri")
		}},
		{name: "hydra answers 500", fail: &hydra.UnavailableError{Status: 500, Err: errors.New("boom")}, wantKept: true, check: func(err error) bool {
			var down *policy.Unavailable
			return errors.As(err, &down) && down.Dependency == "hydra"
		}},
		{name: "the client was deleted meanwhile", deleted: true, check: func(err error) bool { return errors.Is(err, policy.ErrNoRegistration) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			current, _, err := f.Registrar.Register(ctx, policy.Submission{JWT: f.Request(t, nil, nil), Certificate: f.Cert})
			if err != nil {
				t.Fatal(err)
			}
			before := f.Hydra.Clients[current.ClientID]
			if c.deleted {
				delete(f.Hydra.Clients, current.ClientID)
			}
			f.Hydra.FailReplace = c.fail
			changed := f.Request(t, nil, policytest.Set("redirect_uris", []string{before.RedirectURIs[0]}))
			if _, _, err := f.Registrar.Update(ctx, current, policy.Submission{JWT: changed, Certificate: f.Cert}); !c.check(err) {
				t.Fatalf("update: %v", err)
			}
			after, ok := f.Hydra.Clients[current.ClientID]
			if ok != c.wantKept || (ok && !reflect.DeepEqual(after, before)) {
				t.Fatalf("the client changed: before %+v, after %+v (present %v)", before, after, ok)
			}
		})
	}
}

// Whose keys sign what: an SSA the directory did not sign, or a request the
// software's keys did not, is refused by the signature rule that names it; the
// directory being unreachable is obdcr's problem (503), the software's JWKS
// being unusable the TPP's (400). Nothing reaches Hydra in any case.
func TestUKTrust(t *testing.T) {
	cases := []struct {
		name    string
		jwks    string // the directory's JWKS URL the profile is built with; "" the fixture's
		request func(f *fixture) []byte
		code    policy.Code
		mention string
		rule    string
		down    string // the dependency reported unavailable instead
	}{
		{name: "an SSA signed by another key under the directory's kid", request: func(f *fixture) []byte {
			forger, _ := sandbox.NewKey("PS256", f.Authority.Key.KID)
			ssa, _ := forger.Sign(f.Authority.SSAClaims(f.TPP, f.Now), nil)
			req, _ := f.TPP.Request(ssa, issuer, f.Now, nil)
			return []byte(req)
		}, code: policy.InvalidSoftwareStatement, mention: "software_statement", rule: policy.RuleSSASignature},
		{name: "an SSA whose claims were changed after signing", request: func(f *fixture) []byte {
			ssa, _ := f.Authority.SSA(f.TPP, f.Now, nil)
			parts := strings.Split(ssa, ".")
			claims := f.Authority.SSAClaims(f.TPP, f.Now)
			claims["software_roles"] = []string{"AISP", "PISP", "CBPII"}
			req, _ := f.TPP.Request(parts[0]+"."+b64(t, claims)+"."+parts[2], issuer, f.Now, nil)
			return []byte(req)
		}, code: policy.InvalidSoftwareStatement, mention: "software_statement", rule: policy.RuleSSASignature},
		{name: "the directory's JWKS unreachable", jwks: "https://down.directory.example/jwks", down: "directory"},
		{name: "a request under a kid the software's JWKS lacks", request: func(f *fixture) []byte {
			other, _ := sandbox.NewKey("PS256", "not-published")
			ssa, _ := f.Authority.SSA(f.TPP, f.Now, nil)
			req, _ := other.Sign(f.TPP.RequestClaims(ssa, issuer, f.Now), nil)
			return []byte(req)
		}, code: policy.InvalidClientMetadata, mention: "not in the software's JWKS", rule: policy.RuleReqSignature},
		{name: "the software's JWKS unusable", request: func(f *fixture) []byte {
			return f.Request(t, policytest.Set("software_jwks_endpoint", "https://keystore.example/gone.jwks"), nil)
		}, code: policy.InvalidClientMetadata, mention: "could not be used", rule: policy.RuleReqSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := policytest.NewFixture(t, sandbox.UK, func(keys policy.TrustStore, replay policy.ReplayCache, jwks string) *policy.Profile {
				if c.jwks != "" {
					jwks = c.jwks
				}
				return uk.New(uk.Config{DirectoryJWKS: jwks, Keys: keys, Replay: replay})
			})
			req := f.Request(t, nil, nil)
			if c.request != nil {
				req = c.request(f)
			}
			_, err := f.Register(req)
			if c.down != "" {
				var down *policy.Unavailable
				if !errors.As(err, &down) || down.Dependency != c.down {
					t.Fatalf("want %s unavailable, got %v", c.down, err)
				}
			} else {
				policytest.Refusal{Code: c.code, Mention: c.mention, Rule: c.rule}.Check(t, err)
			}
			if f.Hydra.Len() != 0 {
				t.Fatalf("%d clients in Hydra", f.Hydra.Len())
			}
		})
	}
}

// The transport_certificate setting: which proof of the TLS certificate being
// the software's a profile accepts. "published" is the TPP's certificate (in its
// JWKS, with the OB subject); "by subject" has the OB subject (OU=org_id,
// CN=software_id) and is not published; "x5c only" is published as a chain
// without a thumbprint; "neither" is another TPP's.
func TestUKTransportCertificate(t *testing.T) {
	certs := map[string]func(f *fixture) *x509.Certificate{
		"published": func(f *fixture) *x509.Certificate { return f.Cert },
		"x5c only":  func(f *fixture) *x509.Certificate { return f.Cert },
		"by subject": func(f *fixture) *x509.Certificate {
			l, _ := f.PKI.Client(pkix.Name{Organization: []string{"OpenBanking"}, OrganizationalUnit: []string{f.TPP.OrgID}, CommonName: f.TPP.SoftwareID}, nil)
			return l.TLS.Leaf
		},
		"neither": func(f *fixture) *x509.Certificate {
			l, _ := f.PKI.Client(pkix.Name{OrganizationalUnit: []string{"another-org"}, CommonName: "another-software"}, nil)
			return l.TLS.Leaf
		},
	}
	accepts := map[string][]string{
		"any":     {"published", "x5c only", "by subject"},
		"jwks":    {"published", "x5c only"},
		"subject": {"published", "x5c only", "by subject"},
		"none":    {"published", "x5c only", "by subject", "neither"},
	}
	for mode, accepted := range accepts {
		for kind, cert := range certs {
			t.Run(mode+"/"+kind, func(t *testing.T) {
				var held policytest.Keys
				f := policytest.NewFixture(t, sandbox.UK, func(keys policy.TrustStore, replay policy.ReplayCache, jwks string) *policy.Profile {
					held = keys.(policytest.Keys)
					return uk.New(uk.Config{DirectoryJWKS: jwks, Keys: keys, Replay: replay})
				})
				if kind == "x5c only" { // the TPP's JWKS as published without x5t#S256
					set, err := f.TPP.JWKS()
					if err != nil {
						t.Fatal(err)
					}
					for i := 0; i < set.Len(); i++ {
						k, _ := set.Key(i)
						_ = k.Remove(jwk.X509CertThumbprintS256Key)
					}
					held[f.TPP.JWKSURL] = policy.NewKeySet(set)
				}
				f.Settings(func(st *policy.State) { st.Settings.TransportCertificate = mode })
				_, _, err := f.Registrar.Register(context.Background(), policy.Submission{JWT: f.Request(t, nil, nil), Certificate: cert(f)})
				want := policytest.Refusal{}
				if !slices.Contains(accepted, kind) {
					want = policytest.Refusal{Code: policy.UnapprovedSoftwareStatement, Mention: "is not the transport certificate", Rule: policy.RuleTransportCert}
				}
				want.Check(t, err)
			})
		}
	}
}
