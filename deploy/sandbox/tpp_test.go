package sandbox_test

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
)

// A TPP read back from the sandbox's state file loads its transport certificate
// on first use, and the sandbox serves its JWKS to several fetchers at once (two
// obdcr replicas, say): every one must get the same set, and -race must stay quiet.
func TestTPPJWKSConcurrentlyAfterLoad(t *testing.T) {
	pki, err := sandbox.NewPKI("test CA")
	if err != nil {
		t.Fatal(err)
	}
	made, err := sandbox.NewTPP(sandbox.UK, "Acme", "https://127.0.0.1:1", pki)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := json.Marshal(made)
	if err != nil {
		t.Fatal(err)
	}
	var loaded sandbox.TPP
	if err := json.Unmarshal(saved, &loaded); err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(mustJWKS(t, made))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			set, err := loaded.JWKS()
			if err != nil {
				t.Error(err)
				return
			}
			got[i], _ = json.Marshal(set)
		}()
	}
	wg.Wait()
	for i, g := range got {
		if string(g) != string(want) {
			t.Fatalf("fetcher %d got a different JWKS:\n%s\nwant\n%s", i, g, want)
		}
	}
}

func mustJWKS(t *testing.T, tpp *sandbox.TPP) any {
	t.Helper()
	set, err := tpp.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	return set
}
