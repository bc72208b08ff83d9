package plugin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// unauthorized is RFC 6750's 401. Every way a management call can fail to prove
// itself gives the same status, so that a caller learns nothing about client ids
// that are not its own; the description says what to fix.
func unauthorized(desc string) *httpError {
	e := newHTTPError(http.StatusUnauthorized, "invalid_token", desc)
	e.header = map[string]string{"WWW-Authenticate": `Bearer error="invalid_token", error_description="` + strings.ReplaceAll(desc, `"`, "'") + `"`}
	return e
}

func insufficientScope(scope string) *httpError {
	e := newHTTPError(http.StatusForbidden, "insufficient_scope", "the token lacks the scope "+scope)
	e.header = map[string]string{"WWW-Authenticate": `Bearer error="insufficient_scope", scope="` + scope + `"`}
	return e
}

// authorize proves a management call (OBIE DCR v3.3, CDS): a client_credentials
// access token Hydra issued to exactly this client, presented over the TLS
// certificate the client registered with. Hydra cannot bind tokens to
// certificates (RFC 8705), so obdcr checks the binding here.
//
// The order is what the caller has proved so far: first a certificate from a
// trusted CA (a caller without one is never audited: it could be anyone, as
// often as it likes), then a client_id of the shape obdcr issues, then the token.
func (s *Server) authorize(c echo.Context) (*policy.Registration, error) {
	cert, err := s.certs.request(c)
	if err != nil {
		return nil, &unproven{unauthorized(err.Error())}
	}
	c.Set(certThumbprintKey, policy.Thumbprint(cert))
	markProven(c)
	clientID := c.Param("client_id")
	if !issuedShape(clientID) {
		return nil, unauthorized("the client_id is not one this server issues")
	}
	auth := c.Request().Header.Get(echo.HeaderAuthorization)
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		e := newHTTPError(http.StatusUnauthorized, "invalid_token", "send the client's access token as Authorization: Bearer")
		e.header = map[string]string{"WWW-Authenticate": `Bearer realm="obdcr"`}
		return nil, e
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), requestBudget)
	defer cancel()
	it, err := s.hydra.Introspect(ctx, strings.TrimSpace(token))
	if err != nil {
		return nil, &policy.Unavailable{Dependency: "hydra", Err: err}
	}
	switch {
	case !it.Active:
		return nil, unauthorized("the access token is not active: expired, revoked or unknown")
	case it.ClientID != clientID || it.Subject != clientID:
		// sub = client_id only for client_credentials tokens: a token a user
		// granted (CDR data) must not manage the registration.
		return nil, unauthorized("the access token was not issued to this client by the client_credentials grant")
	case it.TokenUse != "" && it.TokenUse != "access_token":
		return nil, unauthorized("the token is not an access token")
	}
	reg, err := s.registrar.Load(ctx, clientID)
	if errors.Is(err, policy.ErrNoRegistration) {
		return nil, unauthorized("the access token was not issued to this client by the client_credentials grant")
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(policy.Thumbprint(cert)), []byte(reg.CertThumbprint)) != 1 {
		return nil, unauthorized("the TLS client certificate is not the one this client registered with")
	}
	if p, ok := s.registrar.Profile(reg.Profile); ok && p.ManagementScope != "" && !slices.Contains(it.Scope, p.ManagementScope) {
		return nil, insufficientScope(p.ManagementScope)
	}
	c.Set("log.profile", reg.Profile)
	c.Set("log.software_id", reg.SoftwareID)
	c.Set("log.client_id", reg.ClientID)
	return reg, nil
}

// unproven is a management call refused before the caller proved anything.
type unproven struct{ *httpError }

func (u *unproven) Unwrap() error { return u.httpError }

const certThumbprintKey = "mgmt.cert"

// issuedShape: every client_id obdcr issues is a UUID in its canonical form.
func issuedShape(id string) bool {
	if len(id) != 36 {
		return false
	}
	_, err := uuid.Parse(id)
	return err == nil
}

// getRegistration is GET /register/{client_id} (RFC 7592 §2.1).
func (s *Server) getRegistration(c echo.Context) error {
	reg, err := s.authorize(c)
	if err != nil {
		return s.auditRefusedCall(c, "get", err)
	}
	// Counted, not audited: a read changes nothing, and a client may read its own
	// registration as often as the rate limit lets it; one entry each would let it
	// fill the audit.
	s.metrics.management.WithLabelValues(reg.Profile, "get", "approved").Inc()
	return s.respond(c, http.StatusOK, reg)
}

