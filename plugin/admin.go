package plugin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/reload"
	"github.com/obdcr/obdcr/policy"
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
	var out []adminToken
	names := map[string]bool{}
	for i, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("OBDCR_ADMIN_TOKEN: entry %d is empty", i+1)
		}
		// An entry with a colon is always name:token; the token is everything after
		// the first colon. A bare token therefore cannot hold a colon: rather than
		// split one silently at it, such an entry must name its token.
		name, tok := "admin", item
		if n, t, ok := strings.Cut(item, ":"); ok {
			if !tokenName.MatchString(n) {
				return nil, fmt.Errorf("OBDCR_ADMIN_TOKEN: entry %d has a colon, so it is name:token, but its name is not 1-64 of A-Z a-z 0-9 _ . @ -; a token with a colon must be named, as admin:TOKEN", i+1)
			}
			name, tok = n, t
		}
		if len(tok) < 16 {
			return nil, fmt.Errorf("OBDCR_ADMIN_TOKEN: the token of entry %d (%s) has fewer than 16 characters", i+1, name)
		}
		if names[name] && name != "admin" {
			return nil, fmt.Errorf("OBDCR_ADMIN_TOKEN: the name %s is given twice", name)
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
func (s *Server) adminAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		scheme, tok, _ := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
		match := s.adminTokenName(strings.TrimSpace(tok))
		if match == "" || !strings.EqualFold(scheme, "Bearer") {
			e := newHTTPError(http.StatusUnauthorized, "invalid_token", "the admin API needs Authorization: Bearer with OBDCR_ADMIN_TOKEN")
			e.header = map[string]string{"WWW-Authenticate": `Bearer realm="obdcr-admin"`}
			return e
		}
		c.Set("actor", match)
		markProven(c)
		return next(c)
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

func actor(c echo.Context) string {
	a, _ := c.Get("actor").(string)
	return a
}

// policyView is one profile as GET /admin/policies shows it.
type policyView struct {
	Profile  string          `json:"profile"`
	Enabled  bool            `json:"enabled"`
	Issuer   string          `json:"issuer"`
	Settings policy.Settings `json:"settings"`
	Rules    []string        `json:"rules"`
	// Version changes on every save; send it back as If-Match to save only over it.
	Version int64 `json:"version"`
}

func (s *Server) policyView(p *policy.Profile, st policy.State) policyView {
	return policyView{Profile: p.Name, Enabled: st.Enabled, Issuer: p.Issuer, Settings: st.Settings, Rules: p.RuleNames(), Version: st.Version}
}

func (s *Server) listPolicies(c echo.Context) error {
	out := []policyView{}
	for _, p := range s.registrar.Profiles {
		st, err := s.state.State(c.Request().Context(), p.Name)
		if err != nil {
			return &policy.Unavailable{Dependency: "store", Err: err}
		}
		out = append(out, s.policyView(p, st))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) putPolicy(c echo.Context) error {
	name := c.Param("profile")
	p, ok := s.registrar.Profile(name)
	if !ok {
		return newHTTPError(http.StatusNotFound, "not_found", "no profile "+strconv.Quote(name)+"; see GET /admin/policies")
	}
	var body struct {
		Enabled  *bool           `json:"enabled"`
		Settings json.RawMessage `json:"settings"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return newHTTPError(http.StatusBadRequest, "invalid_request", `the body must be {"enabled": true|false} and/or {"settings": {...}}: `+err.Error())
	}
	if body.Enabled == nil && len(body.Settings) == 0 {
		return newHTTPError(http.StatusBadRequest, "invalid_request", `nothing to change: send "enabled" and/or "settings"`)
	}
	change := store.Change{Enabled: body.Enabled, Settings: body.Settings, Actor: actor(c), RequestID: requestID(c)}
	if m := c.Request().Header.Get("If-Match"); m != "" {
		v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(m, "W/"), `"`), `"`), 10, 64)
		if err != nil {
			return newHTTPError(http.StatusBadRequest, "invalid_request", `If-Match must be a profile version from GET /admin/policies, as "7"`)
		}
		change.IfMatch = &v
	}
	st, err := s.state.Apply(c.Request().Context(), name, change)
	var se *store.SettingsError
	switch {
	case errors.As(err, &se):
		return newHTTPError(http.StatusBadRequest, "invalid_request", se.Error())
	case errors.Is(err, store.ErrStale):
		return newHTTPError(http.StatusPreconditionFailed, "precondition_failed", "the profile was changed since that version; GET /admin/policies and apply your change again")
	case err != nil:
		return &policy.Unavailable{Dependency: "store", Err: err}
	}
	c.Response().Header().Set("ETag", `"`+strconv.FormatInt(st.Version, 10)+`"`)
	s.log.Info("policy changed", "profile", name, "actor", actor(c), "enabled", st.Enabled, "request_id", requestID(c))
	return c.JSON(http.StatusOK, s.policyView(p, st))
}

func (s *Server) listAudit(c echo.Context) error {
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
	entries, err := s.store.Audit(c.Request().Context(), q)
	if err != nil {
		return &policy.Unavailable{Dependency: "store", Err: err}
	}
	return c.JSON(http.StatusOK, entries)
}

// RegistrationView is a registration as admins see it: GET /admin/registrations
// answers a list of them, and the CLI reads them back with this same type.
type RegistrationView struct {
	ClientID       string    `json:"client_id"`
	Profile        string    `json:"profile"`
	SoftwareID     string    `json:"software_id"`
	OrgID          string    `json:"org_id"`
	ClientName     string    `json:"client_name,omitempty"`
	IssuedAt       time.Time `json:"client_id_issued_at"`
	RedirectURIs   []string  `json:"redirect_uris"`
	Scope          string    `json:"scope,omitempty"`
	CertThumbprint string    `json:"cert_thumbprint"`
}

func (s *Server) listRegistrations(c echo.Context) error {
	sw, org := c.QueryParam("software_id"), c.QueryParam("org_id")
	if sw == "" && org == "" {
		return newHTTPError(http.StatusBadRequest, "invalid_request", "give software_id and/or org_id")
	}
	regs, err := s.registrar.Find(c.Request().Context(), sw, org)
	if err != nil {
		return err
	}
	out := []RegistrationView{}
	for _, r := range regs {
		out = append(out, RegistrationView{ClientID: r.ClientID, Profile: r.Profile, SoftwareID: r.SoftwareID, OrgID: r.OrgID,
			ClientName: r.Metadata.ClientName, IssuedAt: r.IssuedAt, RedirectURIs: r.Metadata.RedirectURIs, Scope: r.Metadata.Scope,
			CertThumbprint: r.CertThumbprint})
	}
	return c.JSON(http.StatusOK, out)
}

// deleteRegistrationAdmin removes a registration for an admin, such as when a
// TPP lost its client_id and cannot re-register while one per software_id holds.
func (s *Server) deleteRegistrationAdmin(c echo.Context) error {
	ctx := c.Request().Context()
	reg, err := s.registrar.Load(ctx, c.Param("client_id"))
	if errors.Is(err, policy.ErrNoRegistration) {
		return newHTTPError(http.StatusNotFound, "not_found", "no registration with that client_id")
	}
	if err != nil {
		return err
	}
	if err := s.adminDelete(c, reg, "removed by an admin"); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// adminDelete removes a registration for an admin (API or console): audited
// before it happens, as a deletion must never be without its entry.
func (s *Server) adminDelete(c echo.Context, reg *policy.Registration, why string) error {
	if err := s.audit(c, store.AuditEntry{Kind: store.KindManagement, Profile: reg.Profile, SoftwareID: reg.SoftwareID, OrgID: reg.OrgID,
		ClientID: reg.ClientID, Outcome: "deleted", Actor: actor(c), Description: why}); err != nil {
		return err
	}
	return s.deregisterAudited(c, reg)
}

// deregisterAudited removes a client whose deletion is already in the audit; if
// the removal then fails, a second entry says so.
func (s *Server) deregisterAudited(c echo.Context, reg *policy.Registration) error {
	err := s.registrar.Deregister(c.Request().Context(), reg.ClientID)
	if err == nil || errors.Is(err, policy.ErrNoRegistration) {
		return nil
	}
	_ = s.audit(c, store.AuditEntry{Kind: store.KindManagement, Profile: reg.Profile, SoftwareID: reg.SoftwareID, OrgID: reg.OrgID,
		ClientID: reg.ClientID, Outcome: "failed", Actor: actor(c), Description: "deletion failed: " + err.Error()})
	return err
}
