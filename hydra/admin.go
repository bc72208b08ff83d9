package hydra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	hc "github.com/ory/hydra-client-go/v2"
)

// ErrNotFound: Hydra has no client with that id.
var ErrNotFound = errors.New("hydra: no such client")

// ErrConflict: a client with that id exists. Hydra decides this atomically in its
// own database, which is what makes one-registration-per-software_id hold across
// replicas without a lock of obdcr's own.
var ErrConflict = errors.New("hydra: client id already exists")

// RejectedError is Hydra refusing the client's metadata (HTTP 400).
type RejectedError struct{ Message string }

func (e *RejectedError) Error() string { return "hydra refused the client: " + e.Message }

// UnavailableError is Hydra unreachable, timing out, failing (5xx), refusing
// obdcr's own credentials (401, 403), or too busy to write: none of these is the
// TPP's doing.
type UnavailableError struct {
	Status  int // 0 when no answer came
	Timeout bool
	// Unauthorized: Hydra's admin API (or what guards it) refused obdcr's credentials.
	Unauthorized bool
	// Busy: Hydra's database could not serialize the write beside a concurrent
	// one; nothing was written and the same call may succeed again.
	Busy bool
	Err  error
}

func (e *UnavailableError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("hydra answered HTTP %d: %v", e.Status, e.Err)
	}
	return "hydra unreachable: " + e.Err.Error()
}
func (e *UnavailableError) Unwrap() error { return e.Err }

// Admin talks to Hydra's admin API.
type Admin struct {
	oauth2 hc.OAuth2API
	meta   hc.MetadataAPI
	jwk    hc.JwkAPI
}

// NewAdmin returns an Admin for baseURL (HYDRA_ADMIN_URL). The http client bounds
// each call; obdcr's own request context bounds the whole registration.
func NewAdmin(baseURL string, client *http.Client) (*Admin, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("HYDRA_ADMIN_URL %q is not an http(s) URL", baseURL)
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second, Transport: NewTransport()}
	}
	cfg := hc.NewConfiguration()
	cfg.Servers = hc.ServerConfigurations{{URL: strings.TrimRight(baseURL, "/")}}
	cfg.HTTPClient = withLeanCreate(client)
	cfg.UserAgent = "obdcr"
	api := hc.NewAPIClient(cfg)
	return &Admin{oauth2: api.OAuth2API, meta: api.MetadataAPI, jwk: api.JwkAPI}, nil
}

// NewTransport is an HTTP transport for Hydra's admin API: one host, many calls at
// once. http.DefaultTransport keeps 2 idle connections per host, so at 16
// registrations in flight most calls would open, and then drop, a connection to
// Hydra, which costs both sides CPU and leaves sockets in TIME_WAIT.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 256
	return t
}

// Create creates c with the id c.ID chosen by the caller. It returns c as sent,
// with what only Hydra knows (the secret it made, the creation time): re-reading
// the metadata Hydra echoes back would only cost time on the registration path.
func (a *Admin) Create(ctx context.Context, c Client) (Client, error) {
	out, err := retryBusy(ctx, func() (*hc.OAuth2Client, error) {
		out, res, err := a.oauth2.CreateOAuth2Client(ctx).OAuth2Client(toHydra(c)).Execute()
		return out, classify(res, err)
	})
	if err != nil {
		return Client{}, err
	}
	c.Secret = val(out.ClientSecret)
	if out.CreatedAt != nil {
		c.CreatedAt = *out.CreatedAt
	}
	return c, nil
}

// Get returns the client with id.
func (a *Admin) Get(ctx context.Context, id string) (Client, error) {
	out, res, err := a.oauth2.GetOAuth2Client(ctx, id).Execute()
	if err != nil {
		return Client{}, classify(res, err)
	}
	return fromHydra(out), nil
}

// Replace sends the whole client (Hydra's PUT is a full replace).
func (a *Admin) Replace(ctx context.Context, c Client) (Client, error) {
	out, err := retryBusy(ctx, func() (*hc.OAuth2Client, error) {
		out, res, err := a.oauth2.SetOAuth2Client(ctx, c.ID).OAuth2Client(toHydra(c)).Execute()
		return out, classify(res, err)
	})
	if err != nil {
		return Client{}, err
	}
	return fromHydra(out), nil
}

