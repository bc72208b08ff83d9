package service

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/obdcr/obdcr/plugin/view"
	"github.com/obdcr/obdcr/policy"
)

// RegistrationQuery finds registrations by software_id and/or org_id, or one
// by its client_id.
type RegistrationQuery struct {
	SoftwareID, OrgID, ClientID string
}

// Registrations are the registrations q finds; none for a client_id that is
// not one.
func (s *Service) Registrations(ctx context.Context, q RegistrationQuery) ([]view.Registration, error) {
	out := []view.Registration{}
	if q.ClientID != "" {
		reg, err := s.d.Registrar.Load(ctx, q.ClientID)
		if errors.Is(err, policy.ErrNoRegistration) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		return append(out, view.NewRegistration(reg)), nil
	}
	if q.SoftwareID == "" && q.OrgID == "" {
		return nil, refuse(Invalid, "invalid_request", "give software_id and/or org_id")
	}
	regs, err := s.d.Registrar.Find(ctx, q.SoftwareID, q.OrgID)
	if err != nil {
		return nil, err
	}
	for _, r := range regs {
		out = append(out, view.NewRegistration(r))
	}
	return out, nil
}

// Registration is one registration with its metadata and its client as Hydra
// holds it; a NotFound refusal wrapping policy.ErrNoRegistration if there is none.
func (s *Service) Registration(ctx context.Context, clientID string) (view.RegistrationDetail, error) {
	reg, err := s.d.Registrar.Load(ctx, clientID)
	if errors.Is(err, policy.ErrNoRegistration) {
		return view.RegistrationDetail{}, &Error{Kind: NotFound, Code: "not_found", Description: "no registration with that client_id", Err: err}
	}
	if err != nil {
		return view.RegistrationDetail{}, err
	}
	out := view.RegistrationDetail{Registration: view.NewRegistration(reg)}
	b, _ := json.Marshal(reg.Metadata)
	_ = json.Unmarshal(b, &out.Metadata)
	if hc, err := s.d.Hydra.Get(ctx, clientID); err == nil {
		// What Hydra holds, less obdcr's own record (it repeats the SSA).
		h := map[string]any{"client_id": hc.ID, "client_name": hc.Name, "owner": hc.Owner, "grant_types": hc.GrantTypes,
			"response_types": hc.ResponseTypes, "scope": hc.Scope, "redirect_uris": hc.RedirectURIs,
			"token_endpoint_auth_method": hc.TokenEndpointAuthMethod, "token_endpoint_auth_signing_alg": hc.TokenEndpointAuthSigningAlg,
			"request_object_signing_alg": hc.RequestObjectSigningAlg, "jwks_uri": hc.JWKSURI, "created_at": hc.CreatedAt}
		out.HydraClient, _ = json.Marshal(h)
	}
	return out, nil
}

// Overview is the console's front page: each profile's switch and decisions,
// the commonest refusals, the dependencies' health and the setup check.
func (s *Service) Overview(ctx context.Context) view.Overview {
	var o view.Overview
	now := s.d.Now()
	for _, p := range s.d.Registrar.Profiles {
		st, _ := s.d.State.State(ctx, p.Name)
		a := s.activity.profile(now, p.Name)
		a.Enabled = st.Enabled
		o.Profiles = append(o.Profiles, a)
	}
	o.Reasons = s.activity.topReasons(10)
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	health := func(name string, err error, ok string) {
		h := view.Health{Name: name, OK: err == nil, Detail: ok}
		if err != nil {
			h.Detail = err.Error()
		}
		o.Health = append(o.Health, h)
	}
	health("Hydra", s.d.Hydra.Ready(hctx), "admin API answers with obdcr's credentials")
	health("Store", s.d.Store.Ping(hctx), "answers")
	for _, h := range s.d.Health {
		detail, err := h.Check()
		health(h.Name, err, detail)
	}
	o.Findings = s.d.Findings()
	return o
}
