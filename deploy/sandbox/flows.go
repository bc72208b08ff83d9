package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// AuthorizeRequest is a FAPI authorization request a registered TPP makes: a
// request object signed with its key, PKCE, state and nonce.
type AuthorizeRequest struct {
	AuthURL      string // Hydra's authorization endpoint
	Issuer       string // the request object's aud
	ClientID     string
	RedirectURI  string
	ResponseType string // "code id_token" (UK) or "code" (AU)
	Scope        string
	// RequestAlg signs the request object: "" (the TPP's key alg, PS256),
	// "RS256" (the same RSA key, an alg the client did not register) or "none".
	RequestAlg string
	// PARURL, when set, is where the request object is pushed (RFC 9126, over
	// the TPP's mTLS); the browser then carries only client_id and request_uri.
	PARURL       string
	ResponseMode string
	// Claims and Query change the request object and the browser's query
	// before they are sent (refusal tests).
	Claims func(map[string]any)
	Query  func(url.Values)
	// Trace, when set, is told of every request the browser makes.
	Trace func(method, url string)
	// Post sends the browser's first request as a form POST, as OIDC Core
	// §3.1.2.1 allows, not a GET.
	Post bool
}

// AuthorizeResult is what reached the TPP's redirect URI.
type AuthorizeResult struct {
	Code, IDToken, State       string
	Error, ErrorDescription    string
	Verifier, Nonce, SentState string // what the TPP keeps to redeem the code
	Params                     url.Values
	// Response is a JARM response (response_mode jwt), not yet verified.
	Response string
	// PageStatus is set when the flow ended at a page (no redirect to the client).
	PageStatus int
	// Pushed is the PAR endpoint's answer when the request was pushed.
	Pushed *Response
}

// Authorize runs the front channel as a browser would: Hydra, the bank's login
// and consent app, and back to the redirect URI, which is read, not visited.
func (c *Client) Authorize(ctx context.Context, r AuthorizeRequest, roots *x509.CertPool) (*AuthorizeResult, error) {
	res, authURL, err := c.AuthorizationURL(ctx, r)
	if err != nil || authURL == "" {
		return res, err
	}
	return c.follow(ctx, r, res, authURL, roots)
}

// AuthorizationURL signs the request object, pushes it when r.PARURL is set,
// and returns where the TPP sends the customer's browser, with what the TPP
// keeps to redeem the code. The URL is empty when the PAR endpoint refused.
func (c *Client) AuthorizationURL(ctx context.Context, r AuthorizeRequest) (*AuthorizeResult, string, error) {
	res := &AuthorizeResult{Verifier: randomString(), Nonce: randomString(), SentState: randomString()}
	challenge := sha256.Sum256([]byte(res.Verifier))
	now := time.Now()
	claims := map[string]any{
		"iss": r.ClientID, "aud": r.Issuer, "client_id": r.ClientID, "response_type": r.ResponseType,
		"redirect_uri": r.RedirectURI, "scope": r.Scope, "state": res.SentState, "nonce": res.Nonce,
		"code_challenge": base64.RawURLEncoding.EncodeToString(challenge[:]), "code_challenge_method": "S256",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": uuid.NewString(),
	}
	if r.ResponseMode != "" {
		claims["response_mode"] = r.ResponseMode
	}
	if r.Claims != nil {
		r.Claims(claims)
	}
	object, err := c.requestObject(claims, r.RequestAlg)
	if err != nil {
		return nil, "", err
	}
	q := url.Values{"client_id": {r.ClientID}, "response_type": {r.ResponseType}, "scope": {r.Scope},
		"redirect_uri": {r.RedirectURI}, "request": {object}}
	if r.PARURL != "" {
		pushed, err := c.Push(ctx, r.PARURL, r.ClientID, object)
		if err != nil {
			return nil, "", err
		}
		res.Pushed = pushed
		uri, _ := pushed.JSON()["request_uri"].(string)
		if pushed.Status != http.StatusCreated || uri == "" {
			return res, "", nil
		}
		q = url.Values{"client_id": {r.ClientID}, "request_uri": {uri}}
	}
	if r.Query != nil {
		r.Query(q)
	}
	return res, r.AuthURL + "?" + q.Encode(), nil
}

