package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Exchange is one real request and its answer.
type Exchange struct {
	Req     *http.Request
	ReqBody []byte
	Res     *http.Response
	ResBody []byte
}

// Recorder is a RoundTripper that keeps every exchange passing through it,
// for checking the answers against openapi.yaml.
type Recorder struct {
	RT  http.RoundTripper
	mu  sync.Mutex
	all []Exchange
}

func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	res, err := r.RT.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resBody, _ := io.ReadAll(res.Body)
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	r.mu.Lock()
	r.all = append(r.all, Exchange{Req: req, ReqBody: reqBody, Res: res, ResBody: resBody})
	r.mu.Unlock()
	return res, nil
}

// All is every exchange recorded so far.
func (r *Recorder) All() []Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Exchange(nil), r.all...)
}

// OpenAPIReport is what checking exchanges against a document found.
type OpenAPIReport struct {
	// Statuses are the answers' status codes; Routes are "METHOD /path" as
	// the document names them (path templates), each exchange matched.
	Statuses map[int]bool
	Routes   map[string]bool
	// Errors are exchanges not in the document, or answers not matching it.
	Errors []error
}

// CheckOpenAPI validates the document, then routes each exchange by method
// and path in it and validates its answer against it.
func CheckOpenAPI(ctx context.Context, spec []byte, all []Exchange) (*OpenAPIReport, error) {
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not valid OpenAPI 3: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	rep := &OpenAPIReport{Statuses: map[int]bool{}, Routes: map[string]bool{}}
	for _, x := range all {
		rep.Statuses[x.Res.StatusCode] = true
		// The router matches on path only: point the recorded URL at the document's server.
		u := *x.Req.URL
		u.Scheme, u.Host = "", ""
		req := x.Req.Clone(ctx)
		req.URL = &u
		req.Body = io.NopCloser(bytes.NewReader(x.ReqBody))
		route, params, err := router.FindRoute(req)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Errorf("%s %s: not in openapi.yaml: %v", x.Req.Method, x.Req.URL.Path, err))
			continue
		}
		rep.Routes[x.Req.Method+" "+route.Path] = true
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: x.Res.StatusCode, Header: x.Res.Header,
			Body: io.NopCloser(bytes.NewReader(x.ResBody)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			rep.Errors = append(rep.Errors, fmt.Errorf("%s %s -> %d does not match openapi.yaml: %v\n%s", x.Req.Method, x.Req.URL.Path, x.Res.StatusCode, err, x.ResBody))
		}
	}
	return rep, nil
}
