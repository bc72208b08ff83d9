package fapi

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/plugin/view"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

// respond answers the client at its redirect URI (RFC 6749 §4.1.2, OAuth 2.0
// Multiple Response Types, Form Post, JARM), always with iss (RFC 9207): in the
// clear, or inside the JARM response when the client asked for one.
func (e *Edge) respond(c echo.Context, r *pf.AuthRequest, params map[string]string) error {
	mode := r.ResponseMode
	hybrid := r.Hybrid()
	switch {
	case mode == "" && hybrid:
		mode = "fragment"
	case mode == "":
		mode = "query"
	case mode == "jwt" && hybrid:
		mode = "fragment.jwt"
	case mode == "jwt":
		mode = "query.jwt"
	}
	if r.State != "" {
		params["state"] = r.State
	}
	if d, ok := params["error_description"]; ok {
		params["error_description"] = view.OAuthText(d)
	}
	out := url.Values{}
	if base, ok := strings.CutSuffix(mode, ".jwt"); ok {
		jwt, err := e.cfg.Key().JARM(e.cfg.Issuer, r.ClientID, params, e.cfg.Now())
		if err != nil {
			return err
		}
		out.Set("response", jwt)
		mode = base
	} else {
		for k, v := range params {
			if v != "" {
				out.Set(k, v)
			}
		}
		out.Set("iss", e.cfg.Issuer)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	switch mode {
	case "form_post":
		return formPost(c, r.RedirectURI, out)
	case "fragment":
		return c.Redirect(http.StatusSeeOther, r.RedirectURI+"#"+out.Encode())
	}
	u, err := url.Parse(r.RedirectURI)
	if err != nil {
		return err
	}
	q := u.Query()
	for k, v := range out {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return c.Redirect(http.StatusSeeOther, u.String())
}

var formPostPage = template.Must(template.New("form_post").Parse(`<!DOCTYPE html>
<html><head><title>Submit this form</title></head>
<body onload="javascript:document.forms[0].submit()">
<form method="post" action="{{.Action}}">{{range $k, $v := .Fields}}
<input type="hidden" name="{{$k}}" value="{{$v}}"/>{{end}}
<noscript><button type="submit">Continue</button></noscript>
</form></body></html>
`))

// formPost is the OAuth 2.0 Form Post Response Mode's page.
func formPost(c echo.Context, action string, v url.Values) error {
	fields := map[string]string{}
	for k := range v {
		fields[k] = v.Get(k)
	}
	c.Response().Header().Set("Content-Type", "text/html; charset=utf-8")
	c.Response().Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; form-action "+originOf(action))
	c.Response().WriteHeader(http.StatusOK)
	return formPostPage.Execute(c.Response(), struct {
		Action string
		Fields map[string]string
	}{action, fields})
}

func originOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "'none'"
	}
	return p.Scheme + "://" + p.Host
}

var errorPage = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html><head><title>This request cannot be processed</title></head>
<body><h1>This request cannot be processed</h1>
<p><code>{{.Code}}</code>: {{.Description}}</p>
<p>The application that sent you here made a request this bank cannot trust, so you are not sent back to it.</p>
</body></html>
`))

// page is the 400 page for a request whose client or redirect URI cannot be
// trusted: nothing is sent to a redirect URI.
func page(c echo.Context, fe *pf.Error) error {
	c.Response().Header().Set("Content-Type", "text/html; charset=utf-8")
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Content-Security-Policy", "default-src 'none'")
	c.Response().WriteHeader(http.StatusBadRequest)
	return errorPage.Execute(c.Response(), fe)
}
