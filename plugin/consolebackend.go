package plugin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/console"
	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// consoleBackend gives the console the admin API's powers, through the very
// functions the API uses, so that both decide and audit alike.
type consoleBackend struct{ s *Server }

func (b consoleBackend) Authenticate(token string) (string, bool) {
	name := b.s.adminTokenName(token)
	return name, name != ""
}

// EndSession holds the session id in the shared replay store, which every
// replica reads and which forgets it once the session would have expired.
func (b consoleBackend) EndSession(ctx context.Context, id string, until time.Time) error {
	_, err := b.s.store.Claim(ctx, endedSessionKey(id), until)
	return err
}

func (b consoleBackend) SessionEnded(ctx context.Context, id string) (bool, error) {
	return b.s.store.Seen(ctx, endedSessionKey(id))
}

func randomSessionKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand never fails on supported platforms
	return k
}

// endedSessionKey cannot meet a jti's key: those are hex SHA-256 sums.
func endedSessionKey(id string) string { return "console-session-ended:" + id }

func (b consoleBackend) SessionKey() []byte {
	tokens := b.s.adminTokens.Get()
	if len(tokens) == 0 {
		// OBDCR_ADMIN_TOKEN_FILE failed closed. A key made of no token would be
		// a constant anyone can compute; a fresh random one verifies no session.
		return randomSessionKey()
	}
	h := sha256.New()
	h.Write([]byte("obdcr console session\x00"))
	for _, t := range tokens {
		h.Write([]byte(t.name))
		h.Write(t.hash[:])
	}
	return h.Sum(nil)
}

func (b consoleBackend) Policies(ctx context.Context) ([]console.Policy, error) {
	var out []console.Policy
	for _, p := range b.s.registrar.Profiles {
		st, err := b.s.state.State(ctx, p.Name)
		if err != nil {
			return nil, &policy.Unavailable{Dependency: "store", Err: err}
		}
		out = append(out, consolePolicy(p, st))
	}
	return out, nil
}

func consolePolicy(p *policy.Profile, st policy.State) console.Policy {
	return console.Policy{Profile: p.Name, Enabled: st.Enabled, Version: st.Version, Settings: st.Settings, Rules: p.RuleNames()}
}

func (b consoleBackend) SavePolicy(c echo.Context, name string, enabled *bool, settings json.RawMessage) (console.Policy, console.Policy, error) {
	p, ok := b.s.registrar.Profile(name)
	if !ok {
		return console.Policy{}, console.Policy{}, fmt.Errorf("no profile %q", name)
	}
	ctx := c.Request().Context()
	before, err := b.s.state.State(ctx, name)
	if err != nil {
		return console.Policy{}, console.Policy{}, err
	}
	change := store.Change{Enabled: enabled, Actor: actor(c), RequestID: requestID(c)}
	if string(settings) != "{}" {
		change.Settings = settings
	}
	after, err := b.s.state.Apply(ctx, name, change)
	var se *store.SettingsError
	if errors.As(err, &se) {
		field, _, _ := strings.Cut(se.Error(), ":")
		return console.Policy{}, console.Policy{}, &console.FieldError{Field: field, Message: se.Error()}
	}
	if err != nil {
		return console.Policy{}, console.Policy{}, err
	}
	b.s.log.Info("policy changed", "profile", name, "actor", actor(c), "enabled", after.Enabled, "request_id", requestID(c), "via", "console")
	return consolePolicy(p, before), consolePolicy(p, after), nil
}

func (b consoleBackend) FindRegistrations(ctx context.Context, softwareID, orgID, clientID string) ([]console.Registration, error) {
	if clientID != "" {
		r, err := b.Registration(ctx, clientID)
		if errors.Is(err, policy.ErrNoRegistration) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []console.Registration{r}, nil
	}
	regs, err := b.s.registrar.Find(ctx, softwareID, orgID)
	if err != nil {
		return nil, err
	}
	out := make([]console.Registration, len(regs))
	for i, r := range regs {
		out[i] = consoleRegistration(r)
	}
	return out, nil
}

func consoleRegistration(r *policy.Registration) console.Registration {
	var meta map[string]any
	b, _ := json.Marshal(r.Metadata)
	_ = json.Unmarshal(b, &meta)
	return console.Registration{ClientID: r.ClientID, Profile: r.Profile, SoftwareID: r.SoftwareID, OrgID: r.OrgID,
		ClientName: r.Metadata.ClientName, Scope: r.Metadata.Scope, CertThumbprint: r.CertThumbprint, IssuedAt: r.IssuedAt,
		RedirectURIs: r.Metadata.RedirectURIs, Metadata: meta}
}

