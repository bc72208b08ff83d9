// Package console is the policy console: the admin API in a browser, for the
// policy admins who run obdcr. Pages are rendered on the server from embedded
// templates and work without JavaScript; the stylesheet is served from here.
package console

import (
	"bytes"
	"crypto/subtle"
	"crypto/x509"
	"embed"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/service"
	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

//go:embed templates/*.html static/*
var files embed.FS

// Handler serves the console under /console/.
type Handler struct {
	Backend Backend
	// Service does what the pages ask; Mount refuses to serve without it.
	Service Service
	// TrustedProxy says whether a request came through a proxy whose
	// X-Forwarded-Proto may be believed (for the cookie's Secure flag).
	TrustedProxy func(*http.Request) bool
	Now          func() time.Time
	// SessionMax is a session's absolute lifetime from its sign-in
	// (OBDCR_CONSOLE_SESSION_MAX); the idle expiry slides within it.
	SessionMax time.Duration

	pages    map[string]*template.Template
	failures *throttle // sign-in failures by source address and by token name
}

// New parses the templates; they are part of the binary, so an error is a bug.
func New(b Backend, trustedProxy func(*http.Request) bool) *Handler {
	h := &Handler{Backend: b, TrustedProxy: trustedProxy, Now: time.Now, SessionMax: DefaultSessionMax,
		pages: map[string]*template.Template{}, failures: newThrottle(maxThrottleKeys)}
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html"))
	names, _ := fs.Glob(files, "templates/*.html")
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		h.pages[name] = template.Must(template.Must(base.Clone()).ParseFS(files, n))
	}
	return h
}

// Mount adds the console's routes to e.
func (h *Handler) Mount(e *echo.Echo) {
	if h.Service == nil {
		panic("console: Handler.Service is not set") // wiring, found at start-up
	}
	g := e.Group("/console", h.headers)
	static, _ := fs.Sub(files, "static")
	g.GET("/static/*", echo.WrapHandler(http.StripPrefix("/console/static/", http.FileServer(http.FS(static)))))
	g.GET("/login", h.loginPage)
	g.POST("/login", h.login)
	s := g.Group("", h.signedIn)
	s.POST("/logout", h.logout)
	s.GET("/", h.overview)
	s.GET("/profiles", h.profiles)
	s.POST("/profiles/:profile", h.saveProfile)
	s.GET("/registrations", h.registrations)
	s.GET("/registrations/:client_id", h.registration)
	s.GET("/registrations/:client_id/delete", h.confirmDelete)
	s.POST("/registrations/:client_id/delete", h.deleteRegistration)
	s.GET("/audit", h.audit)
	s.GET("/dry-run", h.dryRunPage)
	s.POST("/dry-run", h.dryRun)
	e.GET("/console", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/console/") })
}

// headers: no inline script or style, no framing, no referrer, no sniffing.
func (h *Handler) headers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		w := c.Response().Header()
		w.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		w.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: with no-referrer a browser sends Origin:
		// null on a form post, and the same-site check could not tell.
		w.Set("Referrer-Policy", "same-origin")
		w.Set("X-Content-Type-Options", "nosniff")
		w.Set("Cache-Control", "no-store")
		return next(c)
	}
}

const (
	sessionKey = "console.session"
)

// signedIn lets a request with a valid session through, sliding its expiry
// within the session's absolute lifetime; a state-changing request must also
// be a form within its size cap, carry the session's CSRF token and come from
// this site.
func (h *Handler) signedIn(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := h.Backend.SessionKey()
		ck, err := c.Cookie(cookieName)
		var s session
		ok := err == nil
		if ok {
			s, ok = readSession(key, ck.Value, h.Now(), h.SessionMax)
		}
		if ok {
			ended, err := h.Backend.SessionEnded(c.Request().Context(), s.id)
			if err != nil {
				return c.String(http.StatusServiceUnavailable, "the store cannot be read, so this session cannot be checked; try again")
			}
			ok = !ended
		}
		if !ok {
			if c.Request().Method != http.MethodGet {
				return c.String(http.StatusForbidden, "sign in first")
			}
			return c.Redirect(http.StatusSeeOther, "/console/login")
		}
		if c.Request().Method == http.MethodPost {
			if fe := readForm(c, formLimit(c)); fe != nil {
				return c.String(fe.status, fe.msg)
			}
			if crossSite(c.Request()) || !hmacEqual(posted(c, "csrf"), s.csrf(key)) {
				return c.String(http.StatusForbidden, "refused: this form did not come from this console's page (CSRF)")
			}
		}
		now := h.Now()
		s.slide(now, h.SessionMax)
		h.setCookie(c, s.cookieValue(key), int(s.expires.Sub(now).Seconds()))
		c.Set(sessionKey, s)
		return next(c)
	}
}

// actor is who the session signed in as: the service audits changes under it.
func actor(c echo.Context) service.ConsoleSession {
	s, _ := c.Get(sessionKey).(session)
	return service.ConsoleSession{Token: s.actor}
}

func hmacEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// pageData is what every page gets.
type pageData struct {
	Title, Nav, Actor, CSRF, Flash string
	Data                           any
}

func (h *Handler) render(c echo.Context, status int, page, title string, data any) error {
	v := pageData{Title: title, Nav: page, Data: data}
	if s, ok := c.Get(sessionKey).(session); ok {
		v.Actor, v.CSRF = s.actor, s.csrf(h.Backend.SessionKey())
	}
	if f := c.QueryParam("done"); f != "" {
		v.Flash = f
	}
	var buf bytes.Buffer
	if err := h.pages[page].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return err
	}
	return c.HTMLBlob(status, buf.Bytes())
}

func (h *Handler) overview(c echo.Context) error {
	return h.render(c, http.StatusOK, "overview", "Overview", h.Service.Overview(c.Request().Context()))
}

// profileForm is a profile with what the last save said about it.
type profileForm struct {
	Policy
	Errors  map[string]string
	Changes []change
	Values  map[string]string
}

type change struct{ Field, Before, After string }

func (h *Handler) profiles(c echo.Context) error {
	ps, err := h.Service.Policies(c.Request().Context())
	if err != nil {
		return err
	}
	forms := make([]profileForm, len(ps))
	for i, p := range ps {
		forms[i] = profileForm{Policy: p, Values: settingValues(p)}
	}
	return h.render(c, http.StatusOK, "profiles", "Profiles", forms)
}

func (h *Handler) saveProfile(c echo.Context) error {
	name := c.Param("profile")
	ps, err := h.Service.Policies(c.Request().Context())
	if err != nil {
		return err
	}
	idx := slices.IndexFunc(ps, func(p Policy) bool { return p.Profile == name })
	if idx < 0 {
		return c.String(http.StatusNotFound, "no such profile")
	}
	enabled := posted(c, "enabled") == "on"
	patch, values := settingsPatch(c, ps[idx])
	forms := make([]profileForm, len(ps))
	for i, p := range ps {
		forms[i] = profileForm{Policy: p, Values: settingValues(p)}
	}
	change := service.PolicyChange{Enabled: &enabled}
	if string(patch) != "{}" {
		change.Settings = patch
	}
	before, after, err := h.Service.SavePolicy(c.Request().Context(), actor(c), name, change)
	var se *store.SettingsError
	switch {
	case errors.As(err, &se):
		field, _, _ := strings.Cut(se.Error(), ":")
		forms[idx].Values = values
		forms[idx].Errors = map[string]string{field: se.Error()}
		return h.render(c, http.StatusBadRequest, "profiles", "Profiles", forms)
	case err != nil:
		return err
	}
	forms[idx] = profileForm{Policy: after, Values: settingValues(after), Changes: changes(before, after)}
	return h.render(c, http.StatusOK, "profiles", "Profiles", forms)
}

func (h *Handler) registrations(c echo.Context) error {
	q := map[string]string{"software_id": c.QueryParam("software_id"), "org_id": c.QueryParam("org_id"), "client_id": c.QueryParam("client_id")}
	data := map[string]any{"Query": q}
	if q["software_id"] != "" || q["org_id"] != "" || q["client_id"] != "" {
		regs, err := h.Service.Registrations(c.Request().Context(),
			service.RegistrationQuery{SoftwareID: q["software_id"], OrgID: q["org_id"], ClientID: q["client_id"]})
		if err != nil {
			return err
		}
		data["Results"], data["Searched"] = regs, true
	}
	return h.render(c, http.StatusOK, "registrations", "Registrations", data)
}

func (h *Handler) registration(c echo.Context) error {
	r, err := h.Service.Registration(c.Request().Context(), c.Param("client_id"))
	if err != nil {
		return h.noRegistration(c, err)
	}
	return h.render(c, http.StatusOK, "registration", "Registration "+r.ClientID, map[string]any{"R": r, "Metadata": pretty(r.Metadata), "Hydra": prettyRaw(r.HydraClient)})
}

// noRegistration answers a registration that could not be loaded: the search
// page, filled in with the id, saying there is none (404); any other error is
// the server's to answer (a store or Hydra outage is a 503).
func (h *Handler) noRegistration(c echo.Context, err error) error {
	if !errors.Is(err, policy.ErrNoRegistration) {
		return err
	}
	q := map[string]string{"software_id": "", "org_id": "", "client_id": c.Param("client_id")}
	return h.render(c, http.StatusNotFound, "registrations", "Registrations", map[string]any{"Query": q, "Error": "No registration with that client_id."})
}

func (h *Handler) confirmDelete(c echo.Context) error {
	r, err := h.Service.Registration(c.Request().Context(), c.Param("client_id"))
	if err != nil {
		return h.noRegistration(c, err)
	}
	return h.render(c, http.StatusOK, "delete", "Delete "+r.ClientID, r)
}

