package plugin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/reload"
	"github.com/obdcr/obdcr/plugin/service"
	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy/store"
)

// adminToken is one accepted admin bearer token. OBDCR_ADMIN_TOKEN is one token
// (named "admin"), or several as name:token pairs separated by commas, so that
// the audit can say who changed a policy.
type adminToken struct {
	name string
	hash [32]byte
}

var tokenName = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

func parseAdminTokens(v string) ([]adminToken, error) {
	return parseNamedTokens("OBDCR_ADMIN_TOKEN", v)
}

// parseNamedTokens reads variable's token or name:token entries.
func parseNamedTokens(variable, v string) ([]adminToken, error) {
	var out []adminToken
	names := map[string]bool{}
	for i, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("%s: entry %d is empty", variable, i+1)
		}
		// An entry with a colon is always name:token; the token is everything after
		// the first colon. A bare token therefore cannot hold a colon: rather than
		// split one silently at it, such an entry must name its token.
		name, tok := "admin", item
		if n, t, ok := strings.Cut(item, ":"); ok {
			if !tokenName.MatchString(n) {
				return nil, fmt.Errorf("%s: entry %d has a colon, so it is name:token, but its name is not 1-64 of A-Z a-z 0-9 _ . @ -; a token with a colon must be named, as admin:TOKEN", variable, i+1)
			}
			name, tok = n, t
		}
		if len(tok) < 16 {
			return nil, fmt.Errorf("%s: the token of entry %d (%s) has fewer than 16 characters", variable, i+1, name)
		}
		if names[name] && name != "admin" {
			return nil, fmt.Errorf("%s: the name %s is given twice", variable, name)
		}
		names[name] = true
		out = append(out, adminToken{name: name, hash: sha256.Sum256([]byte(tok))})
	}
	return out, nil
}

// adminTokenSource is OBDCR_ADMIN_TOKEN's tokens, or OBDCR_ADMIN_TOKEN_FILE's,
// re-read when the file changes: a rotated token works at once, the old one
// stops, and no restart is needed. A file made invalid, empty or deleted fails
// closed: no admin token is accepted until it is mended, because emptying it
// is how an operator would revoke every token.
func adminTokenSource(cfg Config, report *reloadReport) (*reload.Value[[]adminToken], error) {
	if cfg.AdminTokenFile == "" {
		tokens, err := parseAdminTokens(cfg.AdminToken)
		return reload.Static(tokens), err
	}
	v, err := reload.New(report.options("OBDCR_ADMIN_TOKEN_FILE", true), func(c [][]byte) ([]adminToken, error) {
		return parseAdminTokens(strings.TrimSpace(string(c[0])))
	}, cfg.AdminTokenFile)
	if err != nil {
		return nil, fmt.Errorf("OBDCR_ADMIN_TOKEN_FILE: %v", err)
	}
	return v, nil
}

// adminAuth checks the bearer token in constant time. Comparing hashes of equal
// length means neither the token's content nor its length leaks through timing.
// The admin it names travels on the request's context to asAdmin.
func (s *Server) adminAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		scheme, tok, _ := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
		match := s.adminTokenName(strings.TrimSpace(tok))
		if match == "" || !strings.EqualFold(scheme, "Bearer") {
			e := newHTTPError(http.StatusUnauthorized, "invalid_token", "the admin API needs Authorization: Bearer with OBDCR_ADMIN_TOKEN")
			e.header = map[string]string{"WWW-Authenticate": `Bearer realm="obdcr-admin"`}
			return e
		}
		c.SetRequest(c.Request().WithContext(context.WithValue(c.Request().Context(), adminKey{}, service.AdminToken{Token: match})))
		markProven(c)
		return next(c)
	}
}

type adminKey struct{}

// adminHandler is an admin API handler, given the admin who called.
type adminHandler func(c echo.Context, admin service.AdminToken) error

