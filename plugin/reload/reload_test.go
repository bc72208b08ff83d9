package reload

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestValueFollowsItsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n")
	write := func(s string) {
		t.Helper()
		// Replace, as Kubernetes does with a symlink swap: a new file under the name.
		tmp := path + ".new"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("1\n")
	parse := func(c [][]byte) (int, error) {
		n, err := strconv.Atoi(string(c[0][:len(c[0])-1]))
		if err != nil || n < 0 {
			return 0, errors.New("not a count")
		}
		return n, nil
	}
	v, err := New(parse, path)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	v.now = func() time.Time { return clock }
	steps := []struct {
		name    string
		content string // "" leaves the file
		advance time.Duration
		want    int
		broken  bool
	}{
		{"unchanged", "", 2 * time.Second, 1, false},
		{"changed, looked at within a second: not yet", "22\n", 500 * time.Millisecond, 1, false},
		{"changed, a second later", "", time.Second, 22, false},
		{"a change that does not parse keeps the last good value", "x\n", 2 * time.Second, 22, true},
		{"the same broken file is not re-read", "", 2 * time.Second, 22, true},
		{"mended", "333\n", 2 * time.Second, 333, false},
	}
	for _, s := range steps {
		if s.content != "" {
			write(s.content)
		}
		clock = clock.Add(s.advance)
		if got := v.Get(); got != s.want || (v.Err() != nil) != s.broken {
			t.Fatalf("%s: got %d (err %v), want %d (broken %v)", s.name, got, v.Err(), s.want, s.broken)
		}
	}
	if v.Loads() != 3 {
		t.Fatalf("%d loads, want 3", v.Loads())
	}
	if _, err := New(parse, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing file was accepted at start")
	}
}

func TestString(t *testing.T) {
	if s, err := String([][]byte{[]byte("  tok-en\n")}); err != nil || s != "tok-en" {
		t.Fatalf("%q %v", s, err)
	}
	if _, err := String([][]byte{[]byte(" \n")}); err == nil {
		t.Fatal("an empty secret was accepted")
	}
}