// Delete removes the client. Hydra removes its tokens with it.
func (a *Admin) Delete(ctx context.Context, id string) error {
	_, err := retryBusy(ctx, func() (struct{}, error) {
		res, err := a.oauth2.DeleteOAuth2Client(ctx, id).Execute()
		return struct{}{}, classify(res, err)
	})
	return err
}

// retryBusy runs a write again while Hydra answers that its database was busy
// with a concurrent write (nothing was written), for up to about a second; any
// other answer ends it. A TPP should not hear of a collision it did not cause.
func retryBusy[T any](ctx context.Context, write func() (T, error)) (T, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 20*time.Millisecond, 200*time.Millisecond, time.Second
	var last error
	out, err := backoff.RetryWithData(func() (T, error) {
		out, err := write()
		var u *UnavailableError
		if last = err; err != nil && !(errors.As(err, &u) && u.Busy) {
			return out, backoff.Permanent(err)
		}
		return out, err
	}, backoff.WithContext(b, ctx))
	if err != nil && last != nil {
		return out, last // Hydra's last answer, not only that the caller gave up
	}
	return out, err
}

// RevokeTokens removes every access and refresh token of the client.
func (a *Admin) RevokeTokens(ctx context.Context, clientID string) error {
	res, err := a.oauth2.DeleteOAuth2Token(ctx).ClientId(clientID).Execute()
	if err != nil {
		return classify(res, err)
	}
	return nil
}

// ListByOwner returns the clients whose owner is owner (obdcr sets it to the org id).
func (a *Admin) ListByOwner(ctx context.Context, owner string) ([]Client, error) {
	var out []Client
	token := ""
	for page := 0; page < 100; page++ {
		list, next, err := a.listPage(ctx, owner, token)
		if err != nil {
			return nil, err
		}
		out = append(out, list...)
		// A short page is the last one. Hydra v2.3.0's Link header counts every
		// client, not those of the owner, so following "next" read the whole
		// table a page at a time: 19 s for one organisation among 50,000 clients.
		if next == "" || len(list) < listPageSize {
			break
		}
		token = next
	}
	return out, nil
}

// ListPage reads one page of every client, in Hydra's order, and the token of the
// next page ("" after the last). Unfiltered, Hydra's Link header is right.
func (a *Admin) ListPage(ctx context.Context, token string) ([]Client, string, error) {
	return a.listPage(ctx, "", token)
}

// listPage reads one page of clients, of owner if set, and the token Hydra links
// as the next page ("" when it links none, or the page is empty).
func (a *Admin) listPage(ctx context.Context, owner, token string) ([]Client, string, error) {
	req := a.oauth2.ListOAuth2Clients(ctx).PageSize(listPageSize)
	if owner != "" {
		req = req.Owner(owner)
	}
	if token != "" {
		req = req.PageToken(token)
	}
	list, res, err := req.Execute()
	if err != nil {
		return nil, "", classify(res, err)
	}
	out := make([]Client, 0, len(list))
	for i := range list {
		out = append(out, fromHydra(&list[i]))
	}
	if len(list) == 0 {
		return out, "", nil
	}
	return out, nextPageToken(res), nil
}

// listPageSize is the clients asked for per page.
const listPageSize = 500

func nextPageToken(res *http.Response) string {
	if res == nil {
		return ""
	}
	for _, link := range strings.Split(res.Header.Get("Link"), ",") {
		if !strings.Contains(link, `rel="next"`) {
			continue
		}
		start, end := strings.Index(link, "<"), strings.Index(link, ">")
		if start < 0 || end <= start {
			return ""
		}
		u, err := url.Parse(link[start+1 : end])
		if err != nil {
			return ""
		}
		return u.Query().Get("page_token")
	}
	return ""
}

// Token is what Hydra's introspection says of an access token.
type Token struct {
	Active    bool
	ClientID  string
	Subject   string
	Scope     []string
	TokenUse  string
	ExpiresAt time.Time
}

