package policy

import (
	"context"
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
)

// RuleTLSClientAuth names the check of tls_client_auth's subject (RFC 8705 §2.1.2).
const RuleTLSClientAuth = "tls_client_auth"

// tlsSubjectClaims are RFC 8705 §2.1.2's ways of naming the expected certificate.
var tlsSubjectClaims = []string{"tls_client_auth_subject_dn", "tls_client_auth_san_dns", "tls_client_auth_san_uri",
	"tls_client_auth_san_ip", "tls_client_auth_san_email"}

func tlsSubjects(m *ClientMetadata) []string {
	return []string{m.TLSClientAuthSubjectDN, m.TLSClientAuthSANDNS, m.TLSClientAuthSANURI, m.TLSClientAuthSANIP, m.TLSClientAuthSANEmail}
}

// TLSClientAuth: a tls_client_auth client names its certificate by exactly one
// of the subject DN or a SAN, each well formed; another method names none.
// namesSoftware (UK): the subject DN is required and names the SSA's
// organisation and software, as the transport certificate rule checks.
func TLSClientAuth(requireSoftwareDN bool) Rule {
	return Rule{Name: RuleTLSClientAuth, Needs: []string{RuleAuthMethod, RuleSSAClaims}, Check: func(_ context.Context, ev *Evaluation) error {
		g := &ev.Granted
		var given []int
		for i, v := range tlsSubjects(g) {
			if v != "" {
				given = append(given, i)
			}
		}
		if g.TokenEndpointAuthMethod != "tls_client_auth" {
			if len(given) > 0 {
				return Refuse(InvalidClientMetadata, tlsSubjectClaims[given[0]], "applies only to tls_client_auth, and this client uses %s", g.TokenEndpointAuthMethod)
			}
			return nil
		}
		if len(given) != 1 {
			return Refuse(InvalidClientMetadata, "token_endpoint_auth_method", "tls_client_auth needs exactly one of %s; %d given",
				strings.Join(tlsSubjectClaims, ", "), len(given))
		}
		i := given[0]
		name, value := tlsSubjectClaims[i], tlsSubjects(g)[i]
		if err := checkTLSSubject(i, value); err != nil {
			return Refuse(InvalidClientMetadata, name, "%v", err)
		}
		if !requireSoftwareDN {
			return nil
		}
		if i != 0 {
			return Refuse(InvalidClientMetadata, "tls_client_auth_subject_dn", "is required with tls_client_auth (OBIE DCR), and %s is given instead", name)
		}
		dn, _ := ParseDN(value)
		cns := DNValues(dn, "cn")
		if len(cns) != 1 || !namesSoftware(DNValues(dn, "ou"), cns[0], ev.Statement) {
			return Refuse(InvalidClientMetadata, "tls_client_auth_subject_dn", "must name the software statement's organisation and software: OU=%s, CN=%s",
				ev.Statement.OrgID, ev.Statement.SoftwareID)
		}
		return nil
	}}
}

// checkTLSSubject: the value of tlsSubjectClaims[i] is of its kind.
func checkTLSSubject(i int, v string) error {
	if len(v) > maxDN {
		return fmt.Errorf("is longer than %d characters", maxDN)
	}
	switch i {
	case 0:
		_, err := ParseDN(v)
		return err
	case 1:
		if strings.ContainsAny(v, " /@:") || strings.Trim(v, ".") == "" {
			return fmt.Errorf("%q is not a DNS name", truncate(v, 80))
		}
	case 2:
		if u, err := url.Parse(v); err != nil || !u.IsAbs() {
			return fmt.Errorf("%q is not an absolute URI", truncate(v, 80))
		}
	case 3:
		if _, err := netip.ParseAddr(v); err != nil {
			return fmt.Errorf("%q is not an IPv4 or IPv6 address", truncate(v, 80))
		}
	case 4:
		if a, err := mail.ParseAddress(v); err != nil || a.Address != v {
			return fmt.Errorf("%q is not an email address", truncate(v, 80))
		}
	}
	return nil
}
