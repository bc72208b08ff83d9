package console

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// SignInEvent is a sign-in's outcome, for the server's metrics and audit.
type SignInEvent struct {
	// Outcome is "ok", "refused" (not an admin token) or "throttled" (refused
	// unread: the source or the name is still backing off).
	Outcome string
	// Source is the caller's address (an IPv6 address as its /64).
	Source string
	// Name is the token name the form gave as name:token, when it is one of the
	// server's; a wrong bare token names nobody.
	Name string
	// Audit says a refusal is within its source's hourly audit budget, so it is
	// to be written; past the budget it is only counted.
	Audit bool
}

func (h *Handler) loginPage(c echo.Context) error {
	return h.render(c, http.StatusOK, "login", "Sign in", h.loginData(""))
}

func (h *Handler) loginData(msg string) map[string]string {
	return map[string]string{"Error": msg, "Max": humanDuration(h.SessionMax)}
}

// login checks, in this order and each before any costlier step: the origin,
// the form's type and size, the source's and the name's backoff, and only then
// the token.
func (h *Handler) login(c echo.Context) error {
	if crossSite(c.Request()) {
		return c.String(http.StatusForbidden, "refused: cross-site sign-in")
	}
	if fe := readForm(c, maxSignInForm); fe != nil {
		return c.String(fe.status, fe.msg)
	}
	given := strings.TrimSpace(posted(c, "token"))
	now := h.Now()
	ev := SignInEvent{Source: h.source(c.Request()), Name: h.claimedName(given)}
	keys := []string{"addr:" + ev.Source}
	if ev.Name != "" {
		keys = append(keys, "name:"+ev.Name)
	}
	var wait time.Duration
	for _, k := range keys {
		wait = max(wait, h.failures.wait(k, now))
	}
	if wait > 0 {
		ev.Outcome = "throttled"
		h.Backend.NoteSignIn(c.Request().Context(), ev)
		secs := int(math.Ceil(wait.Seconds()))
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		return h.render(c, http.StatusTooManyRequests, "login", "Sign in",
			h.loginData(fmt.Sprintf("Too many failed sign-ins; the token was not checked. Try again in %d seconds.", secs)))
	}
	actor, ok := h.authenticate(given, ev.Name)
	if !ok {
		ev.Outcome, ev.Audit = "refused", h.failures.fail(keys[0], now)
		for _, k := range keys[1:] {
			h.failures.fail(k, now)
		}
		h.Backend.NoteSignIn(c.Request().Context(), ev)
		return h.render(c, http.StatusUnauthorized, "login", "Sign in", h.loginData("That is not an admin token of this server."))
	}
	for _, k := range keys {
		h.failures.clear(k)
	}
	ev.Outcome, ev.Name = "ok", actor
	h.Backend.NoteSignIn(c.Request().Context(), ev)
	s := session{id: newSessionID(), actor: actor, started: now}
	s.slide(now, h.SessionMax)
	h.setCookie(c, s.cookieValue(h.Backend.SessionKey()), int(s.expires.Sub(now).Seconds()))
	return c.Redirect(http.StatusSeeOther, "/console/")
}

// claimedName is the name of a value given as name:token (the form of
// OBDCR_ADMIN_TOKEN's entries) when the server has a token of that name: only
// then is the name throttled, so invented names fill no table.
func (h *Handler) claimedName(given string) string {
	if name, _, ok := strings.Cut(given, ":"); ok && h.Backend.KnownName(name) {
		return name
	}
	return ""
}

// authenticate takes a bare token, or name:token where the token is name's.
func (h *Handler) authenticate(given, name string) (string, bool) {
	if actor, ok := h.Backend.Authenticate(given); ok {
		return actor, true
	}
	if name == "" {
		return "", false
	}
	_, tok, _ := strings.Cut(given, ":")
	actor, ok := h.Backend.Authenticate(tok)
	return actor, ok && actor == name
}

// source is who a request comes from: its peer address, or behind a trusted
// proxy the address that proxy appended to X-Forwarded-For. An IPv6 address
// counts by its /64, which one host usually holds whole.
func (h *Handler) source(r *http.Request) string {
	addr := r.RemoteAddr
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 && h.TrustedProxy != nil && h.TrustedProxy(r) {
		last := xff[len(xff)-1]
		addr = strings.TrimSpace(last[strings.LastIndexByte(last, ',')+1:])
	}
	a, err := netip.ParseAddr(addr)
	if ap, perr := netip.ParseAddrPort(addr); perr == nil {
		a, err = ap.Addr(), nil
	}
	if err != nil {
		return "unknown" // not from a socket or a proxy we trust: all such share one key
	}
	if a = a.Unmap(); a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// logout ends the session everywhere, not only in this browser: the cookie is
// signed, not stored, so a copy of it would otherwise work until it expired.
func (h *Handler) logout(c echo.Context) error {
	h.setCookie(c, "", -1)
	s, _ := c.Get(sessionKey).(session)
	if err := h.Backend.EndSession(c.Request().Context(), s.id, s.expires); err != nil {
		return c.String(http.StatusServiceUnavailable, "signed out of this browser, but the store is unavailable, so a copy of this session would still work until it expires (30 minutes after the last page)")
	}
	return c.Redirect(http.StatusSeeOther, "/console/login")
}

// humanDuration says 8h as "8 hours" rather than "8h0m0s".
func humanDuration(d time.Duration) string {
	n, unit := int64(0), ""
	switch {
	case d <= 0:
		return d.String()
	case d%time.Hour == 0:
		n, unit = int64(d/time.Hour), "hour"
	case d%time.Minute == 0:
		n, unit = int64(d/time.Minute), "minute"
	default:
		return d.String()
	}
	if n != 1 {
		unit += "s"
	}
	return strconv.FormatInt(n, 10) + " " + unit
}
