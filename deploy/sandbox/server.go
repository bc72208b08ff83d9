package sandbox

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Handler serves what the real directories serve:
//
//	/uk/directory/jwks                               Open Banking Directory signing keys
//	/uk/tpp/{org_id}/{software_id}.jwks              a UK TPP's keys
//	/cdr-register/v1/jwks                            CDR Register signing keys
//	/au/tpp/{software_id}/jwks                       an AU data recipient's keys
//	/cdr-register/v1/all/data-recipients/brands/software-products/status
//	/cdr-register/v1/all/data-recipients/status
//	/hydra/login, /hydra/consent                     a bank's login and consent app, for Hydra (GET a page, POST its form)
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	loginConsent := func(step func(*LoginConsent, http.ResponseWriter, *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s.reload()
			s.mu.Lock()
			admin := s.HydraAdminURL
			s.mu.Unlock()
			if admin == "" {
				http.Error(w, "the sandbox knows no Hydra admin URL: obdcr-sandbox serve --hydra-admin URL", http.StatusServiceUnavailable)
				return
			}
			step(NewLoginConsent(admin, nil), w, r)
		}
	}
	mux.HandleFunc("GET /hydra/login", loginConsent((*LoginConsent).Login))
	mux.HandleFunc("GET /hydra/consent", loginConsent((*LoginConsent).Consent))
	mux.HandleFunc("POST /hydra/login", loginConsent((*LoginConsent).Login))
	mux.HandleFunc("POST /hydra/consent", loginConsent((*LoginConsent).Consent))
	mux.HandleFunc("GET /uk/directory/jwks", func(w http.ResponseWriter, _ *http.Request) { writeSet(w, s.Directory.JWKS()) })
	mux.HandleFunc("GET /cdr-register/v1/jwks", func(w http.ResponseWriter, _ *http.Request) { writeSet(w, s.Register.JWKS()) })
	mux.HandleFunc("GET /uk/tpp/{org}/{file}", func(w http.ResponseWriter, r *http.Request) {
		s.serveTPP(w, strings.TrimSuffix(r.PathValue("file"), ".jwks"))
	})
	mux.HandleFunc("GET /au/tpp/{software}/jwks", func(w http.ResponseWriter, r *http.Request) {
		s.serveTPP(w, r.PathValue("software"))
	})
	mux.HandleFunc("GET /cdr-register/v1/all/data-recipients/brands/software-products/status", func(w http.ResponseWriter, r *http.Request) {
		s.productPolls.Add(1)
		s.serveStatus(w, r, func(sb *Sandbox) any {
			type row struct {
				ID     string `json:"softwareProductId"`
				Status string `json:"status"`
			}
			return rows(sb.ProductStatus, func(id, st string) any { return row{id, st} })
		})
	})
	mux.HandleFunc("GET /cdr-register/v1/all/data-recipients/status", func(w http.ResponseWriter, r *http.Request) {
		s.serveStatus(w, r, func(sb *Sandbox) any {
			type row struct {
				ID     string `json:"legalEntityId"`
				Status string `json:"status"`
			}
			return rows(sb.EntityStatus, func(id, st string) any { return row{id, st} })
		})
	})
	return mux
}

func rows(m map[string]string, mk func(id, st string) any) []any {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]any, 0, len(ids))
	for _, id := range ids {
		out = append(out, mk(id, m[id]))
	}
	return out
}

func (s *Sandbox) serveTPP(w http.ResponseWriter, softwareID string) {
	s.reload()
	s.mu.Lock()
	var found *TPP
	for _, t := range s.TPPs {
		if t.SoftwareID == softwareID {
			found = t
		}
	}
	s.mu.Unlock()
	if found == nil {
		http.NotFound(w, nil)
		return
	}
	set, err := found.JWKS()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeSet(w, set)
}

func (s *Sandbox) serveStatus(w http.ResponseWriter, r *http.Request, data func(*Sandbox) any) {
	s.reload()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.RegisterDown {
		http.Error(w, "sandbox Register is down", http.StatusServiceUnavailable)
		return
	}
	if v := r.Header.Get("x-v"); v != "" && v < "2" {
		http.Error(w, `{"errors":[{"code":"urn:au-cds:error:cds-all:Header/UnsupportedVersion"}]}`, http.StatusNotAcceptable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-v", "3")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"data":  data(s),
		"links": map[string]string{"self": s.BaseURL + r.URL.Path},
		"meta":  map[string]any{"totalRecords": 0, "generated": time.Now().UTC().Format(time.RFC3339)},
	})
}

func writeSet(w http.ResponseWriter, set jwk.Set) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "max-age=300")
	_ = json.NewEncoder(w).Encode(set)
}
