package policy

import (
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Distinguished names as RFC 8705 §2.1.2 compares them: the registered
// tls_client_auth_subject_dn and a certificate's subject, each an RFC 4514
// string parsed by go-ldap, equal when their attribute types (by OID) and
// values match without regard to case or RDN-internal order.

// maxDN bounds a registered DN.
const maxDN = 256

// dnTypes are the attribute names certificates use, by OID, so that "CN=x" and
// "2.5.4.3=#..." (how Go writes a type it has no name for) compare equal.
var dnTypes = map[string]string{
	"cn": "2.5.4.3", "sn": "2.5.4.4", "serialnumber": "2.5.4.5", "c": "2.5.4.6", "l": "2.5.4.7", "st": "2.5.4.8",
	"street": "2.5.4.9", "o": "2.5.4.10", "ou": "2.5.4.11", "title": "2.5.4.12", "postalcode": "2.5.4.17",
	"givenname": "2.5.4.42", "organizationidentifier": "2.5.4.97", "dc": "0.9.2342.19200300.100.1.25",
	"uid": "0.9.2342.19200300.100.1.1", "emailaddress": "1.2.840.113549.1.9.1", "email": "1.2.840.113549.1.9.1",
}

// ParseDN reads an RFC 4514 distinguished name, its attribute types as OIDs.
func ParseDN(s string) (*ldap.DN, error) {
	if len(s) > maxDN {
		return nil, fmt.Errorf("is longer than %d characters", maxDN)
	}
	return parseDN(s)
}

func parseDN(s string) (*ldap.DN, error) {
	dn, err := ldap.ParseDN(s)
	if err != nil {
		return nil, fmt.Errorf("is not an RFC 4514 distinguished name: %v", err)
	}
	if len(dn.RDNs) == 0 {
		return nil, fmt.Errorf("is empty")
	}
	for _, rdn := range dn.RDNs {
		for _, a := range rdn.Attributes {
			if oid, ok := dnTypes[strings.ToLower(a.Type)]; ok {
				a.Type = oid
			}
		}
	}
	return dn, nil
}

// SubjectDN is a certificate's subject as ParseDN reads it.
func SubjectDN(cert *x509.Certificate) (*ldap.DN, error) {
	return parseDN(cert.Subject.ToRDNSequence().String())
}

// DNValues are the values of one attribute type (a name or an OID) in dn.
func DNValues(dn *ldap.DN, typ string) []string {
	if oid, ok := dnTypes[strings.ToLower(typ)]; ok {
		typ = oid
	}
	var out []string
	for _, rdn := range dn.RDNs {
		for _, a := range rdn.Attributes {
			if a.Type == typ {
				out = append(out, a.Value)
			}
		}
	}
	return out
}
