package sandbox

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// FlowReport is what a registered client got from a whole flow.
type FlowReport struct {
	ClientID     string `json:"client_id"`
	ResponseType string `json:"response_type"`
	// Pushed and ResponseMode say how the request went: by PAR (AU at the
	// edge) and with JARM ("jwt"), or by value and answered plainly.
	Pushed           bool   `json:"pushed"`
	ResponseMode     string `json:"response_mode,omitempty"`
	Iss              string `json:"iss_in_response,omitempty"`
	Scope            string `json:"granted_scope"`
	IDTokenAlg       string `json:"id_token_alg"`
	RefreshToken     bool   `json:"refresh_token_issued"`
	Refreshed        bool   `json:"refreshed"`
	ClientCredsScope string `json:"client_credentials_scope"`
}

// discoveryDoc is what a client reads from the bank's discovery document.
type discoveryDoc struct {
	Issuer        string   `json:"issuer"`
	Authorization string   `json:"authorization_endpoint"`
	Token         string   `json:"token_endpoint"`
	PAR           string   `json:"pushed_authorization_request_endpoint"`
	JWKSURI       string   `json:"jwks_uri"`
	ResponseModes []string `json:"response_modes_supported"`
	JARMAlgs      []string `json:"authorization_signing_alg_values_supported"`
}

