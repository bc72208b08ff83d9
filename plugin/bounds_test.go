package plugin

import (
	"strings"
	"testing"
	"time"
)

func TestParseAdminTokens(t *testing.T) {
	long := "0123456789abcdef"
	cases := []struct {
		name, value string
		names       []string
		err         string
	}{
		{name: "bare token", value: long, names: []string{"admin"}},
		{name: "named tokens", value: "alice:" + long + ", bob:" + long + "x", names: []string{"alice", "bob"}},
		{name: "a named token may hold colons", value: "ops:" + long + ":more", names: []string{"ops"}},
		{name: "a bare token with a colon is not split silently", value: "a b:" + long, err: "must be named"},
		{name: "short token", value: "alice:short", err: "fewer than 16"},
		{name: "empty entry", value: long + ",", err: "entry 2 is empty"},
		{name: "a name twice", value: "alice:" + long + ",alice:" + long + "x", err: "given twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseAdminTokens(c.value)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("want an error with %q, got %v", c.err, err)
				}
				return
			}
			if err != nil || len(got) != len(c.names) {
				t.Fatalf("%v %v", got, err)
			}
			for i, n := range c.names {
				if got[i].name != n {
					t.Errorf("token %d named %q, want %q", i, got[i].name, n)
				}
			}
		})
	}
}

func TestMethodLabelIsClosed(t *testing.T) {
	for method, want := range map[string]string{"GET": "GET", "POST": "POST", "PUT": "PUT", "DELETE": "DELETE",
		"HEAD": "HEAD", "OPTIONS": "OPTIONS", "PATCH": "other", "get": "other", strings.Repeat("X", 50_000): "other"} {
		if got := methodLabel(method); got != want {
			t.Errorf("methodLabel(%.20q) = %q, want %q", method, got, want)
		}
	}
}

func TestPlainRequestID(t *testing.T) {
	for id, want := range map[string]bool{"abc-123_x.y:z": true, "": false, strings.Repeat("a", 129): false,
		"a\nb": false, "a\x1b[31mb": false, "a b": false} {
		if got := plainRequestID(id); got != want {
			t.Errorf("plainRequestID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestLogSampler(t *testing.T) {
	l := newLogSampler(5, 20)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	logged := 0
	for range 1000 {
		if ok, _ := l.admit(now); ok {
			logged++
		}
	}
	if logged != 20 {
		t.Fatalf("%d of 1,000 lines at once; want the burst of 20", logged)
	}
	ok, skipped := l.admit(now.Add(time.Second))
	if !ok || skipped != 980 {
		t.Fatalf("a second later: %v, %d held back; want true, 980", ok, skipped)
	}
}