func (b consoleBackend) Registration(ctx context.Context, clientID string) (console.Registration, error) {
	reg, err := b.s.registrar.Load(ctx, clientID)
	if err != nil {
		return console.Registration{}, err
	}
	out := consoleRegistration(reg)
	if hc, err := b.s.hydra.Get(ctx, clientID); err == nil {
		// What Hydra holds, less obdcr's own record (it repeats the SSA).
		view := map[string]any{"client_id": hc.ID, "client_name": hc.Name, "owner": hc.Owner, "grant_types": hc.GrantTypes,
			"response_types": hc.ResponseTypes, "scope": hc.Scope, "redirect_uris": hc.RedirectURIs,
			"token_endpoint_auth_method": hc.TokenEndpointAuthMethod, "token_endpoint_auth_signing_alg": hc.TokenEndpointAuthSigningAlg,
			"request_object_signing_alg": hc.RequestObjectSigningAlg, "jwks_uri": hc.JWKSURI, "created_at": hc.CreatedAt}
		out.HydraClient, _ = json.Marshal(view)
	}
	return out, nil
}

func (b consoleBackend) DeleteRegistration(c echo.Context, clientID string) error {
	reg, err := b.s.registrar.Load(c.Request().Context(), clientID)
	if err != nil {
		return err
	}
	return b.s.adminDelete(c, reg, "removed by an admin in the console")
}

func (b consoleBackend) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	return b.s.store.Audit(ctx, q)
}

func (b consoleBackend) DryRun(c echo.Context, jwt, certPEM []byte) (console.DryRun, error) {
	var cert *x509.Certificate
	if len(certPEM) > 0 {
		block, _ := pem.Decode(certPEM)
		if block == nil || block.Type != "CERTIFICATE" {
			return console.DryRun{}, errors.New("the certificate is not PEM")
		}
		var err error
		if cert, err = x509.ParseCertificate(block.Bytes); err != nil {
			return console.DryRun{}, fmt.Errorf("the certificate: %v", err)
		}
	}
	ans, err := b.s.dryRunAnswer(c, jwt, cert)
	if err != nil {
		return console.DryRun{}, err
	}
	out := console.DryRun{Profile: ans.Profile, Outcome: ans.Outcome, Rules: ans.Rules, Answer: "201 Created"}
	if ans.Error != nil {
		body, _ := json.MarshalIndent(ans.Error, "", "  ")
		out.Answer = "400 Bad Request\n" + string(body)
	}
	return out, nil
}

func (b consoleBackend) Overview(ctx context.Context) console.Overview {
	var o console.Overview
	now := time.Now()
	for _, p := range b.s.registrar.Profiles {
		st, _ := b.s.state.State(ctx, p.Name)
		a := b.s.activity.profile(now, p.Name)
		o.Profiles = append(o.Profiles, console.ProfileActivity{Name: p.Name, Enabled: st.Enabled, Approved1h: a.Approved1h,
			Refused1h: a.Refused1h, Approved24h: a.Approved24h, Refused24h: a.Refused24h, Hours: a.Hours})
	}
	for _, r := range b.s.activity.topReasons(10) {
		o.Reasons = append(o.Reasons, console.Reason{Error: r.Error, Rule: r.Rule, Count: r.Count})
	}
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	health := func(name string, err error, ok string) {
		h := console.Health{Name: name, OK: err == nil, Detail: ok}
		if err != nil {
			h.Detail = err.Error()
		}
		o.Health = append(o.Health, h)
	}
	health("Hydra", b.s.hydra.Ready(hctx), "admin API answers with obdcr's credentials")
	health("Store", b.s.store.Ping(hctx), "answers")
	for _, h := range b.s.health {
		detail, err := h.Check()
		health(h.Name, err, detail)
	}
	if f := b.s.findings.Load(); f != nil {
		for _, x := range *f {
			o.Findings = append(o.Findings, console.Finding{Severity: x.Severity, Check: x.Check, Message: x.Message, Fix: x.Fix})
		}
	}
	return o
}

// trustedProxy says whether a request came from OBDCR_TRUSTED_PROXIES.
func (s *Server) trustedProxy(r *http.Request) bool { return s.certs.fromTrustedProxy(r) }
