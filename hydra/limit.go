package hydra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// ErrNotSent is a call that never left obdcr: it waited for one of the
// HYDRA_ADMIN_MAX_CONNS calls in flight to end until its context did. Hydra
// never saw it, so a create that fails so made nothing and never will.
var ErrNotSent = errors.New("the call to Hydra's admin API was not sent")

// LimitCalls lets at most n calls through rt at once (n < 1: no limit) and gives
// each callTimeout from when it gets its place. A call past the n waits for one
// to end, or for its own context; it holds its place, and its time, until its
// answer's body is read to the end or closed, as a connection would.
//
// The timeout is here rather than the http.Client's so that the wait for a place
// does not eat a call's time, and so that a call that never got one says so
// (ErrNotSent): the client's timeout replaces its transport's error with text.
//
// It bounds calls, not connections, so that it holds over HTTP/2 (many calls on
// one connection) and across the transports a CA rotation builds (each with its
// own pool). Put it outside the metrics and tracing wrappers, so that they time
// Hydra, not the wait. Hydra's work for a call holds one of its few database
// connections (2 per CPU by default), so more calls at once only move the queue
// into Hydra, and each costs both sides buffers and goroutines: 64 registrations
// in flight held 64 connections.
func LimitCalls(rt http.RoundTripper, n int, callTimeout time.Duration) http.RoundTripper {
	l := &limitedCalls{rt: rt, timeout: callTimeout}
	if n > 0 {
		l.places = make(chan struct{}, n)
	}
	return l
}

type limitedCalls struct {
	rt      http.RoundTripper
	places  chan struct{} // nil: no limit
	timeout time.Duration
}

func (l *limitedCalls) RoundTrip(req *http.Request) (*http.Response, error) {
	if l.places != nil {
		select {
		case l.places <- struct{}{}:
		case <-req.Context().Done():
			return nil, fmt.Errorf("%w: all %d places (HYDRA_ADMIN_MAX_CONNS) stayed taken until the call's time ran out: %w",
				ErrNotSent, cap(l.places), req.Context().Err())
		}
	}
	ctx, cancel := req.Context(), context.CancelFunc(func() {})
	if l.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, l.timeout)
	}
	release := sync.OnceFunc(func() {
		cancel()
		if l.places != nil {
			<-l.places
		}
	})
	res, err := l.rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		release()
		return nil, err
	}
	res.Body = &placeHolder{ReadCloser: res.Body, release: release}
	return res, nil
}

// placeHolder gives its call's place back, and ends its time, when the body
// ends or is closed.
type placeHolder struct {
	io.ReadCloser
	release func()
}

func (p *placeHolder) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	if err != nil {
		p.release()
	}
	return n, err
}

func (p *placeHolder) Close() error {
	p.release()
	return p.ReadCloser.Close()
}
