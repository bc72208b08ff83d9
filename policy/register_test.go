package policy_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/policytest"
	"github.com/obdcr/obdcr/policy/uk"
)

// While a registration's create waits on Hydra (most of its time, and all of
// it when Hydra is the queue), the request's body and what the parse made of
// it are garbage: 64 registrations in flight held 64 of those before.
func TestRegisterHoldsNoParseWhileCreating(t *testing.T) {
	cases := []struct {
		name    string
		fixture func(testing.TB) *policytest.Fixture
	}{
		{"uk", func(t testing.TB) *policytest.Fixture {
			return policytest.NewFixture(t, sandbox.UK, func(keys policy.TrustStore, replay policy.ReplayCache, jwks string) *policy.Profile {
				return uk.New(uk.Config{DirectoryJWKS: jwks, Keys: keys, Replay: replay})
			})
		}},
		{"au", auFixture},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.fixture(t)
			released := make(chan struct{})
			held := true
			f.Hydra.OnCreate = func() {
				deadline := time.Now().Add(2 * time.Second)
				for time.Now().Before(deadline) {
					runtime.GC()
					select {
					case <-released:
						held = false
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
			body := f.Request(t, nil, nil)
			runtime.AddCleanup(&body[0], func(ch chan struct{}) { close(ch) }, released)
			_, _, err := f.Registrar.Register(context.Background(), policy.Submission{JWT: body, Certificate: f.Cert})
			if err != nil {
				t.Fatal(err)
			}
			if held {
				t.Error("the request's body was still reachable while the create waited on Hydra")
			}
		})
	}
}
