package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin/fapi"
	"github.com/obdcr/obdcr/policy"
)

// The edge's part of the setup check: Hydra's issuer is the edge, and every
// registration's Hydra client is shaped so that its client cannot reach Hydra
// around the edge (fapi.Shape). Registrations made before the edge was on
// redirect to the TPP's own URIs and trust the TPP's own keys; those made by an
// obdcr that signed its assertions with the edge key trust that key.

// EdgeSetup is what the edge's checks need.
type EdgeSetup struct {
	// PublicURL is OBDCR_EDGE_PUBLIC_URL.
	PublicURL string
	// AssertionKey is the public key every edge registration's Hydra client
	// must trust, and no other; nil when it could not be read (KeyErr).
	AssertionKey jwk.Key
	KeyErr       error
}

// Edge checks.
const (
	CheckEdgeIssuer        = "edge.issuer"
	CheckEdgeRegistrations = "edge.registrations"
)

// maxListedStrays bounds the client_ids one finding names.
const maxListedStrays = 20

// EdgeInfo is GET /admin/edge: what obdcr doctor needs of the running edge.
type EdgeInfo struct {
	Issuer       string          `json:"issuer"`
	AssertionKey json.RawMessage `json:"assertion_key"`
}

// edgeInfo serves GET /admin/edge.
func (s *Server) edgeInfo(c echo.Context) error {
	b, err := json.Marshal(s.edge.assertion.Public)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, EdgeInfo{Issuer: s.cfg.Edge.PublicURL, AssertionKey: b})
}

// ParseEdgeInfo reads GET /admin/edge's answer into the checks' setup.
func ParseEdgeInfo(publicURL string, info EdgeInfo, err error) *EdgeSetup {
	e := &EdgeSetup{PublicURL: publicURL}
	if err == nil {
		e.AssertionKey, err = jwk.ParseKey(info.AssertionKey)
	}
	if err != nil {
		e.KeyErr = fmt.Errorf("obdcr's assertion key cannot be read from the running obdcr (OBDCR_ADMIN_URL, GET /admin/edge): %w", err)
	}
	return e
}

func (e *EdgeSetup) callback() string { return strings.TrimRight(e.PublicURL, "/") + fapi.CallbackPath }

func (e *EdgeSetup) alg() string {
	if a, ok := e.AssertionKey.Get(jwk.AlgorithmKey); ok {
		return fmt.Sprint(a)
	}
	return ""
}

// stray is a registration whose Hydra client lets its client go around the edge.
type stray struct {
	client hydra.Client
	why    []string
}

// strays reads every Hydra client (obdcr's are those with its record in their
// metadata) and returns obdcr's that are not shaped for the edge.
func (s Setup) strays(ctx context.Context) ([]stray, error) {
	var out []stray
	token := ""
	for {
		page, next, err := s.Admin.ListPage(ctx, token)
		if err != nil {
			return nil, err
		}
		for _, c := range page {
			if _, err := policy.FromHydra(c, nil); errors.Is(err, policy.ErrNotManaged) {
				continue // the bank's own apps: not obdcr's to shape
			}
			if why := fapi.Unshaped(c, s.Edge.callback(), s.Edge.AssertionKey, s.Edge.alg()); len(why) > 0 {
				out = append(out, stray{client: c, why: why})
			}
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}

// edgeChecks are the edge's findings, given Hydra's discovery document.
func (s Setup) edgeChecks(ctx context.Context, doc hydra.Document) []Finding {
	e := s.Edge
	var out []Finding
	if iss := doc.String("issuer"); strings.TrimRight(iss, "/") != strings.TrimRight(e.PublicURL, "/") {
		out = append(out, Finding{Check: CheckEdgeIssuer, Severity: SeverityError,
			Message: fmt.Sprintf("Hydra's issuer is %q, not OBDCR_EDGE_PUBLIC_URL %q: its tokens name an issuer clients do not reach through the edge", iss, e.PublicURL),
			Fix:     "set Hydra's URLS_SELF_ISSUER and URLS_SELF_PUBLIC to " + e.PublicURL})
	} else {
		out = append(out, Finding{Check: CheckEdgeIssuer, Severity: SeverityOK, Message: "Hydra's issuer is OBDCR_EDGE_PUBLIC_URL"})
	}
	f := Finding{Check: CheckEdgeRegistrations}
	if e.KeyErr != nil {
		f.Severity, f.Message = SeverityError, e.KeyErr.Error()
		f.Fix = "run obdcr serve with the edge on, and set OBDCR_ADMIN_URL and OBDCR_ADMIN_TOKEN for obdcr doctor"
		return append(out, f)
	}
	strays, err := s.strays(ctx)
	switch {
	case err != nil:
		f.Severity, f.Message = SeverityError, "Hydra's clients cannot be listed: "+err.Error()
		f.Fix = "check HYDRA_ADMIN_URL and obdcr's credentials for Hydra's admin API"
	case len(strays) == 0:
		f.Severity, f.Message = SeverityOK, "every registration's Hydra client is reachable only through the edge"
	default:
		f.Severity, f.Fix = SeverityError, "obdcr doctor --fix reshapes them as edge registrations"
		f.Message = fmt.Sprintf("%d registration(s) made before the edge was on (or trusting an old key) let their clients reach Hydra around the edge: %s",
			len(strays), describeStrays(strays))
	}
	return append(out, f)
}

// describeStrays names at most maxListedStrays clients and why each strays.
func describeStrays(strays []stray) string {
	parts := make([]string, 0, maxListedStrays+1)
	for i, st := range strays {
		if i == maxListedStrays {
			parts = append(parts, fmt.Sprintf("and %d more", len(strays)-i))
			break
		}
		parts = append(parts, st.client.ID+" ("+strings.Join(st.why, "; ")+")")
	}
	return strings.Join(parts, ", ")
}

// edgeMoveImpact is what --fix's move does to a registration and its tokens.
const edgeMoveImpact = "client_id, metadata, grants and scopes are kept and nothing is revoked: access and refresh tokens " +
	"already issued stay valid, refreshed at the edge's token endpoint (the published one) with the client's own key; " +
	"Hydra's token endpoint no longer takes the client's own key, and a code issued before the move (at most 10 minutes " +
	"old) cannot be redeemed, so that user authorizes again"

// edgePlan says what Fix would do about the edge's findings.
func (s Setup) edgePlan() string {
	return "reshape the Hydra client of each registration listed under " + CheckEdgeRegistrations + " as an edge registration " +
		"(redirect URI " + s.Edge.callback() + ", obdcr's assertion key as its only key): " + edgeMoveImpact
}

// fixEdge reshapes every stray registration's Hydra client; it reads each
// again first, so that a registration changed meanwhile keeps its change.
func (s Setup) fixEdge(ctx context.Context) ([]string, error) {
	strays, err := s.strays(ctx)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, st := range strays {
		c, err := s.Admin.Get(ctx, st.client.ID)
		if errors.Is(err, hydra.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return done, err
		}
		shaped, err := fapi.Shape(c, s.Edge.callback(), s.Edge.AssertionKey, s.Edge.alg())
		if err != nil {
			return done, err
		}
		if _, err := s.Admin.Replace(ctx, shaped); err != nil {
			return done, fmt.Errorf("reshaping %s: %w", c.ID, err)
		}
		done = append(done, "moved registration "+c.ID+" behind the edge")
	}
	return done, nil
}
