package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/policy"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogsFollowARequestAndHoldNoSecrets(t *testing.T) {
	var logs syncBuffer
	o, err := env.StartObdcrLogging(env.Config(), &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()
	ctx := context.Background()
	tpp, c := newTPP(t, sandbox.UK)
	jwt := request(t, tpp, nil, nil)
	req, _ := http.NewRequest(http.MethodPost, o.URL+"/register", strings.NewReader(jwt))
	req.Header.Set("Content-Type", "application/jwt")
	req.Header.Set("X-Request-Id", "trace-me-123")
	res, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("X-Request-Id") != "trace-me-123" {
		t.Fatalf("X-Request-Id not returned: %q", res.Header.Get("X-Request-Id"))
	}
	_, _ = c.Register(ctx, o.URL, request(t, tpp, nil, nil)) // a refusal: duplicate
	id := policy.ClientIDFor(tpp.Profile, tpp.SoftwareID)
	tok, _, err := c.Token(ctx, env.Hydra.TokenURL(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Get(ctx, o.URL, id, tok)
	_ = o.Stop()

	var line map[string]any
	found := false
	for _, l := range strings.Split(logs.String(), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a log line is not JSON: %s", l)
		}
		if m["request_id"] == "trace-me-123" && m["msg"] == "request" {
			line, found = m, true
		}
	}
	if !found {
		t.Fatalf("no request line with the request id:\n%s", logs.String())
	}
	for _, k := range []string{"profile", "software_id", "outcome", "duration", "status", "client_id"} {
		if line[k] == nil {
			t.Errorf("the request line lacks %s: %v", k, line)
		}
	}
	all := logs.String()
	for _, secret := range []string{jwt[:40], tok, "eyJ", "BEGIN CERTIFICATE", "PRIVATE KEY"} {
		if strings.Contains(all, secret) {
			t.Errorf("the log holds a secret (%.20s...)", secret)
		}
	}
}
