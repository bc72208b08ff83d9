package reload

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// replace puts s under path as Kubernetes does with a symlink swap: a new file
// under the name.
func replace(t *testing.T, path, s string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestValueFollowsItsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n")
	replace(t, path, "1\n")
	parse := func(c [][]byte) (int, error) {
		n, err := strconv.Atoi(string(c[0][:len(c[0])-1]))
		if err != nil || n < 0 {
			return 0, errors.New("not a count")
		}
		return n, nil
	}
	v, err := New(Options{Name: "N_FILE"}, parse, path)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	v.now, v.sleep = func() time.Time { return clock }, func(time.Duration) {}
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
			replace(t, path, s.content)
		}
		clock = clock.Add(s.advance)
		if got := v.Get(); got != s.want || (v.Err() != nil) != s.broken {
			t.Fatalf("%s: got %d (err %v), want %d (broken %v)", s.name, got, v.Err(), s.want, s.broken)
		}
	}
	if v.Loads() != 3 {
		t.Fatalf("%d loads, want 3", v.Loads())
	}
	if _, err := New(Options{}, parse, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing file was accepted at start")
	}
}

// step is one change to a token file and what is served after it.
type step struct {
	name     string
	change   func(path string) // nil leaves the file
	during   string            // written between the two reads of the change ("" writes nothing)
	want     string            // served after the step when the old value is kept
	closed   bool              // served as "" instead when failing closed
	failures int               // reported so far
}

// A token file made invalid, emptied or deleted is reported once per change;
// a value that fails closed then serves nothing, one that does not keeps the
// last good value; a good file is applied again.
func TestFailuresAreReported(t *testing.T) {
	write := func(s string) func(string) { return func(p string) { replace(t, p, s) } }
	runSteps(t, []step{
		{name: "unchanged", want: "tok-aaaaaaaa"},
		{name: "replaced by invalid content", change: write("password=hunter2\n"), want: "tok-aaaaaaaa", closed: true, failures: 1},
		{name: "the same invalid file, looked at again", want: "tok-aaaaaaaa", closed: true, failures: 1},
		{name: "restored", change: write("tok-bbbbbbbb\n"), want: "tok-bbbbbbbb", failures: 1},
		{name: "emptied", change: write(""), want: "tok-bbbbbbbb", closed: true, failures: 2},
		{name: "restored after empty", change: write("tok-cccccccc"), want: "tok-cccccccc", failures: 2},
		{name: "deleted", change: func(p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, want: "tok-cccccccc", closed: true, failures: 3},
		{name: "still deleted", want: "tok-cccccccc", closed: true, failures: 3},
		{name: "restored after delete", change: write("tok-dddddddd"), want: "tok-dddddddd", failures: 3},
	}, nil)
}

// A file caught half written is never applied: the two reads disagree, and the
// next check applies it whole. Between the two reads other callers are served
// the value as it was.
func TestPartialWritesAreNotApplied(t *testing.T) {
	write := func(s string) func(string) { return func(p string) { replace(t, p, s) } }
	runSteps(t, []step{
		{name: "a valid prefix, completed between the two reads: not applied", change: write("tok-eeee"), during: "tok-eeeeeeeeeeeeeeee",
			want: "tok-aaaaaaaa"},
		{name: "the completed file, at the next check", want: "tok-eeeeeeeeeeeeeeee"},
		{name: "a prefix of invalid content, completed between the reads: not reported", change: write("tok"), during: "tok-ffffffff",
			want: "tok-eeeeeeeeeeeeeeee"},
		{name: "then applied whole", want: "tok-ffffffff"},
	}, []string{"tok-eeee", "tok"})
}

// runSteps runs steps on a token file that starts as tok-aaaaaaaa, failing
// closed and not, and checks that no value in never is ever served.
func runSteps(t *testing.T, steps []step, never []string) {
	token := func(c [][]byte) (string, error) {
		s, err := String(c)
		if err == nil && !strings.HasPrefix(s, "tok-") {
			err = errors.New("not a token")
		}
		return s, err
	}
	for _, failClosed := range []bool{false, true} {
		t.Run("fail closed "+strconv.FormatBool(failClosed), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			replace(t, path, "tok-aaaaaaaa\n")
			var reported []error
			v, err := New(Options{Name: "TOKEN_FILE", FailClosed: failClosed, OnFailure: func(err error) { reported = append(reported, err) }}, token, path)
			if err != nil {
				t.Fatal(err)
			}
			clock := time.Now()
			during := ""
			var served []string
			v.now = func() time.Time { return clock }
			v.sleep = func(d time.Duration) {
				if d != SettleFor {
					t.Errorf("the reads are %v apart, want %v", d, SettleFor)
				}
				before := v.current()
				got := v.Get()
				served = append(served, got)
				if got != before {
					t.Errorf("between the two reads Get served %q, want %q", got, before)
				}
				if during != "" {
					replace(t, path, during)
				}
			}
			for _, s := range steps {
				if s.change != nil {
					s.change(path)
				}
				during = s.during
				clock = clock.Add(2 * CheckEvery)
				got := v.Get()
				served = append(served, got)
				want := s.want
				if failClosed && s.closed {
					want = ""
				}
				if got != want || len(reported) != s.failures || (v.Err() != nil) != s.closed {
					t.Fatalf("%s: served %q (err %v, %d reported), want %q (broken %v, %d reported)", s.name, got, v.Err(), len(reported), want, s.closed, s.failures)
				}
			}
			for _, got := range served {
				if slices.Contains(never, got) {
					t.Errorf("a partly written file was served: %q", got)
				}
			}
			for _, err := range reported {
				if !strings.HasPrefix(err.Error(), "TOKEN_FILE: ") {
					t.Errorf("the failure %q does not name the variable", err)
				}
			}
		})
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
