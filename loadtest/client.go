package loadtest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// client sends the requests of one run through one fasthttp.HostClient.
type client struct {
	hc      *fasthttp.HostClient
	uris    [numKinds]string // absolute request URIs
	headers [][2]string
	timeout time.Duration
	// windowEnd is the end of the measured sending window (zero: none);
	// successes completed after it are left out of the throughput.
	windowEnd time.Time
}

// maxResponseBody bounds non-streamed response bodies (embeddings of long
// inputs are the largest).
const maxResponseBody = 64 << 20

func newClient(cfg Config) (*client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/v1")
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr += ":443"
		} else {
			addr += ":80"
		}
	}
	c := &client{
		hc: &fasthttp.HostClient{
			Addr:                addr,
			Name:                "switchyard-load",
			IsTLS:               u.Scheme == "https",
			MaxConns:            cfg.MaxInflight,
			MaxConnWaitTimeout:  cfg.Timeout,
			MaxIdleConnDuration: 2 * time.Second,
			MaxResponseBodySize: maxResponseBody,
			ReadBufferSize:      16 << 10,
			// A replayed POST would count one intended request twice.
			RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		},
		timeout: cfg.Timeout,
	}
	for k := range numKinds {
		c.uris[k] = u.Scheme + "://" + u.Host + base + kindPath[k]
	}
	for name, v := range cfg.Headers {
		c.headers = append(c.headers, [2]string{name, v})
	}
	return c, nil
}

// scratch holds the per-request buffers, pooled across requests.
type scratch struct {
	body []byte
	sse  SSEReader
	itl  []time.Duration
	out  outcome
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// maxPooledBody keeps one huge prompt from pinning memory in the pool.
const maxPooledBody = 1 << 20

func putScratch(sc *scratch) {
	if cap(sc.body) > maxPooledBody {
		sc.body = nil
	}
	sc.out = outcome{}
	scratchPool.Put(sc)
}

// do sends one request of kind k with the given body and records its
// outcome in st. start is the moment latency is measured from.
func (c *client) do(ctx context.Context, k kind, body, auth []byte, start time.Time, sc *scratch, st *kindStats) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)

	req.SetRequestURI(c.uris[k])
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if auth != nil {
		req.Header.SetBytesV(fasthttp.HeaderAuthorization, auth)
	}
	for _, h := range c.headers {
		req.Header.Set(h[0], h[1])
	}
	req.SetBodyRaw(body)
	req.SetTimeout(c.timeout)
	stream := k == kindStream
	if stream {
		req.Header.Set(fasthttp.HeaderAccept, "text/event-stream")
		resp.StreamBody = true
	}

	o := &sc.out
	*o = outcome{itl: sc.itl[:0]}
	if err := c.hc.Do(req, resp); err != nil {
		o.err = classify(ctx, err)
		o.latency = time.Since(start)
		if st != nil {
			st.record(o, c.windowEnd)
		}
		return
	}
	o.status = resp.StatusCode()
	o.cache = resp.Header.Peek("X-Switchyard-Cache")
	if stream {
		c.readStream(ctx, resp, start, sc)
		_ = resp.CloseBodyStream()
	} else {
		o.latency = time.Since(start)
		if o.status/100 == 2 {
			o.usage, o.hasUsage = scanUsage(resp.Body())
		}
	}
	if o.err == "" && o.status/100 != 2 {
		o.err = httpReason(o.status)
	}
	sc.itl = o.itl // keep the grown buffer
	if st != nil {
		st.record(o, c.windowEnd)
	}
}

// readStream consumes an SSE answer, timing each token chunk: a chunk with
// text (see hasTokenContent). The finish chunk and the usage chunk are read
// for their usage but are not tokens, so they add no gap to the ITL.
func (c *client) readStream(ctx context.Context, resp *fasthttp.Response, start time.Time, sc *scratch) {
	o := &sc.out
	body := resp.BodyStream()
	if body == nil {
		o.latency = time.Since(start)
		o.err = ErrStreamTruncated
		return
	}
	if o.status/100 != 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(body, maxResponseBody))
		o.latency = time.Since(start)
		return
	}
	// Cancellation of the run interrupts a stream blocked in Read.
	if rc, ok := body.(fasthttp.ReadCloserWithError); ok {
		stop := context.AfterFunc(ctx, func() { _ = rc.CloseWithError(context.Canceled) })
		defer stop()
	}
	sc.sse.Reset(body, 0)
	var prev time.Time
	done := false
	for {
		data, err := sc.sse.Next()
		now := time.Now()
		if err != nil {
			o.latency = now.Sub(start)
			switch {
			case errors.Is(err, io.EOF):
				o.err = ErrStreamTruncated
			default:
				o.err = classify(ctx, err)
			}
			return
		}
		if isDone(data) {
			done = true
			break
		}
		if isErrorEvent(data) {
			o.err = ErrStreamError
			o.latency = now.Sub(start)
			return
		}
		if hasTokenContent(data) {
			if prev.IsZero() {
				o.ttft = now.Sub(start)
			} else {
				o.itl = append(o.itl, now.Sub(prev))
			}
			prev = now
		}
		if u, ok := scanUsage(data); ok {
			o.usage, o.hasUsage = u, true
		}
	}
	o.latency = time.Since(start)
	if !done {
		o.err = ErrStreamTruncated
		return
	}
	// Read to the end of the body (the chunked terminator follows [DONE]),
	// as the official SDKs do, so that the connection is kept alive.
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxResponseBody))
}

// classify maps a transport error to an error reason.
func classify(ctx context.Context, err error) string {
	var ne net.Error
	var oe *net.OpError
	switch {
	case ctx.Err() != nil:
		return ErrCanceled
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, fasthttp.ErrDialTimeout), errors.As(err, &ne) && ne.Timeout():
		return ErrTimeout
	case errors.As(err, &oe) && oe.Op == "dial":
		return ErrConnect
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return ErrDropped
	default:
		return ErrNetwork
	}
}

// httpReasons holds "http_<code>" for every valid status, so recording a
// failed response does not allocate.
var httpReasons = func() (r [600]string) {
	for code := 100; code < 600; code++ {
		r[code] = "http_" + strconv.Itoa(code)
	}
	return r
}()

func httpReason(code int) string {
	if code >= 100 && code < 600 {
		return httpReasons[code]
	}
	return "http_" + strconv.Itoa(code)
}
