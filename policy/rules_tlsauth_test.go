package policy

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"
)

// TestTLSClientAuthRule: a tls_client_auth client names its certificate by
// exactly one well-formed subject; UK's must be a DN naming the SSA's
// organisation and software; other methods name none; and tls_client_auth
// registers only with the edge on.
func TestTLSClientAuthRule(t *testing.T) {
	st := &SoftwareStatement{OrgID: "0015800001041RHAAY", SoftwareID: "sw-1"}
	tests := []struct {
		name    string
		uk      bool
		g       ClientMetadata
		refused string // the claim named, "" for none
	}{
		{"UK DN naming org and software", true, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth",
			TLSClientAuthSubjectDN: "CN=sw-1,OU=0015800001041RHAAY,O=OpenBanking,C=GB"}, ""},
		{"UK DN in other case and by OID", true, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth",
			TLSClientAuthSubjectDN: "cn=sw-1, 2.5.4.11=0015800001041RHAAY, o=OpenBanking"}, ""},
		{"UK DN of other software", true, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth",
			TLSClientAuthSubjectDN: "CN=sw-2,OU=0015800001041RHAAY"}, "tls_client_auth_subject_dn"},
		{"UK with a SAN instead of the DN", true, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth",
			TLSClientAuthSANDNS: "tpp.example.com"}, "tls_client_auth_subject_dn"},
		{"none given", false, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth"}, "token_endpoint_auth_method"},
		{"two given", false, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth", TLSClientAuthSANDNS: "a.example",
			TLSClientAuthSANEmail: "x@a.example"}, "token_endpoint_auth_method"},
		{"DN not RFC 4514", false, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth", TLSClientAuthSubjectDN: "CN"}, "tls_client_auth_subject_dn"},
		{"DN too long", false, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth", TLSClientAuthSubjectDN: "CN=" + strings.Repeat("a", 300)}, "tls_client_auth_subject_dn"},
		{"SAN IP", false, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth", TLSClientAuthSANIP: "2001:db8::1"}, ""},
		{"SAN IP malformed", false, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth", TLSClientAuthSANIP: "300.1.1.1"}, "tls_client_auth_san_ip"},
		{"SAN URI relative", false, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth", TLSClientAuthSANURI: "/x"}, "tls_client_auth_san_uri"},
		{"SAN email malformed", false, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth", TLSClientAuthSANEmail: "Bob <b@x.example>"}, "tls_client_auth_san_email"},
		{"SAN DNS malformed", false, ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth", TLSClientAuthSANDNS: "a b"}, "tls_client_auth_san_dns"},
		{"SAN with private_key_jwt", false, ClientMetadata{TokenEndpointAuthMethod: "private_key_jwt", TLSClientAuthSANDNS: "a.example"}, "tls_client_auth_san_dns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := &Evaluation{Statement: st, Granted: tc.g}
			err := TLSClientAuth(tc.uk).Check(context.Background(), ev)
			e, _ := err.(*Error)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && (e == nil || e.Claim != tc.refused):
				t.Fatalf("got %v, want a refusal of %s", err, tc.refused)
			}
		})
	}
	for _, edge := range [][]string{nil, {"PS256"}} {
		ev := &Evaluation{EdgeAlgs: edge, Settings: Settings{TokenEndpointAuthMethods: []string{"private_key_jwt", "tls_client_auth"}},
			Granted: ClientMetadata{TokenEndpointAuthMethod: "tls_client_auth"}}
		err := AuthMethod(true).Check(context.Background(), ev)
		if (err == nil) != (edge != nil) {
			t.Fatalf("edge %v: tls_client_auth allowed by the profile: %v (registers only with the edge on)", edge, err)
		}
	}
}

// TestSubjectDN: a certificate's subject equals a registered DN by RFC 4514
// after normalising case, spacing and attribute names (organizationIdentifier
// is written by Go as an OID with a hex value).
func TestSubjectDN(t *testing.T) {
	oi := asn1.ObjectIdentifier{2, 5, 4, 97}
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "sw-1", OrganizationalUnit: []string{"org-1"}, Organization: []string{"OpenBanking"},
		Country: []string{"GB"}, ExtraNames: []pkix.AttributeTypeAndValue{{Type: oi, Value: "PSDGB-FCA-123456"}}}}
	got, err := SubjectDN(cert)
	if err != nil {
		t.Fatal(err)
	}
	for registered, want := range map[string]bool{
		"organizationIdentifier=PSDGB-FCA-123456, CN=sw-1,OU=org-1,O=OpenBanking,C=GB": true,
		"2.5.4.97=psdgb-fca-123456,cn=SW-1,ou=ORG-1,o=openbanking,c=gb":                true,
		"CN=sw-1,OU=org-1,O=OpenBanking,C=GB":                                          false,
		"organizationIdentifier=PSDGB-FCA-123456,CN=sw-2,OU=org-1,O=OpenBanking,C=GB":  false,
	} {
		dn, err := ParseDN(registered)
		if err != nil {
			t.Fatal(err)
		}
		if dn.EqualFold(got) != want {
			t.Errorf("%q against %q: equal %v, want %v", registered, cert.Subject.ToRDNSequence().String(), !want, want)
		}
	}
}
