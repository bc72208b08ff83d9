// Package reload keeps values made from files current: a secret Kubernetes
// mounts, a certificate cert-manager replaces. A value is re-read when one of
// its files changes (size, modification time, or appearing or going), checked
// at most once a second, so callers can ask on every request.
//
// A change is applied only when two reads a moment apart (SettleFor) agree,
// so that a file caught while it is being written is not applied by its prefix.
// A change that cannot be applied (the file is gone, empty, or does not parse)
// is reported once to Options.OnFailure, and then either the last good value
// stays (a certificate: a half-rotated one must not take a listener down) or,
// with Options.FailClosed, the zero value is served until a good file is back (a
// secret that admits callers: a token made invalid must not keep working).
package reload

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// CheckEvery is how often the files are looked at, at most.
const CheckEvery = time.Second

// SettleFor is how long apart the two reads of a change are: long enough for a
// writer to finish a secret or certificate, short enough not to delay a rotation.
const SettleFor = 150 * time.Millisecond

// Options say how a Value reports and what it serves when a change fails.
type Options struct {
	// Name is the variable naming the file, such as OBDCR_ADMIN_TOKEN_FILE; it
	// prefixes errors.
	Name string
	// FailClosed serves T's zero value while the files cannot be applied.
	FailClosed bool
	// OnFailure is told, once per change, why a change could not be applied.
	OnFailure func(err error)
}

// Value is T made from the contents of one or more files.
type Value[T any] struct {
	paths []string
	parse func(contents [][]byte) (T, error)
	opts  Options
	now   func() time.Time
	sleep func(time.Duration)

	mu       sync.Mutex
	val      T
	stamps   []stamp
	checked  time.Time
	checking bool  // one caller reads a change; the others are served meanwhile
	err      error // why the files as they are could not be applied
	loads    int   // how many times a change was applied, the first read included
}

// stamp is what a file looked like; size -1 is a file that is not there.
type stamp struct {
	size int64
	mod  time.Time
}

// New reads the files and parses them; an error here is a configuration error.
func New[T any](opts Options, parse func(contents [][]byte) (T, error), paths ...string) (*Value[T], error) {
	if len(paths) == 0 {
		return nil, errors.New("reload: no file")
	}
	v := &Value[T]{paths: paths, parse: parse, opts: opts, now: time.Now, sleep: time.Sleep}
	r := v.read()
	if r.err != nil {
		return nil, r.err
	}
	val, err := parse(r.contents)
	if err != nil {
		return nil, err
	}
	v.val, v.stamps, v.checked, v.loads = val, r.stamps, v.now(), 1
	return v, nil
}

// Get returns the current value, applying a change of the files first.
func (v *Value[T]) Get() T {
	v.mu.Lock()
	now := v.now()
	if v.checking || now.Sub(v.checked) < CheckEvery {
		defer v.mu.Unlock()
		return v.current()
	}
	v.checked = now
	if stampsEqual(v.stat(), v.stamps) {
		defer v.mu.Unlock()
		return v.current()
	}
	// Read twice, a moment apart, without holding the lock: a TLS handshake or
	// another request meanwhile gets the value as it was.
	v.checking = true
	v.mu.Unlock()
	first := v.read()
	v.sleep(SettleFor)
	second := v.read()

	v.mu.Lock()
	defer v.mu.Unlock()
	v.checking = false
	if !first.same(second) {
		return v.current() // still being written: looked at again at the next check
	}
	v.stamps = second.stamps // a file that stays broken is reported once
	err := second.err
	if err == nil {
		var val T
		if val, err = v.parse(second.contents); err == nil {
			v.val, v.err = val, nil
			v.loads++
			return v.val
		}
	}
	v.err = fmt.Errorf("%s: %w", v.opts.Name, err)
	if v.opts.OnFailure != nil {
		v.opts.OnFailure(v.err)
	}
	return v.current()
}

// current is the value to serve; v.mu is held.
func (v *Value[T]) current() T {
	if v.err != nil && v.opts.FailClosed {
		var zero T
		return zero
	}
	return v.val
}

// Err is why the files as they are could not be applied; nil when they are.
func (v *Value[T]) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

// Loads counts the values applied, the first included.
func (v *Value[T]) Loads() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.loads
}

func (v *Value[T]) stat() []stamp {
	stamps := make([]stamp, len(v.paths))
	for i, p := range v.paths {
		stamps[i] = stamp{size: -1}
		if fi, err := os.Stat(p); err == nil {
			stamps[i] = stamp{size: fi.Size(), mod: fi.ModTime()}
		}
	}
	return stamps
}

func stampsEqual(a, b []stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].size != b[i].size || !a[i].mod.Equal(b[i].mod) {
			return false
		}
	}
	return true
}

// reading is the files as one read found them.
type reading struct {
	stamps   []stamp
	contents [][]byte
	err      error
}

func (v *Value[T]) read() reading {
	r := reading{stamps: v.stat(), contents: make([][]byte, len(v.paths))}
	for i, p := range v.paths {
		b, err := os.ReadFile(p)
		if err != nil {
			r.err = err
			return r
		}
		r.contents[i] = b
	}
	return r
}

// same says whether two reads found the same contents, or failed alike.
func (r reading) same(o reading) bool {
	if (r.err == nil) != (o.err == nil) || (r.err != nil && r.err.Error() != o.err.Error()) {
		return false
	}
	for i := range r.contents {
		if !bytes.Equal(r.contents[i], o.contents[i]) {
			return false
		}
	}
	return true
}

// Static is a Value that never changes, for values given in the environment.
func Static[T any](val T) *Value[T] {
	return &Value[T]{val: val, now: time.Now, checked: time.Now().Add(100 * 365 * 24 * time.Hour), loads: 1}
}

// String is a file's contents with surrounding white space removed: a secret.
func String(contents [][]byte) (string, error) {
	s := string(bytes.TrimSpace(contents[0]))
	if s == "" {
		return "", fmt.Errorf("the file is empty")
	}
	return s, nil
}
