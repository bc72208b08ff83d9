package sandbox

import (
	"html/template"
	"net/http"
	"strings"

	hc "github.com/ory/hydra-client-go/v2"
)

// ConsentUser is the subject the sandbox's login step signs in.
const ConsentUser = "sandbox-psu"

// LoginConsent is a bank's login and consent app at its smallest, for Hydra's
// URLS_LOGIN and URLS_CONSENT. Each step is a page with a form a person submits
// (a browser test clicks it; the sandbox's own client posts it as it finds it):
// the login form signs in the user named (ConsentUser by default), the consent
// form grants every scope and audience the client asked for, offline_access
// included, so that a registered client can run its flows end to end. A real
// bank's app asks the customer more; what it must grant for refresh tokens is
// the same.
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

// page is both steps' form. The challenge travels in a hidden field; the
// button is what a person presses.
var page = template.Must(template.New("step").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}} · sandbox bank</title></head>
<body><main><h1>{{.Title}}</h1>
{{if .Client}}<p id="client">{{.Client}} asks for:</p><ul id="scopes">{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="{{.Field}}" value="{{.Challenge}}">
{{if .Login}}<label for="username">Customer</label> <input id="username" name="username" value="{{.User}}" autocomplete="username">{{end}}
<button id="submit" type="submit">{{.Button}}</button>
</form></main></body></html>
`))

type pageData struct {
	Title, Action, Field, Challenge, Button, User, Client string
	Login                                                 bool
	Scopes                                                []string
}

func showPage(w http.ResponseWriter, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = page.Execute(w, d)
}

// challenge reads a step's challenge from the query (Hydra's redirect) or the
// posted form.
func challenge(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	ch := r.FormValue(name)
	if ch == "" {
		http.Error(w, name+" is required", http.StatusBadRequest)
	}
	return ch, ch != ""
}

// Login shows the sign-in form at GET /hydra/login?login_challenge=... and
// accepts the login when it is posted.
func (l *LoginConsent) Login(w http.ResponseWriter, r *http.Request) {
	ch, ok := challenge(w, r, "login_challenge")
	if !ok {
		return
	}
	if r.Method == http.MethodGet {
		showPage(w, pageData{Title: "Sign in", Action: "login", Field: "login_challenge", Challenge: ch,
			Button: "Sign in", User: ConsentUser, Login: true})
		return
	}
	user := strings.TrimSpace(r.PostFormValue("username"))
	if user == "" || len(user) > 64 {
		http.Error(w, "username: 1 to 64 characters", http.StatusBadRequest)
		return
	}
	to, _, err := l.api.OAuth2API.AcceptOAuth2LoginRequest(r.Context()).LoginChallenge(ch).
		AcceptOAuth2LoginRequest(hc.AcceptOAuth2LoginRequest{Subject: user}).Execute()
	if err != nil {
		http.Error(w, "accepting the login: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, to.RedirectTo, http.StatusFound)
}

// Consent shows what the client asks for at GET /hydra/consent?consent_challenge=...
// and grants it when the form is posted.
func (l *LoginConsent) Consent(w http.ResponseWriter, r *http.Request) {
	ch, ok := challenge(w, r, "consent_challenge")
	if !ok {
		return
	}
	req, _, err := l.api.OAuth2API.GetOAuth2ConsentRequest(r.Context()).ConsentChallenge(ch).Execute()
	if err != nil {
		http.Error(w, "reading the consent request: "+err.Error(), http.StatusBadGateway)
		return
	}
	if r.Method == http.MethodGet {
		name := req.GetClient().ClientName
		if name == nil || *name == "" {
			name = req.GetClient().ClientId
		}
		client := ""
		if name != nil {
			client = *name
		}
		showPage(w, pageData{Title: "Share your data", Action: "consent", Field: "consent_challenge", Challenge: ch,
			Button: "Allow", Client: client, Scopes: req.RequestedScope})
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
