package policy_test

import (
	"context"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/au"
	"github.com/obdcr/obdcr/policy/policytest"
)

func auFixture(t testing.TB) *policytest.Fixture {
	return policytest.NewFixture(t, sandbox.AU, func(keys policy.TrustStore, replay policy.ReplayCache, jwks string) *policy.Profile {
		return au.New(au.Config{RegisterJWKS: jwks, Keys: keys, Replay: replay})
	})
}

// benchPaths returns the two things the benchmarks time for one request.
// validate is the whole validation path: parse, both signature checks and every
// rule. A dry run is exactly that and nothing more: no jti consumed, no client
// created, so one request can be checked b.N times. verify is the floor: the
// SSA's and the request's PS256 signatures, verified with the keys already in hand.
func benchPaths(b *testing.B, fx *policytest.Fixture) (validate, verify func()) {
	req := fx.Request(b, nil, nil)
	sub := policy.Submission{JWT: req, Certificate: fx.Cert}
	ssa, _ := fx.Authority.SSA(fx.TPP, fx.Now, nil)
	var dirKey, tppKey any
	_ = fx.Authority.Key.Public().Raw(&dirKey)
	_ = fx.TPP.Signing.Public().Raw(&tppKey)
	ctx := context.Background()
	validate = func() {
		if rep, _, err := fx.Registrar.DryRun(ctx, sub); err != nil || rep.Outcome != "approved" {
			b.Fatalf("the benchmark request is not approved: %v %+v", err, rep)
		}
	}
	verify = func() {
		if _, err := jws.Verify([]byte(ssa), jws.WithKey(jwa.PS256, dirKey)); err != nil {
			b.Fatal(err)
		}
		if _, err := jws.Verify(req, jws.WithKey(jwa.PS256, tppKey)); err != nil {
			b.Fatal(err)
		}
	}
	return validate, verify
}

// benchLoop times f alone, with its allocations.
func benchLoop(b *testing.B, f func()) {
	f()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f()
	}
}

func benchValidation(b *testing.B, fx *policytest.Fixture) {
	validate, _ := benchPaths(b, fx)
	benchLoop(b, validate)
}

func benchBareVerify(b *testing.B, fx *policytest.Fixture) {
	_, verify := benchPaths(b, fx)
	benchLoop(b, verify)
}

// BenchmarkValidationOverVerify times each profile's validation path and the two bare
// verifications in alternating blocks within one loop, so that a noisy
// neighbour slows both alike and their ratio stays meaningful.
func BenchmarkValidationOverVerify(b *testing.B) {
	b.Run("uk", func(b *testing.B) { benchOverVerify(b, ukFixture(b)) })
	b.Run("au", func(b *testing.B) { benchOverVerify(b, auFixture(b)) })
}

func benchOverVerify(b *testing.B, fx *policytest.Fixture) {
	validate, verify := benchPaths(b, fx)
	const block = 8
	var inValidation, inVerify time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += block {
		start := time.Now()
		for i := 0; i < block; i++ {
			validate()
		}
		mid := time.Now()
		for i := 0; i < block; i++ {
			verify()
		}
		inValidation += mid.Sub(start)
		inVerify += time.Since(mid)
	}
	n := float64((b.N + block - 1) / block * block)
	b.ReportMetric(float64(inValidation.Nanoseconds())/n, "validation-ns/op")
	b.ReportMetric(float64(inVerify.Nanoseconds())/n, "verify-ns/op")
	b.ReportMetric(float64(inValidation)/float64(inVerify), "ratio")
}

func BenchmarkValidationUK(b *testing.B)       { benchValidation(b, ukFixture(b)) }
func BenchmarkValidationAU(b *testing.B)       { benchValidation(b, auFixture(b)) }
func BenchmarkBareVerifyTwoPS256(b *testing.B) { benchBareVerify(b, ukFixture(b)) }

// BenchmarkParseClaims splits the UK request's claims: the biggest JSON obdcr
// reads, since the request carries the SSA inside it.
func BenchmarkParseClaims(b *testing.B) {
	fx := ukFixture(b)
	req, err := policy.ParseJWS(fx.Request(b, nil, nil))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(req.Payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := policy.ParseClaims(req.Payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidationStages times each step of the UK validation path on its own,
// to say where the time above the two verifications goes: what is left of
// ValidationUK once these are taken out is the rules and their bookkeeping.
func BenchmarkValidationStages(b *testing.B) {
	fx := ukFixture(b)
	jwt := fx.Request(b, nil, nil)
	ssaJWT, err := fx.Authority.SSA(fx.TPP, fx.Now, nil)
	if err != nil {
		b.Fatal(err)
	}
	req, err := policy.ParseJWS(jwt)
	if err != nil {
		b.Fatal(err)
	}
	ssa, err := policy.ParseJWS([]byte(ssaJWT))
	if err != nil {
		b.Fatal(err)
	}
	reqClaims, err := policy.ParseClaims(req.Payload)
	if err != nil {
		b.Fatal(err)
	}
	ssaClaims, err := policy.ParseClaims(ssa.Payload)
	if err != nil {
		b.Fatal(err)
	}
	requestSet := policy.NewClaimSet[policy.RequestClaims]()
	dirKey, tppKey := policy.NewPublicKey(fx.Authority.Key.Public()), policy.NewPublicKey(fx.TPP.Signing.Public())
	stages := []struct {
		name string
		run  func() error
	}{
		{"parse-jws-request", func() error { _, err := policy.ParseJWS(jwt); return err }},
		{"parse-jws-ssa", func() error { _, err := policy.ParseJWS([]byte(ssaJWT)); return err }},
		{"parse-claims-request", func() error { _, err := policy.ParseClaims(req.Payload); return err }},
		{"parse-claims-ssa", func() error { _, err := policy.ParseClaims(ssa.Payload); return err }},
		{"decode-request", func() error { var c policy.RequestClaims; return requestSet.Decode(reqClaims, &c) }},
		{"decode-ssa", func() error { _, err := fx.Profile.DecodeStatement(ssaClaims); return err }},
		{"verify-both", func() error {
			if err := ssa.Verify(&dirKey); err != nil {
				return err
			}
			return req.Verify(&tppKey)
		}},
	}
	for _, s := range stages {
		b.Run(s.name, func(b *testing.B) {
			if err := s.run(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_ = s.run()
			}
		})
	}
	validate, verify := benchPaths(b, fx)
	b.Run("whole-path", func(b *testing.B) { benchLoop(b, validate) })
	b.Run("bare-verify", func(b *testing.B) { benchLoop(b, verify) })
}