// follow runs the browser from authURL to the redirect URI.
func (c *Client) follow(ctx context.Context, r AuthorizeRequest, res *AuthorizeResult, authURL string, roots *x509.CertPool) (*AuthorizeResult, error) {
	trace := r.Trace
	if trace == nil {
		trace = func(string, string) {}
	}
	jar, _ := cookiejar.New(nil)
	var landed *url.URL
	browserTLS := c.HTTP.Transport.(*http.Transport).TLSClientConfig.Clone()
	browserTLS.ClientSessionCache = nil // a new browser: no TLS session of the TPP's to resume
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: readsRedirects{&http.Transport{TLSClientConfig: browserTLS}},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			trace(req.Method, req.URL.String())
			if strings.HasPrefix(req.URL.String(), r.RedirectURI) {
				landed = req.URL
				return http.ErrUseLastResponse
			}
			if len(via) > 20 {
				return errors.New("more than 20 redirects")
			}
			return nil
		}}
	if roots != nil {
		browserTLS.RootCAs = roots
		browserTLS.Certificates = nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if r.Post {
		endpoint, query, _ := strings.Cut(authURL, "?")
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(query))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		return nil, err
	}
	trace(req.Method, req.URL.String())
	defer browser.CloseIdleConnections() // the customer's browser is gone once the flow is done
	params, resp, err := browse(browser, req, r.RedirectURI, &landed, trace)
	if err != nil {
		return nil, err
	}
	if params == nil {
		// An error Hydra will not send to the client's redirect URI (a request
		// object it cannot trust, say) goes to the bank's error page.
		if q := resp.Request.URL.Query(); q.Get("error") != "" {
			res.Params, res.Error, res.ErrorDescription = q, q.Get("error"), q.Get("error_description")
			return res, nil
		}
		if resp.StatusCode == http.StatusBadRequest {
			res.PageStatus = resp.StatusCode
			return res, nil
		}
		return nil, fmt.Errorf("the flow ended at %s (HTTP %d), not at the redirect URI", resp.Request.URL, resp.StatusCode)
	}
	res.Params = params
	res.Code, res.IDToken, res.State = params.Get("code"), params.Get("id_token"), params.Get("state")
	res.Error, res.ErrorDescription = params.Get("error"), params.Get("error_description")
	res.Response = params.Get("response")
	return res, nil
}

// requestObject signs the authorization request's claims.
func (c *Client) requestObject(claims map[string]any, alg string) (string, error) {
	switch alg {
	case "":
		return c.TPP.Signing.Sign(claims, nil)
	case "none":
		payload, _ := json.Marshal(claims)
		return b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64(payload) + ".", nil
	}
	payload, _ := json.Marshal(claims)
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, c.TPP.Signing.KID)
	var raw any
	if err := c.TPP.Signing.Private.Raw(&raw); err != nil {
		return "", err
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(alg), raw, jws.WithProtectedHeaders(h)))
	return string(out), err
}

// Tokens is a token endpoint's answer.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Scope        string `json:"scope"`
	TokenType    string `json:"token_type"`
}

// ExchangeCode redeems an authorization code with private_key_jwt and PKCE.
func (c *Client) ExchangeCode(ctx context.Context, tokenURL, clientID, redirectURI string, a *AuthorizeResult) (*Tokens, error) {
	return c.tokens(ctx, tokenURL, clientID, url.Values{"grant_type": {"authorization_code"}, "code": {a.Code},
		"redirect_uri": {redirectURI}, "code_verifier": {a.Verifier}})
}

// Refresh redeems a refresh token with private_key_jwt.
func (c *Client) Refresh(ctx context.Context, tokenURL, clientID, refreshToken string) (*Tokens, error) {
	return c.tokens(ctx, tokenURL, clientID, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
}

func (c *Client) tokens(ctx context.Context, tokenURL, clientID string, form url.Values) (*Tokens, error) {
	res, err := c.tokenRequest(ctx, tokenURL, clientID, form)
	if err != nil {
		return nil, err
	}
	var t Tokens
	if res.Status != http.StatusOK || json.Unmarshal(res.Body, &t) != nil || t.AccessToken == "" {
		return nil, fmt.Errorf("token endpoint answered %d: %s", res.Status, res.Body)
	}
	return &t, nil
}

// tokenRequest posts form to the token endpoint, the client authenticated as it registered.
func (c *Client) tokenRequest(ctx context.Context, tokenURL, clientID string, form url.Values) (*Response, error) {
	if err := c.authenticate(form, clientID, tokenURL); err != nil {
		return nil, err
	}
	return c.do(ctx, http.MethodPost, tokenURL, "application/x-www-form-urlencoded", "", []byte(form.Encode()))
}

// authenticate adds client_id to form and, but for a tls_client_auth client
// (the certificate alone, RFC 8705 §2.1), a client assertion signed with the
// TPP's key for aud (private_key_jwt, RFC 7523).
func (c *Client) authenticate(form url.Values, clientID, aud string) error {
	form.Set("client_id", clientID)
	if c.TLSClientAuth {
		return nil
	}
	now := time.Now()
	assertion, err := c.TPP.Signing.Sign(map[string]any{
		"iss": clientID, "sub": clientID, "aud": aud, "jti": uuid.NewString(),
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
	}, nil)
	if err != nil {
		return err
	}
	form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	form.Set("client_assertion", assertion)
	return nil
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// readsRedirects reads a redirect's page whole before the client follows it,
// as a browser does. Go's client reads at most 2 KiB of it and otherwise closes
// the connection: Hydra's redirects carry their long challenges in a larger
// page, so each hop would cost the issuer a new TLS handshake that no browser
// makes.
type readsRedirects struct{ rt http.RoundTripper }

// CloseIdleConnections passes on to the transport: the client only calls a
// transport's, and the browser closes its connection when its flow ends.
func (b readsRedirects) CloseIdleConnections() {
	if c, ok := b.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (b readsRedirects) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := b.rt.RoundTrip(req)
	if err != nil || res.StatusCode < 300 || res.StatusCode > 399 {
		return res, err
	}
	page, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(page))
	return res, nil
}