func (h *Handler) deleteRegistration(c echo.Context) error {
	id := c.Param("client_id")
	if err := h.Service.Delete(c.Request().Context(), actor(c), id, "removed by an admin in the console"); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/console/registrations?done="+urlQuery("Deleted "+id+" and its tokens; the software may register again."))
}

// auditRow is an entry with what the page shows of it.
type auditRow struct {
	store.AuditEntry
	Diff []change
}

func (h *Handler) audit(c echo.Context) error {
	q := store.AuditQuery{Limit: 50, Profile: c.QueryParam("profile"), Kind: c.QueryParam("kind"),
		Outcome: c.QueryParam("outcome"), SoftwareID: c.QueryParam("software_id")}
	q.BeforeID, _ = strconv.ParseInt(c.QueryParam("before"), 10, 64)
	entries, err := h.Service.Audit(c.Request().Context(), q)
	if err != nil {
		return err
	}
	rows := make([]auditRow, len(entries))
	for i, e := range entries {
		rows[i] = auditRow{AuditEntry: e, Diff: jsonDiff(e.Before, e.After)}
	}
	data := map[string]any{"Rows": rows, "Query": q}
	if len(entries) == q.Limit {
		data["Older"] = entries[len(entries)-1].ID
	}
	return h.render(c, http.StatusOK, "audit", "Audit", data)
}

func (h *Handler) dryRunPage(c echo.Context) error {
	return h.render(c, http.StatusOK, "dryrun", "Dry run", nil)
}

func (h *Handler) dryRun(c echo.Context) error {
	jwt := strings.TrimSpace(posted(c, "jwt"))
	cert := strings.TrimSpace(posted(c, "cert"))
	data := map[string]any{"JWT": jwt, "Cert": cert}
	if jwt == "" {
		data["Error"] = "Paste a registration request JWT."
		return h.render(c, http.StatusBadRequest, "dryrun", "Dry run", data)
	}
	if len(jwt) > maxDryRunJWT {
		// As POST /admin/dry-run and POST /register answer it; the JWT is not
		// shown again, so the page stays small.
		data["JWT"], data["Error"] = "", fmt.Sprintf("The JWT is %d KiB; a registration request is at most %d KiB (POST /register and POST /admin/dry-run answer 413).", len(jwt)>>10, maxDryRunJWT>>10)
		return h.render(c, http.StatusRequestEntityTooLarge, "dryrun", "Dry run", data)
	}
	rep, err := h.dryRunReport(c, []byte(jwt), []byte(cert))
	if err != nil {
		data["Error"] = err.Error()
		return h.render(c, http.StatusBadRequest, "dryrun", "Dry run", data)
	}
	data["Report"] = rep
	return h.render(c, http.StatusOK, "dryrun", "Dry run", data)
}

// dryRunReport runs the dry run with the certificate pasted, if any.
func (h *Handler) dryRunReport(c echo.Context, jwt, certPEM []byte) (view.DryRun, error) {
	var cert *x509.Certificate
	if len(certPEM) > 0 {
		block, _ := pem.Decode(certPEM)
		if block == nil || block.Type != "CERTIFICATE" {
			return view.DryRun{}, errors.New("the certificate is not PEM")
		}
		var err error
		if cert, err = x509.ParseCertificate(block.Bytes); err != nil {
			return view.DryRun{}, fmt.Errorf("the certificate: %v", err)
		}
	}
	return h.Service.DryRun(c.Request().Context(), actor(c), jwt, cert)
}

func pretty(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func prettyRaw(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	return pretty(v)
}

func urlQuery(s string) string { return template.URLQueryEscaper(s) }

var funcs = template.FuncMap{
	"bar": func(n, max, height int) int {
		if max == 0 {
			return 0
		}
		return n * height / max
	},
	"maxHour": func(hours [24][2]int) int {
		m := 1
		for _, h := range hours {
			m = max(m, h[0]+h[1])
		}
		return m
	},
	"add": func(a, b int) int { return a + b },
	"mul": func(a, b int) int { return a * b },
	"sub": func(a, b int) int { return a - b },
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"join":     strings.Join,
	"fieldErr": func(m map[string]string, k string) string { return m[k] },
	"val":      func(m map[string]string, k string) string { return m[k] },
	"fmtInt":   func(v int64) string { return fmt.Sprint(v) },
	"list": func() []string {
		return []string{"signing_algs", "token_endpoint_auth_methods", "grant_types", "response_types", "application_types", "scopes",
			"clock_skew", "ssa_max_age", "request_max_age", "allow_delete", "require_active_status", "multiple_registrations", "transport_certificate",
			"require_par", "pkce_required", "response_modes", "bound_tokens"}
	},
	"isBool": func(f string) bool {
		return f == "allow_delete" || f == "require_active_status" || f == "multiple_registrations" || f == "require_par" || f == "pkce_required" || f == "bound_tokens"
	},
	"transportModes": func() []string { return []string{"any", "jwks", "subject", "none"} },
	"kinds": func() []string {
		return []string{"", "registration", "management", "policy", "dry_run", store.KindSignIn}
	},
}
