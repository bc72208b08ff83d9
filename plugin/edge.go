package plugin

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/obdcr/obdcr/hydra"
	"github.com/obdcr/obdcr/plugin/fapi"
	"github.com/obdcr/obdcr/plugin/reload"
	"github.com/obdcr/obdcr/policy"
	pf "github.com/obdcr/obdcr/policy/fapi"
)

// edgeServer is the FAPI edge's listener and what it serves (OBDCR_EDGE_LISTEN).
type edgeServer struct {
	edge *fapi.Edge
	echo *echo.Echo
	key  *reload.Value[*pf.SigningKey]
	tls  *tls.Config
}

// parseSigningKey reads OBDCR_EDGE_SIGNING_KEY_FILE.
func parseSigningKey(contents [][]byte) (*pf.SigningKey, error) {
	k, err := jwk.ParseKey(contents[0], jwk.WithPEM(true))
	if err != nil {
		return nil, fmt.Errorf("not a PEM private key: %v", err)
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return nil, err
	}
	return pf.NewSigningKey(raw)
}

// startEdge builds the edge when OBDCR_EDGE_LISTEN is set: its routes on the
// TPP listener and its own, and edge registrations shaped for it.
func (s *Server) startEdge(hc hydraClients, keys policy.TrustStore, report *reloadReport, now func() time.Time) error {
	cfg := s.cfg.Edge
	key, err := reload.New(report.options("OBDCR_EDGE_SIGNING_KEY_FILE", false), parseSigningKey, cfg.SigningKeyFile)
	if err != nil {
		return fmt.Errorf("OBDCR_EDGE_SIGNING_KEY_FILE: %v", err)
	}
	pair := s.serverCerts.pair
	if cfg.TLSCertFile != "" {
		if pair, err = reload.New(report.options("OBDCR_EDGE_TLS_CERT_FILE", false), keyPair, cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return fmt.Errorf("OBDCR_EDGE_TLS_CERT_FILE/OBDCR_EDGE_TLS_KEY_FILE: %v", err)
		}
	}
	edge, err := fapi.New(fapi.Config{Issuer: cfg.PublicURL, TPPURL: s.cfg.PublicURL,
		HydraPublic: &hydra.Public{URL: s.cfg.HydraPublicURL, HTTP: hc.public}, ProxyTransport: hc.public.Transport,
		Key: key.Get, Clients: s.registrar.Clients, State: s.registrar.State, Keys: keys, Replay: s.store, Handles: s.store, Now: now})
	if err != nil {
		return err
	}
	s.registrar.Clients = edge.ShapeClients(s.registrar.Clients)
	s.registrar.EdgeAlgs = []string{key.Get().Alg}
	e := s.newEcho("edge")
	edge.Routes(e, s.discoveryHandler)
	edge.TPPRoutes(s.tpp)
	edge.Certificates(s.certs.request, s.store)
	if err := s.introspectionRoutes(edge); err != nil {
		return err
	}
	s.edge = &edgeServer{edge: edge, echo: e, key: key, tls: &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: fapiCipherSuites,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c := pair.Get()
			return &c, nil
		}}}
	return nil
}

// serveEdge runs the edge listener until ctx ends; nil when the edge is off.
func (s *Server) serveEdge(ctx context.Context) (func() error, func(context.Context) error, error) {
	if s.edge == nil {
		return func() error { return nil }, func(context.Context) error { return nil }, nil
	}
	ln, err := net.Listen("tcp", s.cfg.Edge.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("OBDCR_EDGE_LISTEN: %v", err)
	}
	srv := &http.Server{Handler: s.edge.echo, TLSConfig: s.edge.tls, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeaderBytes,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: time.Minute, ErrorLog: s.serverErrorLog("edge")}
	return func() error { return ignoreClosed(srv.Serve(tls.NewListener(ln, s.edge.tls))) }, srv.Shutdown, nil
}
