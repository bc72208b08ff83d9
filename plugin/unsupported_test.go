package plugin

import (
	"strings"
	"testing"
)

// TestUnsupportedWithTheEdge: with the edge off, the doctor's findings about
// what Hydra cannot do are Unsupported unchanged; with it on (as NewDoctor
// sets it from OBDCR_EDGE_PUBLIC_URL), bound tokens, PAR, JARM and s_hash say the edge
// provides them and no longer that a request for them is refused or not
// honoured, and what the edge does not provide (ID-token encryption) stays.
func TestUnsupportedWithTheEdge(t *testing.T) {
	environ := map[string]string{"OBDCR_ISSUER": "https://issuer.example", "HYDRA_ADMIN_URL": "http://127.0.0.1:4445"}
	for _, edge := range []bool{false, true} {
		s, err := NewDoctor(environ, nil)
		if err != nil {
			t.Fatal(err)
		}
		if edge { // as obdcr doctor sets it from OBDCR_EDGE_PUBLIC_URL and the running obdcr
			s.Edge = &EdgeSetup{PublicURL: "https://issuer.example"}
		}
		got := map[string]string{}
		for _, f := range s.unsupported() {
			got[f.Check] = f.Message
			if f.Severity != SeverityOK {
				t.Errorf("%s: severity %s", f.Check, f.Severity)
			}
		}
		if len(got) != len(Unsupported) {
			t.Fatalf("edge %v: %d findings, want %d", edge, len(got), len(Unsupported))
		}
		for _, f := range Unsupported {
			_, provided := edgeProvides[f.Check]
			switch msg := got[f.Check]; {
			case !edge || !provided:
				if msg != f.Message {
					t.Errorf("edge %v, %s: %q, want it unchanged", edge, f.Check, msg)
				}
			case !strings.Contains(msg, "the FAPI edge"):
				t.Errorf("edge on, %s does not say the edge provides it: %q", f.Check, msg)
			case strings.Contains(msg, "is refused") || strings.Contains(msg, "not honoured") || strings.Contains(msg, "says tls_client_certificate_bound_access_tokens false"):
				t.Errorf("edge on, %s still says Hydra's answer: %q", f.Check, msg)
			}
		}
	}
	for _, check := range []string{"hydra.certificate_bound_tokens", "hydra.par", "hydra.jarm"} {
		if _, ok := edgeProvides[check]; !ok {
			t.Errorf("%s has no edge message", check)
		}
	}
}
