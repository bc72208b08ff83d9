package plugin_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/plugin"
)

// exchange is one real request and its answer.
type exchange struct {
	req     *http.Request
	reqBody []byte
	res     *http.Response
	resBody []byte
}

// recorder keeps every exchange that passes through it.
type recorder struct {
	rt  http.RoundTripper
	mu  sync.Mutex
	all []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	res, err := r.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resBody, _ := io.ReadAll(res.Body)
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	r.mu.Lock()
	r.all = append(r.all, exchange{req: req, reqBody: reqBody, res: res, resBody: resBody})
	r.mu.Unlock()
	return res, nil
}

func TestResponsesMatchOpenAPI(t *testing.T) {
	ctx := context.Background()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(plugin.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("openapi.yaml is not valid OpenAPI 3: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}

	o := startObdcr(t, nil)
	rec := &recorder{}
	tpp, c := newTPP(t, sandbox.AU)
	rec.rt = c.HTTP.Transport
	c.HTTP.Transport = rec
	admin := &http.Client{Transport: &recorder{rt: http.DefaultTransport}}
	admin.Transport.(*recorder).rt = http.DefaultTransport

	// A tour of both APIs, each answer recorded.
	res, _ := c.Register(ctx, o.URL, request(t, tpp, nil, nil))
	id := res.JSON()["client_id"].(string)
	_, _ = c.Register(ctx, o.URL, request(t, tpp, nil, policytestSet("redirect_uris", []string{"https://x.example/cb"})))
	_, _ = c.Register(ctx, o.URL, "not a jwt")
	tokClient, _ := sandbox.NewClient(tpp, env.Sandbox.PKI().Pool()) // tokens from Hydra are not obdcr's API
	tok, _, err := tokClient.Token(ctx, env.Hydra.TokenURL(), id, "cdr:registration")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Get(ctx, o.URL, id, tok)
	_, _ = c.Get(ctx, o.URL, id, "bad-token")
	_, _ = c.Update(ctx, o.URL, id, tok, request(t, tpp, nil, nil))
	_, _ = c.Update(ctx, o.URL, id, tok, request(t, tpp, nil, policytestSet("response_types", []string{"token"})))
	for _, p := range []string{"/health/alive", "/health/ready", "/openapi.yaml", "/.well-known/openid-configuration"} {
		req, _ := http.NewRequest(http.MethodGet, o.URL+p, nil)
		_, _ = c.HTTP.Do(req)
	}
	adminDo := func(method, path, ctype, body string) {
		req, _ := http.NewRequest(method, o.AdminURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if _, err := admin.Do(req); err != nil {
			t.Fatal(err)
		}
	}
	adminDo(http.MethodGet, "/admin/policies", "", "")
	adminDo(http.MethodPut, "/admin/policies/au", "application/json", `{"settings":{"clock_skew":"40s"}}`)
	adminDo(http.MethodPut, "/admin/policies/au", "application/json", `{"settings":{"clock_skew":"4h"}}`)
	adminDo(http.MethodPut, "/admin/policies/xx", "application/json", `{"enabled":true}`)
	staleReq, _ := http.NewRequest(http.MethodPut, o.AdminURL+"/admin/policies/au", strings.NewReader(`{"enabled":true}`))
	staleReq.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
	staleReq.Header.Set("Content-Type", "application/json")
	staleReq.Header.Set("If-Match", `"0"`)
	if _, err := admin.Do(staleReq); err != nil {
		t.Fatal(err)
	}
	adminDo(http.MethodGet, "/admin/audit?limit=10", "", "")
	adminDo(http.MethodGet, "/admin/registrations?software_id="+tpp.SoftwareID, "", "")
	adminDo(http.MethodPost, "/admin/dry-run", "application/jwt", request(t, tpp, nil, nil))
	adminDo(http.MethodPost, "/admin/dry-run", "application/jwt", "garbage")
	adminDo(http.MethodGet, "/health/ready", "", "")
	adminDo(http.MethodGet, "/metrics", "", "")
	_, _ = c.Delete(ctx, o.URL, id, tok)
	adminDo(http.MethodDelete, "/admin/registrations/"+id, "", "")

	all := append(rec.all, admin.Transport.(*recorder).all...)
	if len(all) < 20 {
		t.Fatalf("only %d exchanges recorded", len(all))
	}
	statuses := map[int]bool{}
	for _, x := range all {
		statuses[x.res.StatusCode] = true
		// The router matches on path only: point the recorded URL at the document's server.
		u := *x.req.URL
		u.Scheme, u.Host = "", ""
		req := x.req.Clone(ctx)
		req.URL = &u
		req.Body = io.NopCloser(bytes.NewReader(x.reqBody))
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: not in openapi.yaml: %v", x.req.Method, x.req.URL.Path, err)
			continue
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: x.res.StatusCode, Header: x.res.Header,
			Body: io.NopCloser(bytes.NewReader(x.resBody)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			t.Errorf("%s %s -> %d does not match openapi.yaml: %v\n%s", x.req.Method, x.req.URL.Path, x.res.StatusCode, err, x.resBody)
		}
	}
	for _, s := range []int{200, 201, 204, 400, 401, 404} {
		if !statuses[s] {
			t.Errorf("the tour produced no %d answer to validate", s)
		}
	}
}
