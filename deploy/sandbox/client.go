package sandbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client is the TPP simulator's HTTP side: it talks to obdcr over mutual TLS
// with the TPP's transport certificate, and to Hydra's token endpoint.
type Client struct {
	TPP  *TPP
	HTTP *http.Client
	// TLSClientAuth: PAR and token requests carry no assertion, only
	// client_id; the transport certificate authenticates (RFC 8705 §2.1).
	TLSClientAuth bool
}

// NewClient returns a client that presents t's transport certificate and trusts roots.
func NewClient(t *TPP, roots *x509.CertPool) (*Client, error) {
	leaf, err := t.Transport()
	if err != nil {
		return nil, err
	}
	return NewClientWithCert(t, roots, &leaf.TLS), nil
}

// NewClientWithCert presents cert instead (nil: none); tests use it for the wrong certificate.
func NewClientWithCert(t *TPP, roots *x509.CertPool, cert *tls.Certificate) *Client {
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &Client{TPP: t, HTTP: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}}
}

// Response is an HTTP answer as the simulator prints it.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body.
func (r *Response) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

func (c *Client) do(ctx context.Context, method, u, contentType, bearer string, body []byte) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return &Response{Status: res.StatusCode, Header: res.Header, Body: b}, err
}

// Register sends POST {obdcr}/register with a signed request.
func (c *Client) Register(ctx context.Context, obdcrURL, requestJWT string) (*Response, error) {
	return c.do(ctx, http.MethodPost, strings.TrimRight(obdcrURL, "/")+"/register", "application/jwt", "", []byte(requestJWT))
}

// Get, Update and Delete manage a registration (RFC 7592) with a bearer token.
func (c *Client) Get(ctx context.Context, obdcrURL, clientID, token string) (*Response, error) {
	return c.do(ctx, http.MethodGet, registrationURL(obdcrURL, clientID), "", token, nil)
}

func (c *Client) Update(ctx context.Context, obdcrURL, clientID, token, requestJWT string) (*Response, error) {
	return c.do(ctx, http.MethodPut, registrationURL(obdcrURL, clientID), "application/jwt", token, []byte(requestJWT))
}

func (c *Client) Delete(ctx context.Context, obdcrURL, clientID, token string) (*Response, error) {
	return c.do(ctx, http.MethodDelete, registrationURL(obdcrURL, clientID), "", token, nil)
}

func registrationURL(base, clientID string) string {
	return strings.TrimRight(base, "/") + "/register/" + url.PathEscape(clientID)
}

// Token gets an access token from Hydra by client_credentials, authenticating
// with private_key_jwt (RFC 7523): the assertion is signed with the TPP's key.
func (c *Client) Token(ctx context.Context, tokenURL, clientID, scope string) (string, *Response, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	res, err := c.tokenRequest(ctx, tokenURL, clientID, form)
	if err != nil {
		return "", nil, err
	}
	tok, _ := res.JSON()["access_token"].(string)
	if res.Status != http.StatusOK || tok == "" {
		return "", res, fmt.Errorf("token endpoint answered %d: %s", res.Status, res.Body)
	}
	return tok, res, nil
}

// Discovery reads the bank's discovery document from obdcr (no certificate needed).
func (c *Client) Discovery(ctx context.Context, obdcrURL string) (*Response, error) {
	return c.do(ctx, http.MethodGet, strings.TrimRight(obdcrURL, "/")+"/.well-known/openid-configuration", "", "", nil)
}

// DryRun asks obdcr's admin dry run for every rule's verdict on a request. It
// sends the TPP's transport certificate along, so the certificate rule is judged
// as it would be over mutual TLS.
func (c *Client) DryRun(ctx context.Context, adminURL, adminToken, requestJWT string) (*Response, error) {
	leaf, err := c.TPP.Transport()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(adminURL, "/")+"/admin/dry-run", strings.NewReader(requestJWT))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/jwt")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("X-Obdcr-Client-Certificate", url.QueryEscape(string(leaf.CertPEM)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return &Response{Status: res.StatusCode, Header: res.Header, Body: b}, err
}
