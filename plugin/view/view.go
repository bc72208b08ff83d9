// Package view holds the one shape of each thing obdcr shows: the admin API
// answers it as JSON, the CLI reads that JSON back into it and prints it, and
// the console renders it. A field added here reaches all three.
package view

import (
	"encoding/json"
	"time"

	"github.com/obdcr/obdcr/policy"
	"github.com/obdcr/obdcr/policy/store"
)

// Policy is one profile: GET /admin/policies answers a list of them.
type Policy struct {
	Profile  string          `json:"profile"`
	Enabled  bool            `json:"enabled"`
	Issuer   string          `json:"issuer"`
	Settings policy.Settings `json:"settings"`
	Rules    []string        `json:"rules"`
	// Version changes on every save; send it back as If-Match to save only over it.
	Version int64 `json:"version"`
}

// NewPolicy is profile p in state st.
func NewPolicy(p *policy.Profile, st policy.State) Policy {
	return Policy{Profile: p.Name, Enabled: st.Enabled, Issuer: p.Issuer, Settings: st.Settings, Rules: p.RuleNames(), Version: st.Version}
}

// Registration is a registration as admins see it: GET /admin/registrations
// answers a list of them.
type Registration struct {
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

// NewRegistration is r as admins see it.
func NewRegistration(r *policy.Registration) Registration {
	return Registration{ClientID: r.ClientID, Profile: r.Profile, SoftwareID: r.SoftwareID, OrgID: r.OrgID,
		ClientName: r.Metadata.ClientName, IssuedAt: r.IssuedAt, RedirectURIs: r.Metadata.RedirectURIs, Scope: r.Metadata.Scope,
		CertThumbprint: r.CertThumbprint}
}

// RegistrationDetail is a registration with all its metadata and its client
// as Hydra holds it (the console's registration page).
type RegistrationDetail struct {
	Registration
	Metadata    map[string]any
	HydraClient json.RawMessage
}

// ErrorBody is the RFC 7591 §3.2.2 error response, used for every error obdcr gives.
type ErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// DryRun is a dry run's report: POST /admin/dry-run's answer, what `obdcr
// check` prints (online or offline) and the console's dry-run page.
type DryRun struct {
	Profile string              `json:"profile,omitempty"`
	Outcome string              `json:"outcome"`
	Error   *ErrorBody          `json:"error,omitempty"`
	Rules   []policy.RuleResult `json:"rules"`
}

// NewDryRun is the view of a dry run's report.
func NewDryRun(rep policy.DryRunReport) DryRun {
	d := DryRun{Profile: rep.Profile, Outcome: rep.Outcome, Rules: rep.Rules}
	if rep.Error != nil {
		d.Error = &ErrorBody{Error: string(rep.Error.Code), Description: rep.Error.Description}
	}
	return d
}

// Answer is what POST /register would answer: the RFC 7591 error body, or
// "201 Created".
func (d DryRun) Answer() string {
	if d.Error == nil {
		return "201 Created"
	}
	body, _ := json.MarshalIndent(d.Error, "", "  ")
	return "400 Bad Request\n" + string(body)
}

// AuditEntry is one audit entry as GET /admin/audit answers it; the store's
// own type, so that what is stored is what is shown.
type AuditEntry = store.AuditEntry

// Finding is one setup check's result (obdcr doctor, and serve's own check).
type Finding struct {
	Check    string `json:"check"`
	Severity string `json:"severity"` // ok, warning, error
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
}

// Overview is the console's front page.
type Overview struct {
	Profiles []ProfileActivity
	Reasons  []Reason
	Health   []Health
	Findings []Finding
}

// ProfileActivity is a profile's switch and decisions.
type ProfileActivity struct {
	Name                                           string
	Enabled                                        bool
	Approved1h, Refused1h, Approved24h, Refused24h int
	Hours                                          [24][2]int // approved, refused; oldest first
}

// Reason is a refusal reason and how often it was given.
type Reason struct {
	Error, Rule string
	Count       int
}

// Health is one dependency's state.
type Health struct {
	Name, Detail string
	OK           bool
}
