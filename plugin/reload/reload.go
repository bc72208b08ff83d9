// Package reload keeps values made from files current: a secret Kubernetes
// mounts, a certificate cert-manager replaces. A value is re-read when one of
// its files changes (size or modification time), checked at most once a second,
// so callers can ask on every request. A change that does not parse is not
// applied: the last good value stays, and the error says why.
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

// Value is T made from the contents of one or more files.
type Value[T any] struct {
	paths []string
	parse func(contents [][]byte) (T, error)
	now   func() time.Time

	mu      sync.Mutex
	val     T
	stamps  []stamp
	checked time.Time
	err     error // the last change that could not be applied
	loads   int   // how many times a change was applied, the first read included
}

type stamp struct {
	size int64
	mod  time.Time
}

// New reads the files and parses them; an error here is a configuration error.
func New[T any](parse func(contents [][]byte) (T, error), paths ...string) (*Value[T], error) {
	if len(paths) == 0 {
		return nil, errors.New("reload: no file")
	}
	v := &Value[T]{paths: paths, parse: parse, now: time.Now}
	stamps, contents, err := v.read()
	if err != nil {
		return nil, err
	}
	val, err := parse(contents)
	if err != nil {
		return nil, err
	}
	v.val, v.stamps, v.checked, v.loads = val, stamps, v.now(), 1
	return v, nil
}

// Get returns the current value, re-reading the files first if they changed.
func (v *Value[T]) Get() T {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if now.Sub(v.checked) < CheckEvery {
		return v.val
	}
	v.checked = now
	if !v.changed() {
		return v.val
	}
	stamps, contents, err := v.read()
	if err == nil {
		var val T
		if val, err = v.parse(contents); err == nil {
			v.val, v.stamps, v.err = val, stamps, nil
			v.loads++
			return v.val
		}
	}
	// Keep serving the last good value; remember the stamps, so that a broken
	// file is reported once, not re-read every second.
	v.err, v.stamps = err, stamps
	return v.val
}

// Err is why the last change was not applied; nil when the files are as applied.
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

func (v *Value[T]) changed() bool {
	for i, p := range v.paths {
		fi, err := os.Stat(p)
		if err != nil {
			return true
		}
		if i >= len(v.stamps) || fi.Size() != v.stamps[i].size || !fi.ModTime().Equal(v.stamps[i].mod) {
			return true
		}
	}
	return false
}

func (v *Value[T]) read() ([]stamp, [][]byte, error) {
	stamps := make([]stamp, len(v.paths))
	contents := make([][]byte, len(v.paths))
	for i, p := range v.paths {
		fi, err := os.Stat(p)
		if err != nil {
			return stamps, nil, err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return stamps, nil, err
		}
		stamps[i], contents[i] = stamp{size: fi.Size(), mod: fi.ModTime()}, b
	}
	return stamps, contents, nil
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