// RunFlow reads the bank's discovery document from obdcr, and runs what a
// registered client of t's profile registered for: the authorization code flow
// with a signed request object through the bank's login and consent app, the
// code redeemed with private_key_jwt, one refresh, and client_credentials.
// Where the bank publishes a PAR endpoint and JARM (obdcr's FAPI edge), an AU
// client pushes its request and asks for a JARM response, verified with the
// published JWKS. Each step is written to steps (io.Discard for none).
func (c *Client) RunFlow(ctx context.Context, obdcrURL, clientID string, roots *x509.CertPool, steps io.Writer) (*FlowReport, error) {
	say := func(format string, args ...any) { fmt.Fprintf(steps, format+"\n", args...) }
	res, err := c.Discovery(ctx, obdcrURL)
	if err != nil {
		return nil, err
	}
	var doc discoveryDoc
	if res.Status != http.StatusOK || json.Unmarshal(res.Body, &doc) != nil {
		return nil, fmt.Errorf("discovery answered %d: %s", res.Status, res.Body)
	}
	say("discovery: issuer %s\n  authorization_endpoint %s\n  token_endpoint %s", doc.Issuer, doc.Authorization, doc.Token)
	r := AuthorizeRequest{AuthURL: doc.Authorization, Issuer: doc.Issuer, ClientID: clientID, RedirectURI: c.TPP.RedirectURIs[0],
		ResponseType: "code id_token", Scope: "openid accounts offline_access"}
	ccScope := "accounts"
	if c.TPP.Profile == AU {
		r.ResponseType, r.Scope, ccScope = "code", "openid bank:accounts.basic:read offline_access", "cdr:registration"
		r.PARURL = doc.PAR
		if slices.Contains(doc.ResponseModes, "jwt") {
			r.ResponseMode = "jwt"
		}
	}
	how := "by value"
	if r.PARURL != "" {
		how = "pushed to " + r.PARURL
	}
	say("request object: %s, response_type %q, scope %q, redirect_uri %s, PKCE S256, signed %s",
		how, r.ResponseType, r.Scope, r.RedirectURI, c.TPP.Signing.Alg)
	// The browser's requests are told after the PAR answer, which comes first.
	var hops []string
	r.Trace = func(method, u string) {
		hops = append(hops, fmt.Sprintf("  browser %2d: %s %s", len(hops)+1, method, shorten(u)))
	}
	a, err := c.Authorize(ctx, r, roots)
	if err != nil {
		return nil, err
	}
	if a.Pushed != nil {
		say("PAR answer: HTTP %d %s", a.Pushed.Status, strings.TrimSpace(string(a.Pushed.Body)))
		if a.Pushed.Status != http.StatusCreated {
			return nil, fmt.Errorf("PAR refused: HTTP %d: %s", a.Pushed.Status, a.Pushed.Body)
		}
	}
	say("%s", strings.Join(hops, "\n"))
	rep := &FlowReport{ClientID: clientID, ResponseType: r.ResponseType, Pushed: r.PARURL != "", ResponseMode: r.ResponseMode, Iss: a.Params.Get("iss")}
	if a.Response != "" {
		if err := c.openResponse(ctx, doc, c.fetchKeys(doc.JWKSURI), clientID, a, say); err != nil {
			return nil, err
		}
		rep.Iss = doc.Issuer
	} else {
		say("at the redirect URI: %s", paramNames(a.Params))
	}
	if a.IDToken != "" && doc.JWKSURI != "" {
		if err := c.checkIDToken(ctx, doc, clientID, a, say); err != nil {
			return nil, err
		}
	}
	if a.Error != "" {
		return nil, fmt.Errorf("authorization refused: %s: %s", a.Error, a.ErrorDescription)
	}
	if a.State != a.SentState {
		return nil, fmt.Errorf("the answer's state is not the request's")
	}
	tokens, err := c.ExchangeCode(ctx, doc.Token, clientID, r.RedirectURI, a)
	if err != nil {
		return nil, err
	}
	rep.Scope, rep.RefreshToken = tokens.Scope, tokens.RefreshToken != ""
	if msg, err := jws.Parse([]byte(tokens.IDToken)); err == nil {
		rep.IDTokenAlg = msg.Signatures()[0].ProtectedHeaders().Algorithm().String()
		var claims map[string]any
		_ = json.Unmarshal(msg.Payload(), &claims)
		say("token answer (POST %s, code + code_verifier + private_key_jwt): token_type %s, scope %q, refresh token %v,\n  ID token %s: iss %v, aud %v, sub %v",
			doc.Token, tokens.TokenType, tokens.Scope, rep.RefreshToken, rep.IDTokenAlg, claims["iss"], claims["aud"], claims["sub"])
	}
	if rep.RefreshToken {
		_, err := c.Refresh(ctx, doc.Token, clientID, tokens.RefreshToken)
		rep.Refreshed = err == nil
		if err != nil {
			say("refresh at %s: %v", doc.Token, err)
		} else {
			say("refresh at %s: new tokens", doc.Token)
		}
	}
	if _, res, err := c.Token(ctx, doc.Token, clientID, ccScope); err == nil {
		rep.ClientCredsScope, _ = res.JSON()["scope"].(string)
		say("client_credentials at %s: scope %q", doc.Token, rep.ClientCredsScope)
	}
	return rep, nil
}

// publishedKeys reads the issuer's JWKS; fresh asks for a copy newer than the
// last (after a signature that did not verify: the issuer may have rotated).
type publishedKeys func(ctx context.Context, fresh bool) (jwk.Set, error)

// fetchKeys reads the JWKS at every call, as the demo shows it.
func (c *Client) fetchKeys(jwksURI string) publishedKeys {
	return func(ctx context.Context, _ bool) (jwk.Set, error) {
		return jwk.Fetch(ctx, jwksURI, jwk.WithHTTPClient(c.HTTP))
	}
}

// cachedKeys keeps the JWKS between flows and reads it again only when a
// response does not verify with it, as a relying party's library does.
func (c *Client) cachedKeys(ctx context.Context, jwksURI string) (publishedKeys, error) {
	cache := jwk.NewCache(ctx)
	if err := cache.Register(jwksURI, jwk.WithHTTPClient(c.HTTP)); err != nil {
		return nil, err
	}
	return func(ctx context.Context, fresh bool) (jwk.Set, error) {
		if fresh {
			return cache.Refresh(ctx, jwksURI)
		}
		return cache.Get(ctx, jwksURI)
	}, nil
}

