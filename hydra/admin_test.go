package hydra_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obdcr/obdcr/hydra"
)

func TestAdminErrorClassification(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		check  func(error) bool
	}{
		{"400 is a refusal with Hydra's words", 400, `{"error":"invalid_client_metadata","error_description":"redirect_uris are bad"}`, func(err error) bool {
			var r *hydra.RejectedError
			return errors.As(err, &r) && r.Message == "redirect_uris are bad"
		}},
		{"404 is not found", 404, `{"error":"not_found"}`, func(err error) bool { return errors.Is(err, hydra.ErrNotFound) }},
		{"409 is a conflict", 409, `{"error":"conflict"}`, func(err error) bool { return errors.Is(err, hydra.ErrConflict) }},
		{"401 is obdcr's credentials refused, not the TPP's doing", 401, `{"error":"unauthorized"}`, func(err error) bool {
			var u *hydra.UnavailableError
			return errors.As(err, &u) && u.Unauthorized && u.Status == 401
		}},
		{"403 too", 403, `{"error":"forbidden"}`, func(err error) bool {
			var u *hydra.UnavailableError
			return errors.As(err, &u) && u.Unauthorized
		}},
		{"500 is unavailable", 500, `{"error":"server_error"}`, func(err error) bool {
			var u *hydra.UnavailableError
			return errors.As(err, &u) && u.Status == 500
		}},
		{"Ory's concurrent-update 400 is Hydra busy, not a refusal", 400, `{"error":"Unable to serialize access due to a concurrent update in another session","error_description":""}`, func(err error) bool {
			var u *hydra.UnavailableError
			return errors.As(err, &u) && u.Busy && u.Status == 400
		}},
		{"201 is success", 201, `{"client_id":"abc","client_secret":"s","metadata":{"x":1}}`, func(err error) bool { return err == nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.body))
			}))
			defer srv.Close()
			a, err := hydra.NewAdmin(srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.Create(context.Background(), hydra.Client{ID: "abc", Metadata: []byte(`{"x":1}`)})
			if !c.check(err) {
				t.Fatalf("got %T %v", err, err)
			}
			if err == nil && (got.ID != "abc" || got.Secret != "s" || string(got.Metadata) != `{"x":1}`) {
				t.Errorf("decoded %+v", got)
			}
			if err == nil {
				g, err := a.Get(context.Background(), "abc")
				if err != nil || g.ID != "abc" || string(g.Metadata) != `{"x":1}` {
					t.Errorf("Get decoded %+v %v", g, err)
				}
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		a, _ := hydra.NewAdmin("http://127.0.0.1:1", nil)
		var u *hydra.UnavailableError
		if _, err := a.Get(context.Background(), "x"); !errors.As(err, &u) || u.Status != 0 {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(200 * time.Millisecond) }))
		defer srv.Close()
		a, _ := hydra.NewAdmin(srv.URL, &http.Client{Timeout: 50 * time.Millisecond})
		var u *hydra.UnavailableError
		if _, err := a.Get(context.Background(), "x"); !errors.As(err, &u) || !u.Timeout {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("not an http URL", func(t *testing.T) {
		if _, err := hydra.NewAdmin("ftp://x", nil); err == nil {
			t.Fatal("accepted ftp://")
		}
	})
}

// Concurrent calls reuse their connections to Hydra: with Go's default transport
// (2 idle connections per host) most of 16 concurrent calls would open a new one.
func TestAdminReusesConnections(t *testing.T) {
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // keep calls overlapping
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"client_id":"abc","metadata":{}}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		client *http.Client
		most   int64 // connections opened at most, for 20 rounds of 16 calls
	}{
		{"obdcr's transport", nil, 16},
		{"Go's default transport, for contrast", &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opened.Store(0)
			a, err := hydra.NewAdmin(srv.URL, tc.client)
			if err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 20; round++ {
				var wg sync.WaitGroup
				for i := 0; i < 16; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := a.Get(context.Background(), "abc"); err != nil {
							t.Error(err)
						}
					}()
				}
				wg.Wait()
			}
			got := opened.Load()
			if tc.most >= 0 && got > tc.most {
				t.Fatalf("opened %d connections for 320 calls, want at most %d", got, tc.most)
			}
			if tc.most < 0 && got <= 16 {
				t.Fatalf("the default transport opened only %d connections; the contrast no longer holds", got)
			}
		})
	}
}

// Hydra v2.3.0 links a next page as if every client were the owner's; a short
// page ends the list, however many pages the link promises.
func TestListByOwnerStopsAtAShortPage(t *testing.T) {
	cases := []struct {
		name  string
		pages []int // clients on each page Hydra answers
		want  int   // requests made
	}{
		{"one short page, next linked anyway", []int{1, 0, 0}, 1},
		{"a full page, then a short one", []int{500, 3, 0}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var requests atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := c.pages[min(int(requests.Add(1))-1, len(c.pages)-1)]
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Link", `</admin/clients?owner=o&page_size=500&page_token=next>; rel="next"`)
				_, _ = w.Write([]byte("["))
				for i := range n {
					if i > 0 {
						_, _ = w.Write([]byte(","))
					}
					_, _ = w.Write([]byte(`{"client_id":"c","owner":"o"}`))
				}
				_, _ = w.Write([]byte("]"))
			}))
			defer srv.Close()
			a, _ := hydra.NewAdmin(srv.URL, nil)
			if _, err := a.ListByOwner(context.Background(), "o"); err != nil {
				t.Fatal(err)
			}
			if got := int(requests.Load()); got != c.want {
				t.Fatalf("%d requests, want %d", got, c.want)
			}
		})
	}
}

