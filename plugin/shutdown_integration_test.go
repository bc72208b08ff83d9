package plugin_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/obdcr/obdcr/deploy/sandbox"
)

// On shutdown obdcr stops accepting, finishes what is in flight, then exits. The
// request in flight here waits on a slow TPP JWKS host when the shutdown begins.
func TestGracefulShutdown(t *testing.T) {
	o, err := env.StartObdcr(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()
	tpp, c := newTPP(t, sandbox.UK)

	leaf, err := env.Sandbox.PKI().Server("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	arrived := make(chan struct{}, 1)
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		time.Sleep(time.Second)
		res, err := http.Get(tpp.JWKSURL) //nolint:noctx // test proxy
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer res.Body.Close()
		_, _ = io.Copy(w, res.Body)
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = slow.ServeTLS(ln, "", "") }()
	defer slow.Close()
	http.DefaultTransport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: env.Sandbox.PKI().Pool()}
	defer func() { http.DefaultTransport.(*http.Transport).TLSClientConfig = nil }()

	jwt := request(t, tpp, policytestSet("software_jwks_endpoint", "https://"+ln.Addr().String()+"/slow.jwks"), nil)
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.Register(context.Background(), o.URL, jwt)
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{status: res.Status}
	}()
	<-arrived // the registration is now in flight
	stopped := make(chan error, 1)
	go func() { stopped <- o.Stop() }()

	// The listener must close while the registration is still in flight (its JWKS
	// host answers a second after it arrived): poll for that, rather than sleep.
	for closeBy := time.Now().Add(800 * time.Millisecond); ; time.Sleep(20 * time.Millisecond) {
		conn, err := net.DialTimeout("tcp", o.URL[len("https://"):], 100*time.Millisecond)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(closeBy) {
			t.Error("obdcr still accepts connections after the shutdown began")
			break
		}
	}
	r := <-done
	if r.err != nil || r.status != http.StatusCreated {
		t.Fatalf("the in-flight registration: %d %v", r.status, r.err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("obdcr did not exit after draining")
	}
}
