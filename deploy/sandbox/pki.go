package sandbox

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// PKI is a certificate authority for the sandbox: it signs obdcr's and the
// sandbox's server certificates and the TPPs' transport certificates.
type PKI struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// NewPKI makes a CA valid for ten years.
func NewPKI(name string) (*PKI, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"obdcr sandbox"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &PKI{Cert: cert, Key: key, CertPEM: pemBlock("CERTIFICATE", der)}, nil
}

// Pool is a cert pool holding only this CA.
func (p *PKI) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Cert)
	return pool
}

// Leaf is an issued certificate with its key, in both forms.
type Leaf struct {
	TLS     tls.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// Server issues a server certificate for hosts (names or IPs), valid two years.
func (p *PKI) Server(hosts ...string) (*Leaf, error) {
	return p.ServerUntil(time.Time{}, hosts...)
}

// ServerUntil issues a server certificate that expires at notAfter (zero: in two
// years): one about to expire, for what watches expiry.
func (p *PKI) ServerUntil(notAfter time.Time, hosts ...string) (*Leaf, error) {
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: hosts[0]}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotAfter: notAfter}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return p.issue(tmpl, nil)
}

// Client issues a transport (client) certificate with subject, for key (nil: new).
func (p *PKI) Client(subject pkix.Name, key crypto.Signer) (*Leaf, error) {
	tmpl := &x509.Certificate{Subject: subject, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	return p.issue(tmpl, key)
}

func (p *PKI) issue(tmpl *x509.Certificate, key crypto.Signer) (*Leaf, error) {
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		key = k
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(2 * 365 * 24 * time.Hour)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.Cert, key.Public(), p.Key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	leaf := &Leaf{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", keyDER)}
	leaf.TLS, err = tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		return nil, err
	}
	leaf.TLS.Leaf, _ = x509.ParseCertificate(der)
	return leaf, nil
}

// LoadLeaf reads a certificate and key stored as PEM.
func LoadLeaf(certPEM, keyPEM []byte) (*Leaf, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	c.Leaf, err = x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, err
	}
	return &Leaf{TLS: c, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// LoadPKI reads a CA stored as PEM.
func LoadPKI(certPEM, keyPEM []byte) (*PKI, error) {
	leaf, err := LoadLeaf(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("sandbox CA: %w", err)
	}
	return &PKI{Cert: leaf.TLS.Leaf, Key: leaf.TLS.PrivateKey.(crypto.Signer), CertPEM: certPEM}, nil
}

// KeyPEM is the CA key as PEM, for saving.
func (p *PKI) KeyPEM() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(p.Key)
	return pemBlock("PRIVATE KEY", der)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}
