package plugin

import (
	"errors"
	"testing"
)

// The discovery document is built again only when Hydra's copy (its
// generation) or what the profiles accept changes; a failed build is not kept.
func TestDiscoveryCacheBuildsOnChange(t *testing.T) {
	var c discoveryCache
	builds := 0
	build := func() ([]byte, error) { builds++; return []byte{byte(builds)}, nil }
	fail := func() ([]byte, error) { builds++; return nil, errors.New("no") }
	steps := []struct {
		name   string
		gen    uint64
		key    string
		build  func() ([]byte, error)
		builds int // total builds after the step
		want   byte
	}{
		{"first request builds", 1, "a", build, 1, 1},
		{"same inputs: served as built", 1, "a", build, 1, 1},
		{"again", 1, "a", build, 1, 1},
		{"a policy change builds", 1, "b", build, 2, 2},
		{"Hydra's document read again builds", 2, "b", build, 3, 3},
		{"a failed build is an error", 3, "b", fail, 4, 0},
		{"and is not kept", 3, "b", build, 5, 5},
		{"then served", 3, "b", build, 5, 5},
	}
	for _, s := range steps {
		got, err := c.get(s.gen, s.key, s.build)
		if builds != s.builds {
			t.Fatalf("%s: %d builds, want %d", s.name, builds, s.builds)
		}
		if s.want == 0 {
			if err == nil {
				t.Fatalf("%s: no error", s.name)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0] != s.want {
			t.Fatalf("%s: %v %v, want build %d", s.name, got, err, s.want)
		}
	}
}

// Two acceptances that differ have different keys, whatever list a value is in.
func TestAcceptanceKeyDiffers(t *testing.T) {
	a := acceptance{methods: []string{"private_key_jwt"}, algs: []string{"PS256"}}
	b := acceptance{methods: []string{"private_key_jwt", "PS256"}}
	if a.key() == b.key() {
		t.Fatal("two different acceptances have one key")
	}
}
