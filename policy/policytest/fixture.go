package policytest

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/policy"
)

// Issuer and OrgAudience are the audiences fixtures accept.
const (
	Issuer        = "https://as.bank.example"
	OrgAudience   = "0015800001041RHAAY"
	AuthorityJWKS = "https://directory.example/jwks"
)

// Builder makes the profile under test from the fixture's trust store and replay cache.
type Builder func(keys policy.TrustStore, replay policy.ReplayCache, authorityJWKS string) *policy.Profile

// Fixture is one profile behind a registrar, with a directory, a TPP and a fake Hydra.
type Fixture struct {
	Registrar *policy.Registrar
	Profile   *policy.Profile
	Authority *sandbox.Authority
	TPP       *sandbox.TPP
	Cert      *x509.Certificate
	PKI       *sandbox.PKI
	Hydra     *Hydra
	State     *policy.MemoryState
	Now       time.Time
}

// NewFixture builds a fixture for a sandbox profile ("uk" or "au").
func NewFixture(t testing.TB, profile string, build Builder) *Fixture {
	t.Helper()
	pki, err := sandbox.NewPKI("test CA")
	if err != nil {
		t.Fatal(err)
	}
	auth, err := sandbox.NewAuthority(profile)
	if err != nil {
		t.Fatal(err)
	}
	tpp, err := sandbox.NewTPP(profile, "Acme", "https://keystore.example", pki)
	if err != nil {
		t.Fatal(err)
	}
	tppSet, err := tpp.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	replay := policy.NewMemoryReplay(nil)
	p := build(NewKeys(map[string]jwk.Set{AuthorityJWKS: auth.JWKS(), tpp.JWKSURL: tppSet}), replay, AuthorityJWKS)
	state := policy.NewMemoryState([]*policy.Profile{p}, []string{p.Name})
	h := NewHydra()
	now := time.Now()
	leaf, _ := tpp.Transport()
	return &Fixture{
		Registrar: &policy.Registrar{
			Profiles: []*policy.Profile{p}, State: state, Clients: h, Replay: replay,
			Audiences: []string{Issuer, OrgAudience}, Now: func() time.Time { return now },
		},
		Profile: p, Authority: auth, TPP: tpp, Cert: leaf.TLS.Leaf, PKI: pki, Hydra: h, State: state, Now: now,
	}
}

// Request signs a request of the fixture's TPP, each claim set edited by its mutator.
func (f *Fixture) Request(t testing.TB, ssaMut, reqMut func(map[string]any)) []byte {
	t.Helper()
	ssa, err := f.Authority.SSA(f.TPP, f.Now, ssaMut)
	if err != nil {
		t.Fatal(err)
	}
	req, err := f.TPP.Request(ssa, Issuer, f.Now, reqMut)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(req)
}

// Register submits jwt with the TPP's certificate.
func (f *Fixture) Register(jwt []byte) (*policy.Registration, error) {
	reg, _, err := f.Registrar.Register(context.Background(), policy.Submission{JWT: jwt, Certificate: f.Cert})
	return reg, err
}

// Settings edits the profile's settings.
func (f *Fixture) Settings(edit func(*policy.State)) {
	st, _ := f.State.State(context.Background(), f.Profile.Name)
	edit(&st)
	_ = f.State.Put(context.Background(), f.Profile.Name, st)
}

// Set and Del are claim mutators for table-driven tests.
func Set(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
func Del(k string) func(map[string]any)        { return func(m map[string]any) { delete(m, k) } }

// Refusal is one table row's expectation: the code, a text the description must
// contain (the claim, usually), and the rule that decided.
type Refusal struct {
	Code    policy.Code
	Mention string
	Rule    string
}

// Check asserts that err is the refusal r, or success when r.Code is "".
func (r Refusal) Check(t testing.TB, err error) {
	t.Helper()
	if r.Code == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	e, ok := policy.AsError(err)
	if !ok {
		t.Fatalf("want %s, got %v", r.Code, err)
	}
	if e.Code != r.Code {
		t.Errorf("code %s, want %s (%s)", e.Code, r.Code, e.Description)
	}
	if !contains(e.Description, r.Mention) {
		t.Errorf("description %q does not mention %q", e.Description, r.Mention)
	}
	if r.Rule != "" && e.Rule != r.Rule {
		t.Errorf("rule %q, want %q", e.Rule, r.Rule)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