// auditDeletion records a deletion that was let in.
func (s *Server) auditDeletion(c echo.Context, reg *policy.Registration) error {
	s.metrics.management.WithLabelValues(reg.Profile, "delete", "approved").Inc()
	return s.audit(c, store.AuditEntry{Kind: store.KindManagement, Profile: reg.Profile, SoftwareID: reg.SoftwareID,
		OrgID: reg.OrgID, ClientID: reg.ClientID, Outcome: "deleted", CertThumbprint: reg.CertThumbprint})
}

// auditRefusedCall records a management call that could not prove itself; the
// call's own error is what the caller gets, unless the audit fails. Like every
// refusal, it is written within its certificate's budget (refusalDigest).
func (s *Server) auditRefusedCall(c echo.Context, op string, err error) error {
	s.metrics.management.WithLabelValues("", op, "refused").Inc()
	var u *unproven
	if errors.As(err, &u) {
		return u.httpError // counted, never audited
	}
	desc := err.Error()
	var he *httpError
	code := ""
	if errors.As(err, &he) {
		code, desc = he.code, he.desc
	}
	thumb, _ := c.Get(certThumbprintKey).(string)
	e := store.AuditEntry{Kind: store.KindManagement, ClaimedClientID: c.Param("client_id"), Outcome: "refused", Error: code,
		Description: op + ": " + desc, CertThumbprint: thumb}
	if aerr := s.audit(c, e); aerr != nil {
		return aerr
	}
	return err
}

// putRegistration is PUT /register/{client_id} (RFC 7592 §2.2): a new signed
// request, checked by the same rules, replaces the registration.
func (s *Server) putRegistration(c echo.Context) error {
	current, err := s.authorize(c)
	if err != nil {
		return s.auditRefusedCall(c, "update", err)
	}
	body, err := readJWT(c)
	if err != nil {
		return err
	}
	cert, _ := s.certs.request(c)
	reg, tr, err := s.registrar.Update(c.Request().Context(), current, policy.Submission{JWT: body, Certificate: cert})
	outcome, _ := s.noteOutcome(c, tr, err)
	s.metrics.management.WithLabelValues(current.Profile, "update", outcome).Inc()
	e := decisionEntry(store.KindManagement, tr, current, cert, err)
	if err == nil {
		e.Outcome = "updated"
	}
	if aerr := s.audit(c, e); aerr != nil {
		return aerr
	}
	if errors.Is(err, policy.ErrNoRegistration) {
		return unauthorized("the client no longer exists")
	}
	if err != nil {
		return err
	}
	return s.respond(c, http.StatusOK, reg)
}

// deleteRegistration is DELETE /register/{client_id} (RFC 7592 §2.3): the client
// and every token it holds go.
func (s *Server) deleteRegistration(c echo.Context) error {
	reg, err := s.authorize(c)
	if err != nil {
		return s.auditRefusedCall(c, "delete", err)
	}
	st, err := s.registrar.State.State(c.Request().Context(), reg.Profile)
	if err != nil {
		return &policy.Unavailable{Dependency: "store", Err: err}
	}
	if !st.Settings.AllowDelete {
		c.Response().Header().Set("Allow", "GET, PUT")
		return newHTTPError(http.StatusMethodNotAllowed, "method_not_allowed", "this server does not let "+reg.Profile+" clients delete their registration; ask the bank")
	}
	// Audited before it happens: a deletion must never be without its entry.
	if err := s.auditDeletion(c, reg); err != nil {
		return err
	}
	if err := s.deregisterAudited(c, reg); err != nil {
		return err
	}
	c.Set("log.outcome", "deleted")
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) respond(c echo.Context, status int, reg *policy.Registration) error {
	resp, err := s.registrar.Response(reg)
	if err != nil {
		return err
	}
	body, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	// With its length known the answer goes out in one piece; a streamed answer
	// over 2 KiB (every registration is) would be sent chunked.
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	return c.Blob(status, echo.MIMEApplicationJSON, body)
}
