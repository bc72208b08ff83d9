package plugin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/deploy/sandbox"
	"github.com/obdcr/obdcr/deploy/testenv"
	"github.com/obdcr/obdcr/plugin"
)

func TestResponsesMatchOpenAPI(t *testing.T) {
	ctx := context.Background()
	o := startObdcr(t, nil)
	rec := &testenv.Recorder{}
	tpp, c := newTPP(t, sandbox.AU)
	rec.RT = c.HTTP.Transport
	c.HTTP.Transport = rec
	adminRec := &testenv.Recorder{RT: http.DefaultTransport}
	admin := &http.Client{Transport: adminRec}

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

	all := append(rec.All(), adminRec.All()...)
	if len(all) < 20 {
		t.Fatalf("only %d exchanges recorded", len(all))
	}
	rep, err := testenv.CheckOpenAPI(ctx, plugin.OpenAPI, all)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range rep.Errors {
		t.Error(err)
	}
	statuses := rep.Statuses
	for _, s := range []int{200, 201, 204, 400, 401, 404} {
		if !statuses[s] {
			t.Errorf("the tour produced no %d answer to validate", s)
		}
	}
}
