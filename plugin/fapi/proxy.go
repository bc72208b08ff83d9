package fapi

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
)

// wholeAnswer is the most of an answer of unknown length the proxy reads
// before sending it: Hydra's redirects and pages are far smaller.
const wholeAnswer = 32 << 10

// newProxy forwards the browser's requests for Hydra's other public paths to
// Hydra unchanged.
func newProxy(target *url.URL, transport http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.SetXForwarded()
			r.Out.Host = target.Host
		},
		Transport:      transport,
		ModifyResponse: withLength,
		// Without a pool the proxy makes a 32 KiB buffer for every answer:
		// most of what a flow through the edge allocates.
		BufferPool: &copyBuffers{pool: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}},
	}
}

// copyBuffers lends the proxy its copy buffers.
type copyBuffers struct{ pool sync.Pool }

func (b *copyBuffers) Get() []byte  { return *b.pool.Get().(*[]byte) }
func (b *copyBuffers) Put(p []byte) { b.pool.Put(&p) }

// withLength reads a small answer that Hydra sent without a length (its
// redirects and pages come chunked) and gives it one. The reverse proxy
// otherwise flushes such an answer at each write, headers first from a timer,
// as if it were a stream: two or three TLS records and writes where one does.
// Event streams, answers with trailers or without a body, and the rest of a longer answer,
// are passed on as they come.
func withLength(res *http.Response) error {
	if res.ContentLength >= 0 || len(res.Trailer) > 0 || res.Request != nil && res.Request.Method == http.MethodHead ||
		res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified {
		return nil
	}
	if ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); ct == "text/event-stream" {
		return nil
	}
	head, err := io.ReadAll(io.LimitReader(res.Body, wholeAnswer+1))
	if err != nil {
		return err
	}
	if len(head) > wholeAnswer {
		res.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), res.Body), res.Body}
		return nil
	}
	_ = res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(head))
	res.ContentLength = int64(len(head))
	res.TransferEncoding = nil
	res.Header.Set("Content-Length", strconv.Itoa(len(head)))
	return nil
}
