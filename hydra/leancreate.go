package hydra

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxCreateAnswer bounds Hydra's answer to a create that obdcr reads: a client
// with a JWKS of certificate chains is some kilobytes.
const maxCreateAnswer = 1 << 20

// createAnswer is what obdcr reads of Hydra's answer to a create: what only
// Hydra knows. The rest is the client as obdcr sent it (Create returns that).
type createAnswer struct {
	ClientID     string     `json:"client_id"`
	ClientSecret *string    `json:"client_secret,omitempty"`
	CreatedAt    *time.Time `json:"created_at,omitempty"`
}

// leanCreate hands hydra-client-go only createAnswer of Hydra's 201 to
// POST /admin/clients. The generated client decodes the whole echoed client,
// its JWKS and contacts into maps of interfaces, twice: that was 40 % of the
// bytes a registration allocated, and at 64 registrations in flight, megabytes
// of obdcr's peak memory. Every other answer passes through unchanged.
type leanCreate struct{ next http.RoundTripper }

func (l leanCreate) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := l.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodPost || res.StatusCode != http.StatusCreated ||
		!strings.HasSuffix(strings.TrimRight(req.URL.Path, "/"), "/admin/clients") {
		return res, err
	}
	whole, err := io.ReadAll(io.LimitReader(res.Body, maxCreateAnswer))
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	body := whole
	var a createAnswer
	if json.Unmarshal(whole, &a) == nil && a.ClientID != "" {
		body, _ = json.Marshal(a)
	} // else the generated client reports what it cannot read, as before
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	res.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return res, nil
}

// withLeanCreate is client with leanCreate as its outermost transport.
func withLeanCreate(client *http.Client) *http.Client {
	next := client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c := *client
	c.Transport = leanCreate{next: next}
	return &c
}
