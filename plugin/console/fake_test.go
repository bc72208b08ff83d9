package console

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/service"
	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
	"github.com/obdcr/obdcr/policy/uk"
)

// Tokens of the fake backend: a bare one (named admin) and alice's.
const (
	adminTok = "admin-token-0123456789"
	aliceTok = "alice-token-0123456789"
)

// fakeBackend is a server (its sign-in and its service) with two admin tokens,
// one profile, no registration and a dry run that approves; it records what
// the console asked of it.
type fakeBackend struct {
	mu       sync.Mutex
	compared int           // tokens compared
	events   []SignInEvent // sign-ins noted
	regErr   error         // what Registration answers
}

func (f *fakeBackend) Authenticate(token string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.compared++
	switch token {
	case adminTok:
		return "admin", true
	case aliceTok:
		return "alice", true
	}
	return "", false
}

func (f *fakeBackend) KnownName(name string) bool { return name == "admin" || name == "alice" }

func (f *fakeBackend) NoteSignIn(_ context.Context, e SignInEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
}

func (f *fakeBackend) SessionKey() []byte                                  { return []byte("fake session key") }
func (f *fakeBackend) EndSession(context.Context, string, time.Time) error { return nil }
func (f *fakeBackend) SessionEnded(context.Context, string) (bool, error)  { return false, nil }
func (f *fakeBackend) Overview(context.Context) view.Overview              { return view.Overview{} }
func (f *fakeBackend) Delete(context.Context, service.Actor, string, string) error {
	return f.regErr
}
func (f *fakeBackend) Registration(context.Context, string) (view.RegistrationDetail, error) {
	return view.RegistrationDetail{}, f.regErr
}

func (f *fakeBackend) Policies(context.Context) ([]view.Policy, error) {
	return []Policy{{Profile: "uk", Enabled: true, Settings: uk.Defaults()}}, nil
}

func (f *fakeBackend) SavePolicy(context.Context, service.Admin, string, service.PolicyChange) (view.Policy, view.Policy, error) {
	p, _ := f.Policies(context.Background())
	return p[0], p[0], nil
}

func (f *fakeBackend) Registrations(context.Context, service.RegistrationQuery) ([]view.Registration, error) {
	return nil, nil
}

func (f *fakeBackend) Audit(context.Context, store.AuditQuery) ([]view.AuditEntry, error) {
	return nil, nil
}

func (f *fakeBackend) DryRun(context.Context, service.Admin, []byte, *x509.Certificate) (view.DryRun, error) {
	return view.DryRun{Profile: "uk", Outcome: "approved", Rules: []policy.RuleResult{}}, nil
}

func (f *fakeBackend) tokensCompared() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.compared
}

// clock is a settable time for the handler.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// testConsole is a console over a fake backend on a clock of the test's.
type testConsole struct {
	t  *testing.T
	e  *echo.Echo
	h  *Handler
	b  *fakeBackend
	at *clock
}

func newTestConsole(t *testing.T) *testConsole {
	b := &fakeBackend{}
	at := &clock{t: time.Date(2025, 1, 2, 9, 0, 0, 0, time.UTC)}
	h := New(b, nil)
	h.Service = b
	h.Now = at.now
	e := echo.New()
	h.Mount(e)
	return &testConsole{t: t, e: e, h: h, b: b, at: at}
}

// request sends a request from addr with the cookie, if any, and answers the recording.
func (tc *testConsole) request(method, path, addr, contentType string, body io.Reader, cookie string) *httptest.ResponseRecorder {
	tc.t.Helper()
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = addr
	if contentType != "" {
		req.Header.Set(echo.HeaderContentType, contentType)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: cookieName, Value: cookie})
	}
	rec := httptest.NewRecorder()
	tc.e.ServeHTTP(rec, req)
	return rec
}

// signIn posts token from addr as the sign-in form does.
func (tc *testConsole) signIn(addr, token string) *httptest.ResponseRecorder {
	tc.t.Helper()
	return tc.request(http.MethodPost, "/console/login", addr, echo.MIMEApplicationForm, strings.NewReader(url.Values{"token": {token}}.Encode()), "")
}

// session signs in with the admin token and answers the cookie and its CSRF token.
func (tc *testConsole) session() (cookie, csrf string) {
	tc.t.Helper()
	rec := tc.signIn("192.0.2.200:4000", adminTok)
	for _, c := range rec.Result().Cookies() {
		if c.Name == cookieName {
			s, ok := readSession(tc.b.SessionKey(), c.Value, tc.at.now(), tc.h.SessionMax)
			if !ok {
				tc.t.Fatal("the sign-in's cookie does not read back")
			}
			return c.Value, s.csrf(tc.b.SessionKey())
		}
	}
	tc.t.Fatalf("sign-in set no cookie: %d %s", rec.Code, rec.Body)
	return "", ""
}

// filler is n bytes of form, produced as read: a 30 MiB body costs the test nothing.
func filler(n int64) io.Reader {
	return io.LimitReader(repeatReader('a'), n)
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
