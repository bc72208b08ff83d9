package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Sessions are stateless, so that every replica knows them: a cookie holds a
// random session id, the admin token's name, when it signed in and an expiry,
// signed with a key made from the admin tokens (rotating them ends every
// session). The expiry slides, 30 minutes after the last page, but never past
// the handler's SessionMax from the sign-in: a session kept busy (or a stolen
// cookie kept in use) still ends.
const (
	cookieName        = "obdcr_console"
	IdleTimeout       = 30 * time.Minute
	DefaultSessionMax = 8 * time.Hour
)

type session struct {
	id, actor        string
	started, expires time.Time
}

// slide moves the expiry to IdleTimeout from now, but not past the session's
// absolute end.
func (s *session) slide(now time.Time, maxAge time.Duration) {
	s.expires = now.Add(IdleTimeout)
	if end := s.started.Add(maxAge); end.Before(s.expires) {
		s.expires = end
	}
}

func sign(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s session) cookieValue(key []byte) string {
	start, exp := strconv.FormatInt(s.started.Unix(), 10), strconv.FormatInt(s.expires.Unix(), 10)
	payload := base64.RawURLEncoding.EncodeToString([]byte(s.id + "\x00" + s.actor + "\x00" + start + "\x00" + exp))
	return payload + "." + sign(key, "session", s.id, s.actor, start, exp)
}

// readSession checks a cookie's signature, its expiry and its age: one signed
// in more than maxAge ago is refused whatever its expiry says.
func readSession(key []byte, value string, now time.Time, maxAge time.Duration) (session, bool) {
	payload, mac, ok := strings.Cut(value, ".")
	if !ok {
		return session{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return session{}, false
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 4 || subtle.ConstantTimeCompare([]byte(mac), []byte(sign(key, "session", parts[0], parts[1], parts[2], parts[3]))) != 1 {
		return session{}, false
	}
	start, err1 := strconv.ParseInt(parts[2], 10, 64)
	exp, err2 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || now.Unix() > exp || now.Sub(time.Unix(start, 0)) > maxAge {
		return session{}, false
	}
	return session{id: parts[0], actor: parts[1], started: time.Unix(start, 0), expires: time.Unix(exp, 0)}, true
}

// csrf is the session's CSRF token: only a page of this session knows it.
func (s session) csrf(key []byte) string { return sign(key, "csrf", s.id) }

func newSessionID() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (h *Handler) setCookie(c echo.Context, value string, maxAge int) {
	c.SetCookie(&http.Cookie{Name: cookieName, Value: value, Path: "/console/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.secure(c)})
}

// secure: the admin came over TLS, or through a trusted proxy that says so.
func (h *Handler) secure(c echo.Context) bool {
	if c.Request().TLS != nil {
		return true
	}
	return h.TrustedProxy != nil && h.TrustedProxy(c.Request()) && c.Request().Header.Get("X-Forwarded-Proto") == "https"
}

// crossSite tells a form posted from another origin: the browser says so in
// Sec-Fetch-Site, or its Origin is not this host.
func crossSite(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site != "same-origin" && site != "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return origin == "null"
	}
	host := strings.TrimPrefix(strings.TrimPrefix(origin, "https://"), "http://")
	return host != r.Host
}