// openResponse verifies a JARM response with the issuer's published keys and
// takes the code, state or error from it.
func (c *Client) openResponse(ctx context.Context, doc discoveryDoc, keys publishedKeys, clientID string, a *AuthorizeResult, say func(string, ...any)) error {
	var p url.Values
	for _, fresh := range []bool{false, true} {
		set, err := keys(ctx, fresh)
		if err != nil {
			return fmt.Errorf("reading the published JWKS: %w", err)
		}
		if p, err = OpenJARM(a.Response, set, doc.Issuer, clientID); err == nil {
			break
		} else if fresh {
			return fmt.Errorf("the JARM response does not verify with %s: %w", doc.JWKSURI, err)
		}
	}
	a.Code, a.State, a.Error, a.ErrorDescription = p.Get("code"), p.Get("state"), p.Get("error"), p.Get("error_description")
	msg, _ := jws.Parse([]byte(a.Response))
	var claims map[string]any
	_ = json.Unmarshal(msg.Payload(), &claims)
	if _, ok := claims["code"]; ok {
		claims["code"] = shorten(claims["code"].(string))
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	pretty, _ := json.Marshal(claims)
	say("at the redirect URI: response (JARM), verified with %s: alg %s, kid %s\n  %s", doc.JWKSURI, h.Algorithm(), h.KeyID(), pretty)
	return nil
}

// checkIDToken verifies the hybrid flow's front-channel ID token with the
// published keys, and its s_hash and c_hash (FAPI 1.0 Advanced §5.2.2.1).
func (c *Client) checkIDToken(ctx context.Context, doc discoveryDoc, clientID string, a *AuthorizeResult, say func(string, ...any)) error {
	keys, err := jwk.Fetch(ctx, doc.JWKSURI, jwk.WithHTTPClient(c.HTTP))
	if err != nil {
		return fmt.Errorf("reading the published JWKS: %w", err)
	}
	tok, err := jwt.Parse([]byte(a.IDToken), jwt.WithKeySet(keys), jwt.WithIssuer(doc.Issuer), jwt.WithAudience(clientID))
	if err != nil {
		return fmt.Errorf("the front-channel ID token does not verify with %s: %w", doc.JWKSURI, err)
	}
	sHash, _ := tok.Get("s_hash")
	cHash, _ := tok.Get("c_hash")
	if sHash != halfHash(a.SentState) || cHash != halfHash(a.Code) {
		return fmt.Errorf("the front-channel ID token's s_hash %v or c_hash %v is not the state's or the code's", sHash, cHash)
	}
	say("  front-channel ID token: verified with %s; s_hash %v and c_hash %v match the state and the code", doc.JWKSURI, sHash, cHash)
	return nil
}

// halfHash is the left half of a value's SHA-256, base64url (PS256's and ES256's *_hash).
func halfHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// shorten keeps a URL or value readable: long parameter values are cut.
func shorten(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.RawQuery == "" && u.Fragment == "" {
		if len(s) > 24 && !strings.Contains(s, "/") {
			return s[:12] + "…"
		}
		return s
	}
	q, sep := u.Query(), "?"
	if u.Fragment != "" {
		q, _ = url.ParseQuery(u.EscapedFragment())
		sep, u.Fragment, u.RawFragment = "#", "", ""
	}
	parts := make([]string, 0, len(q))
	for _, k := range slices.Sorted(maps.Keys(q)) {
		v := q.Get(k)
		if len(v) > 40 {
			v = v[:20] + "…"
		}
		parts = append(parts, k+"="+v)
	}
	u.RawQuery = ""
	return u.String() + sep + strings.Join(parts, "&")
}

// paramNames lists an answer's parameters, iss in full, others cut.
func paramNames(p url.Values) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		v := p.Get(k)
		if k != "iss" && k != "scope" && len(v) > 24 {
			v = v[:12] + "…"
		}
		out = append(out, k+"="+v)
	}
	return strings.Join(out, " ")
}
