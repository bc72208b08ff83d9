package sandbox

import (
	"net/http"
	"strings"

	hc "github.com/ory/hydra-client-go/v2"
)

// ConsentUser is the subject the sandbox's login step signs in.
const ConsentUser = "sandbox-psu"

// LoginConsent is a bank's login and consent app at its smallest, for Hydra's
// URLS_LOGIN and URLS_CONSENT: it signs in ConsentUser without asking and grants
// every scope and audience the client asked for, offline_access included, so
// that a registered client can run its flows end to end. A real bank's app asks
// the customer; what it must grant for refresh tokens is the same.
type LoginConsent struct {
	api *hc.APIClient
}

// NewLoginConsent talks to Hydra's admin API at adminURL.
func NewLoginConsent(adminURL string, client *http.Client) *LoginConsent {
	cfg := hc.NewConfiguration()
	cfg.Servers = hc.ServerConfigurations{{URL: strings.TrimRight(adminURL, "/")}}
	if client != nil {
		cfg.HTTPClient = client
	}
	return &LoginConsent{api: hc.NewAPIClient(cfg)}
}

// Login accepts GET /hydra/login?login_challenge=...
func (l *LoginConsent) Login(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("login_challenge")
	if ch == "" {
		http.Error(w, "login_challenge is required", http.StatusBadRequest)
		return
	}
	to, _, err := l.api.OAuth2API.AcceptOAuth2LoginRequest(r.Context()).LoginChallenge(ch).
		AcceptOAuth2LoginRequest(hc.AcceptOAuth2LoginRequest{Subject: ConsentUser}).Execute()
	if err != nil {
		http.Error(w, "accepting the login: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, to.RedirectTo, http.StatusFound)
}

// Consent accepts GET /hydra/consent?consent_challenge=...
func (l *LoginConsent) Consent(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("consent_challenge")
	if ch == "" {
		http.Error(w, "consent_challenge is required", http.StatusBadRequest)
		return
	}
	req, _, err := l.api.OAuth2API.GetOAuth2ConsentRequest(r.Context()).ConsentChallenge(ch).Execute()
	if err != nil {
		http.Error(w, "reading the consent request: "+err.Error(), http.StatusBadGateway)
		return
	}
	to, _, err := l.api.OAuth2API.AcceptOAuth2ConsentRequest(r.Context()).ConsentChallenge(ch).
		AcceptOAuth2ConsentRequest(hc.AcceptOAuth2ConsentRequest{
			GrantScope: req.RequestedScope, GrantAccessTokenAudience: req.RequestedAccessTokenAudience,
		}).Execute()
	if err != nil {
		http.Error(w, "accepting the consent: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, to.RedirectTo, http.StatusFound)
}
