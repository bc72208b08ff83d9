package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/policy"
)

// Discovery: the bank's OpenID discovery document is Hydra's, with the members
// that registration and FAPI clients read taken from what the enabled profiles
// accept now and what Hydra really does. A TPP builds its registration from
// this document, so a value it lists and /register refuses is a broken product.

// hydraMethods are the token endpoint authentication methods Hydra can honour.
var hydraMethods = []string{"private_key_jwt", "client_secret_basic", "client_secret_post"}

// acceptance is what the enabled profiles accept between them.
type acceptance struct {
	methods, algs, responseTypes, grantTypes, scopes []string
	// The FAPI edge's: an enabled profile requires PAR; the response modes allowed.
	requirePAR    bool
	responseModes []string
	// unbound: profiles are enabled and none binds tokens (bound_tokens false).
	unbound bool
}

func (s *Server) accepted(ctx context.Context) (acceptance, error) {
	var a acceptance
	enabled, bound := false, false
	for _, p := range s.registrar.Profiles {
		st, err := s.registrar.State.State(ctx, p.Name)
		if err != nil {
			return a, err
		}
		if !st.Enabled {
			continue
		}
		set := st.Settings
		enabled, bound = true, bound || set.BoundTokens
		a.methods = union(a.methods, set.TokenEndpointAuthMethods)
		a.algs = union(a.algs, set.SigningAlgs)
		a.responseTypes = union(a.responseTypes, set.ResponseTypes)
		a.grantTypes = union(a.grantTypes, set.GrantTypes)
		a.requirePAR = a.requirePAR || set.RequirePAR
		// An empty response_modes setting allows every mode the edge knows.
		modes := set.ResponseModes
		if len(modes) == 0 {
			modes = policy.ResponseModes
		}
		a.responseModes = union(a.responseModes, modes)
		scopes := p.Scopes
		if len(set.Scopes) > 0 { // the bank narrowed them; openid and the management scope stay
			scopes = slices.DeleteFunc(slices.Clone(p.Scopes), func(sc string) bool {
				return !slices.Contains(set.Scopes, sc) && sc != "openid" && sc != p.ManagementScope
			})
		}
		a.scopes = union(a.scopes, scopes)
	}
	a.unbound = enabled && !bound
	honoured := hydraMethods
	if s.edge != nil { // the edge authenticates tls_client_auth itself
		honoured = append(slices.Clone(hydraMethods), "tls_client_auth")
	}
	a.methods = slices.DeleteFunc(a.methods, func(m string) bool { return !slices.Contains(honoured, m) })
	return a, nil
}

// key names what a discovery document is built from besides the fixed
// configuration: what the profiles accept now.
func (a acceptance) key() string {
	var b strings.Builder
	for _, l := range [][]string{a.methods, a.algs, a.responseTypes, a.grantTypes, a.scopes, a.responseModes, {fmt.Sprint(a.requirePAR, a.unbound)}} {
		b.WriteString(strings.Join(l, " "))
		b.WriteByte('|')
	}
	return b.String()
}

// discoveryCache keeps the last document obdcr served, as JSON. Building one
// from Hydra's (up to 256 KiB) took milliseconds, for anyone who asked: it is
// built again only when Hydra's copy or what the profiles accept changes.
type discoveryCache struct {
	mu   sync.Mutex
	gen  uint64 // Hydra's document's generation
	key  string // acceptance.key
	json []byte
}

// discoveryJSON is the document as served, built when its inputs changed.
func (s *Server) discoveryJSON(ctx context.Context) ([]byte, error) {
	base, gen, err := s.discovery.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.accepted(ctx)
	if err != nil {
		return nil, err
	}
	return s.discoveryCache.get(gen, a.key(), func() ([]byte, error) { return json.Marshal(s.buildDiscovery(base, a)) })
}

// get is the document built from Hydra's generation gen and acceptance key,
// built by build only when either differs from the last one's.
func (c *discoveryCache) get(gen uint64, key string, build func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.json != nil && c.gen == gen && c.key == key {
		return c.json, nil
	}
	b, err := build()
	if err != nil {
		return nil, err
	}
	c.gen, c.key, c.json = gen, key, b
	return b, nil
}

// buildDiscovery is Hydra's document with obdcr's members laid over it.
func (s *Server) buildDiscovery(base hydra.Document, a acceptance) hydra.Document {
	doc := base.Clone()
	registration := strings.TrimRight(s.cfg.PublicURL, "/") + "/register"
	doc.Set("registration_endpoint", registration)
	aliases := map[string]any{}
	if raw, ok := base["mtls_endpoint_aliases"]; ok {
		_ = json.Unmarshal(raw, &aliases)
	}
	aliases["registration_endpoint"] = registration
	doc.Set("mtls_endpoint_aliases", aliases)
	doc.Set("token_endpoint_auth_methods_supported", nonNil(a.methods))
	doc.Set("token_endpoint_auth_signing_alg_values_supported", nonNil(a.algs))
	doc.Set("request_object_signing_alg_values_supported", nonNil(a.algs))
	// Hydra signs every ID token with one key: its alg is the only one a client
	// can get, and only if some profile allows it.
	idAlgs := slices.DeleteFunc(base.Strings("id_token_signing_alg_values_supported"), func(alg string) bool { return !slices.Contains(a.algs, alg) })
	doc.Set("id_token_signing_alg_values_supported", nonNil(idAlgs))
	doc.Set("response_types_supported", nonNil(a.responseTypes))
	doc.Set("grant_types_supported", nonNil(a.grantTypes))
	doc.Set("scopes_supported", union(base.Strings("scopes_supported"), a.scopes))
	// Hydra cannot bind tokens to certificates (RFC 8705): say so.
	doc.Set("tls_client_certificate_bound_access_tokens", false)
	doc.Set("require_pushed_authorization_requests", false)
	delete(doc, "pushed_authorization_request_endpoint")
	if s.edge != nil {
		s.edge.edge.Overlay(doc, a.requirePAR)
		doc.Set("response_modes_supported", nonNil(a.responseModes))
		if a.unbound { // every enabled profile's bound_tokens is false
			doc.Set("tls_client_certificate_bound_access_tokens", false)
		}
	}
	return doc
}

// discoveryHandler is GET /.well-known/openid-configuration on the TPP listener.
func (s *Server) discoveryHandler(c echo.Context) error {
	if s.cfg.PublicURL == "" {
		return newHTTPError(http.StatusNotFound, "not_found", "this server publishes no discovery document: OBDCR_PUBLIC_URL is not set")
	}
	doc, err := s.discoveryJSON(c.Request().Context())
	if err != nil {
		return &policy.Unavailable{Dependency: "hydra", Err: err}
	}
	// A policy change must show within seconds: caches may keep it briefly only.
	c.Response().Header().Set("Cache-Control", "public, max-age=5")
	return c.JSONBlob(http.StatusOK, doc)
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, v := range b {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