// ListPage follows Hydra's Link header: the next page's token, none after the
// last page (Hydra v2.3.0 links no "next" there), and none after an empty page.
func TestListPageFollowsTheLinkHeader(t *testing.T) {
	cases := []struct {
		name     string
		link     string
		clients  int
		wantNext string
	}{
		{"a middle page", `</admin/clients?page_size=500&page_token=first>; rel="first",</admin/clients?page_size=500&page_token=eyJvZmZzZXQiOiI1MDAifQ>; rel="next"`, 2, "eyJvZmZzZXQiOiI1MDAifQ"},
		{"the last page", `</admin/clients?page_size=500&page_token=first>; rel="first",</admin/clients?page_size=500&page_token=prev>; rel="prev"`, 2, ""},
		{"an empty page that still links on", `</admin/clients?page_token=more>; rel="next"`, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var gotToken string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotToken = r.URL.Query().Get("page_token")
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Link", c.link)
				out := make([]string, c.clients)
				for i := range out {
					out[i] = fmt.Sprintf(`{"client_id":"c%d","owner":"o"}`, i)
				}
				_, _ = w.Write([]byte("[" + strings.Join(out, ",") + "]"))
			}))
			defer srv.Close()
			a, _ := hydra.NewAdmin(srv.URL, nil)
			list, next, err := a.ListPage(context.Background(), "tok")
			if err != nil {
				t.Fatal(err)
			}
			if gotToken != "tok" || len(list) != c.clients || next != c.wantNext {
				t.Fatalf("sent token %q, got %d clients, next %q; want %d, %q", gotToken, len(list), next, c.clients, c.wantNext)
			}
		})
	}
}

// A write Hydra answers with Ory's concurrent-update error (its database could
// not serialize it beside another; nothing was written) is sent again, within
// about a second; any other answer is final at once.
func TestAdminRetriesWritesHydraWasTooBusyFor(t *testing.T) {
	busy := `{"error":"Unable to serialize access due to a concurrent update in another session"}`
	cases := []struct {
		name    string
		answers []string // "busy", "ok" or "bad", in turn; the last repeats
		calls   int      // at least; 0: exactly len(answers)
		check   func(error) bool
	}{
		{"busy twice, then created", []string{"busy", "busy", "ok"}, 0, func(err error) bool { return err == nil }},
		{"a refusal is not retried", []string{"bad", "ok"}, 1, func(err error) bool {
			var r *hydra.RejectedError
			return errors.As(err, &r)
		}},
		{"busy throughout: unavailable, busy", []string{"busy"}, 3, func(err error) bool {
			var u *hydra.UnavailableError
			return errors.As(err, &u) && u.Busy
		}},
	}
	for _, c := range cases {
		for _, write := range []string{"create", "replace", "delete"} {
			t.Run(c.name+"/"+write, func(t *testing.T) {
				var calls atomic.Int32
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					n := int(calls.Add(1))
					answer := c.answers[min(n, len(c.answers))-1]
					w.Header().Set("Content-Type", "application/json")
					switch {
					case answer == "busy":
						w.WriteHeader(http.StatusBadRequest)
						_, _ = w.Write([]byte(busy))
					case answer == "bad":
						w.WriteHeader(http.StatusBadRequest)
						_, _ = w.Write([]byte(`{"error":"invalid_client_metadata","error_description":"redirect_uris are bad"}`))
					case r.Method == http.MethodDelete:
						w.WriteHeader(http.StatusNoContent)
					case r.Method == http.MethodPost:
						w.WriteHeader(http.StatusCreated)
						_, _ = w.Write([]byte(`{"client_id":"abc"}`))
					default:
						_, _ = w.Write([]byte(`{"client_id":"abc"}`))
					}
				}))
				defer srv.Close()
				a, _ := hydra.NewAdmin(srv.URL, nil)
				ctx := context.Background()
				var err error
				switch write {
				case "create":
					_, err = a.Create(ctx, hydra.Client{ID: "abc"})
				case "replace":
					_, err = a.Replace(ctx, hydra.Client{ID: "abc"})
				case "delete":
					err = a.Delete(ctx, "abc")
				}
				if !c.check(err) {
					t.Fatalf("got %T %v", err, err)
				}
				got := int(calls.Load())
				if (c.calls == 0 && got != len(c.answers)) || (c.calls == 1 && got != 1) || (c.calls > 1 && (got < c.calls || got > 20)) {
					t.Fatalf("%d calls to Hydra", got)
				}
			})
		}
	}
}