// Introspect asks Hydra about an access token.
func (a *Admin) Introspect(ctx context.Context, token string) (Token, error) {
	out, res, err := a.oauth2.IntrospectOAuth2Token(ctx).Token(token).Execute()
	if err != nil {
		return Token{}, classify(res, err)
	}
	t := Token{Active: out.Active, ClientID: val(out.ClientId), Subject: val(out.Sub), TokenUse: val(out.TokenUse)}
	if s := val(out.Scope); s != "" {
		t.Scope = strings.Fields(s)
	}
	if out.Exp != nil {
		t.ExpiresAt = time.Unix(*out.Exp, 0)
	}
	return t, nil
}

// IntrospectJSON is Hydra's introspection answer as Hydra gives it (RFC 7662),
// for resource servers asking through obdcr.
func (a *Admin) IntrospectJSON(ctx context.Context, token string) (map[string]any, error) {
	out, res, err := a.oauth2.IntrospectOAuth2Token(ctx).Token(token).Execute()
	if err != nil {
		return nil, classify(res, err)
	}
	b, err := out.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// Ready reports whether Hydra's admin API answers and is ready.
// Ready asks Hydra whether it is ready, and then reads one client, so that
// credentials the admin API (or its guard) refuses make obdcr unready too.
func (a *Admin) Ready(ctx context.Context) error {
	_, res, err := a.meta.IsReady(ctx).Execute()
	if err != nil {
		return classify(res, err)
	}
	_, res, err = a.oauth2.ListOAuth2Clients(ctx).PageSize(1).Execute()
	if err != nil {
		return classify(res, err)
	}
	return nil
}

// concurrentUpdate begins Ory's answer when its database could not serialize a
// write beside a concurrent one (a PostgreSQL or CockroachDB serialization
// failure, SQLite locked). Hydra sends it as HTTP 400, yet the request was fine.
const concurrentUpdate = "Unable to serialize access due to a concurrent update"

// classify turns a hydra-client-go failure into the errors above, by status code.
func classify(res *http.Response, err error) error {
	if err == nil {
		return nil
	}
	if res == nil {
		var ne net.Error
		timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
		return &UnavailableError{Timeout: timeout, Err: err}
	}
	switch {
	case res.StatusCode == http.StatusNotFound:
		return ErrNotFound
	case res.StatusCode == http.StatusConflict:
		return ErrConflict
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return &UnavailableError{Status: res.StatusCode, Unauthorized: true, Err: errors.New("the admin API refused obdcr's credentials")}
	case res.StatusCode >= 400 && res.StatusCode < 500:
		msg := hydraMessage(err)
		if res.StatusCode == http.StatusBadRequest && strings.HasPrefix(msg, concurrentUpdate) {
			return &UnavailableError{Status: res.StatusCode, Busy: true, Err: errors.New(msg)}
		}
		return &RejectedError{Message: msg}
	default:
		return &UnavailableError{Status: res.StatusCode, Err: errors.New(hydraMessage(err))}
	}
}

func hydraMessage(err error) string {
	var ge *hc.GenericOpenAPIError
	if errors.As(err, &ge) {
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(ge.Body(), &body) == nil && (body.Description != "" || body.Error != "") {
			if body.Description != "" {
				return body.Description
			}
			return body.Error
		}
	}
	return err.Error()
}

// IDTokenKeySet is the key set Hydra signs ID tokens with; its newest key is the one in use.
const IDTokenKeySet = "hydra.openid.id-token"

// AddSigningKey makes Hydra generate a new signing key of alg in set, which
// becomes the one Hydra signs with. Old keys stay, so tokens they signed still verify.
func (a *Admin) AddSigningKey(ctx context.Context, set, alg string) (kid string, err error) {
	ks, res, err := a.jwk.CreateJsonWebKeySet(ctx, set).CreateJsonWebKeySet(hc.CreateJsonWebKeySet{Alg: alg, Use: "sig"}).Execute()
	if err != nil {
		return "", classify(res, err)
	}
	for _, k := range ks.Keys {
		if k.Kid != "" {
			return k.Kid, nil
		}
	}
	return "", nil
}