// asAdmin gives h the admin adminAuth proved; a route outside adminAuth's
// group has none, and is refused rather than run as nobody.
func asAdmin(h adminHandler) echo.HandlerFunc {
	return func(c echo.Context) error {
		admin, ok := c.Request().Context().Value(adminKey{}).(service.AdminToken)
		if !ok {
			return errors.New("an admin route is served without the admin token check")
		}
		return h(c, admin)
	}
}

// adminTokenName is the name of the admin token given, or "". Every token is
// compared, by hash, in constant time: neither content nor length leaks.
func (s *Server) adminTokenName(token string) string {
	sum := sha256.Sum256([]byte(token))
	match := ""
	for _, t := range s.adminTokens.Get() {
		if subtle.ConstantTimeCompare(sum[:], t.hash[:]) == 1 {
			match = t.name
		}
	}
	return match
}

func (s *Server) listPolicies(c echo.Context, _ service.AdminToken) error {
	out, err := s.svc.Policies(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) putPolicy(c echo.Context, admin service.AdminToken) error {
	var body struct {
		Enabled  *bool           `json:"enabled"`
		Settings json.RawMessage `json:"settings"`
	}
	if _, ok := s.registrar.Profile(c.Param("profile")); ok {
		dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			return newHTTPError(http.StatusBadRequest, "invalid_request", `the body must be {"enabled": true|false} and/or {"settings": {...}}: `+err.Error())
		}
		if body.Enabled == nil && len(body.Settings) == 0 {
			return newHTTPError(http.StatusBadRequest, "invalid_request", `nothing to change: send "enabled" and/or "settings"`)
		}
	}
	change := service.PolicyChange{Enabled: body.Enabled, Settings: body.Settings}
	if m := c.Request().Header.Get("If-Match"); m != "" {
		v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(m, "W/"), `"`), `"`), 10, 64)
		if err != nil {
			return newHTTPError(http.StatusBadRequest, "invalid_request", `If-Match must be a profile version from GET /admin/policies, as "7"`)
		}
		change.IfMatch = &v
	}
	_, after, err := s.svc.SavePolicy(c.Request().Context(), admin, c.Param("profile"), change)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", `"`+strconv.FormatInt(after.Version, 10)+`"`)
	return c.JSON(http.StatusOK, after)
}

func (s *Server) listAudit(c echo.Context, _ service.AdminToken) error {
	q := store.AuditQuery{SoftwareID: c.QueryParam("software_id"), Profile: c.QueryParam("profile"), Kind: c.QueryParam("kind"),
		Outcome: c.QueryParam("outcome")}
	if b := c.QueryParam("before"); b != "" {
		id, err := strconv.ParseInt(b, 10, 64)
		if err != nil || id < 1 {
			return newHTTPError(http.StatusBadRequest, "invalid_request", "before must be an entry id: the page goes back from it")
		}
		q.BeforeID = id
	}
	if l := c.QueryParam("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxAuditLimit {
			return newHTTPError(http.StatusBadRequest, "invalid_request", "limit must be a number from 1 to "+strconv.Itoa(store.MaxAuditLimit))
		}
		q.Limit = n
	}
	entries, err := s.svc.Audit(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, entries)
}

func (s *Server) listRegistrations(c echo.Context, _ service.AdminToken) error {
	q := service.RegistrationQuery{SoftwareID: c.QueryParam("software_id"), OrgID: c.QueryParam("org_id")}
	out, err := s.svc.Registrations(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// deleteRegistrationAdmin removes a registration for an admin, such as when a
// TPP lost its client_id and cannot re-register while one per software_id holds.
func (s *Server) deleteRegistrationAdmin(c echo.Context, admin service.AdminToken) error {
	if err := s.svc.Delete(c.Request().Context(), admin, c.Param("client_id"), "removed by an admin"); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// RegistrationView is a registration as admins see it (GET /admin/registrations).
type RegistrationView = view.Registration
