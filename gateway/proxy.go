package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/backends"
	"switchyard/internal/jsonscan"
	"switchyard/internal/sse"
	"switchyard/router"
)

// proxy is the terminal handler of every chain: it picks a target in the
// exchange's pool, sends the request upstream, retries and falls back before
// the first byte reaches the client, and leaves a buffered response or an
// open stream on the exchange.
type proxy struct {
	gen     *Generation
	metrics *Metrics
	log     *slog.Logger
}

// maxStreamEvent bounds one SSE event from an upstream.
const maxStreamEvent = 4 << 20

func (p *proxy) Handle(x *Exchange) error {
	if x.Status != 0 {
		return nil // a stage already answered
	}
	var last *Error
	pool := x.Pool
	fallbackDepth := 0
	for pool != nil {
		now := time.Now()
		pool.Retry.Request(now)
		var avoid *router.Target
		for try := 0; try < pool.Attempts; try++ {
			if try > 0 {
				if !pool.Retry.AllowRetry(time.Now()) {
					break
				}
				p.metrics.retry(pool)
			}
			t := pool.Pick(avoid)
			if t == nil {
				if last == nil {
					last = &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1,
						Message: "no healthy backend with spare capacity for model " + pool.Name}
				}
				break
			}
			// Pick holds a concurrency slot on t's upstream for this
			// attempt; a stream keeps it until its last event.
			err := p.attempt(x, t)
			if err == nil && x.Streaming {
				x.slot = t.Upstream
			} else {
				t.Upstream.Release()
			}
			if err == nil {
				t.Upstream.ReportSuccess()
				return nil
			}
			if !err.retry {
				t.Upstream.ReportSuccess() // the upstream answered; the fault is the request's
				return err.e
			}
			if err.unhealthy {
				p.reportFailure(t.Upstream, err.e)
			}
			last = err.e
			avoid = t
		}
		// Fall back to the next pool, in order, before anything reached the client.
		next := nextFallback(x.Pool, fallbackDepth)
		fallbackDepth++
		if next != nil {
			p.metrics.fallback(pool, next)
		}
		pool = next
	}
	if last == nil {
		last = &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1, Message: "no backend available"}
	}
	return last
}

// reportFailure counts a failed attempt against u's health and logs an
// ejection, or an ejection refused because u is a pool's last healthy
// backend.
func (p *proxy) reportFailure(u *router.Upstream, e *Error) {
	switch u.ReportFailure(time.Now()) {
	case router.Ejected:
		p.log.Warn("backend ejected after consecutive failures", "backend", u.Name,
			"failure_threshold", u.FailureThreshold, "cooldown", u.Cooldown, "error", e.Error())
	case router.EjectionRefused:
		p.log.Warn("backend reached its failure threshold but stays in rotation: it is the last healthy backend of a pool",
			"backend", u.Name, "failure_threshold", u.FailureThreshold, "error", e.Error())
	}
}

// nextFallback walks the requested pool's ordered fallbacks.
func nextFallback(p *router.Pool, i int) *router.Pool {
	if i < len(p.Fallbacks) {
		return p.Fallbacks[i]
	}
	return nil
}

type attemptError struct {
	e     *Error
	retry bool
	// unhealthy counts the failure against the upstream's health (not for
	// a 429: a busy server is not a broken one).
	unhealthy bool
}

// attempt sends one try to target t. A nil result means the exchange holds a
// response (buffered, or a stream ready to relay).
func (p *proxy) attempt(x *Exchange, t *router.Target) *attemptError {
	c := p.gen.clients[t.Upstream.Index]
	x.target = t
	if x.upReq == nil {
		x.upReq = fasthttp.AcquireRequest()
	}
	req := x.upReq
	req.Reset()
	c.PrepareRequest(req, fasthttp.MethodPost, x.Op.Path())
	p.copyHeaders(x, req)
	// The body goes upstream untouched but for the model name.
	if t.Model != "" && string(x.Fields.Model) != t.Model {
		x.Scratch = jsonscan.AppendString(x.Scratch[:0], t.Model)
		x.upBody = jsonscan.Set(x.upBody[:0], x.Body, "model", x.Scratch)
		req.SetBodyRaw(x.upBody)
	} else {
		req.SetBodyRaw(x.Body)
	}
	if x.upResp == nil {
		x.upResp = fasthttp.AcquireResponse()
	}
	resp := x.upResp
	x.tries++
	start := time.Now()
	x.call.Reset()
	x.watch(true)
	var err error
	if x.Fields.Stream {
		x.stream, err = c.DoStream(&x.call, req, resp)
	} else {
		err = c.Do(&x.call, req, resp)
	}
	x.watch(false)
	x.upDur += time.Since(start)
	x.upStart = start
	if err != nil {
		return p.transportError(x, c, err)
	}
	x.Backend = c.Name()
	sc := resp.StatusCode()
	if sc == fasthttp.StatusTooManyRequests || sc >= 500 {
		e := upstreamStatusError(c.Name(), resp, x.Fields.Stream)
		x.closeStream()
		p.metrics.upstreamResult(x, sc)
		return &attemptError{e: e, retry: true, unhealthy: sc != fasthttp.StatusTooManyRequests}
	}
	p.metrics.upstreamResult(x, sc)
	x.Status = sc
	x.ContentType = append(x.ContentType[:0], resp.Header.ContentType()...)
	forwardRateLimitHeaders(x, &resp.Header)
	if x.Fields.Stream && sc == fasthttp.StatusOK {
		x.Streaming = true
		return nil
	}
	if x.Fields.Stream {
		// An error answer to a stream request: read it whole (bounded).
		b, rerr := readAllLimited(x.stream, 1<<20)
		x.closeStream()
		if rerr != nil {
			return &attemptError{e: &Error{Status: fasthttp.StatusBadGateway, Code: CodeUpstream, Message: "reading the error answer of backend " + c.Name(), Err: rerr}, retry: true, unhealthy: true}
		}
		x.RespBody = append(x.RespBody[:0], b...)
		return nil
	}
	x.RespBody = append(x.RespBody[:0], resp.Body()...)
	if pt, ct, ok := sse.ScanUsage(x.RespBody); ok {
		x.PromptTokens, x.CompletionTokens = pt, ct
	}
	return nil
}

func (p *proxy) transportError(x *Exchange, c *backends.Client, err error) *attemptError {
	p.metrics.upstreamResult(x, 0)
	switch {
	case errors.Is(err, backends.ErrCanceled):
		// The client is gone: no retry, no fallback; 499 is for the logs and metrics.
		return &attemptError{e: &Error{Status: StatusClientClosed, Code: CodeClientClosed, Message: "the client closed the connection", Err: err}}
	case errors.Is(err, backends.ErrNoFreeConns):
		// A full connection pool is load, not a broken backend.
		return &attemptError{e: &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1, Message: "backend " + c.Name() + " has no free connection", Err: err}, retry: true}
	case errors.Is(err, backends.ErrFirstByteTimeout):
		return &attemptError{e: &Error{Status: fasthttp.StatusGatewayTimeout, Code: CodeUpstreamTimeout, Message: "backend " + c.Name() + " did not answer in time", Err: err}, retry: true, unhealthy: true}
	default:
		return &attemptError{e: &Error{Status: fasthttp.StatusBadGateway, Code: CodeUpstream, Message: "calling backend " + c.Name(), Err: err}, retry: true, unhealthy: true}
	}
}

// upstreamStatusError maps a 429 or 5xx answer of an upstream to the error
// the client gets if no retry or fallback succeeds.
func upstreamStatusError(name string, resp *fasthttp.Response, stream bool) *Error {
	sc := resp.StatusCode()
	var msg []byte
	if !stream {
		msg = resp.Body()
	}
	e := &Error{Status: fasthttp.StatusBadGateway, Code: CodeUpstream, Message: "backend " + name + " answered " + fasthttp.StatusMessage(sc)}
	switch sc {
	case fasthttp.StatusTooManyRequests:
		e.Status, e.Code = sc, CodeRateLimited
		e.Message = "backend " + name + " is rate limiting requests"
	case fasthttp.StatusServiceUnavailable:
		e.Status, e.Code = sc, CodeUnavailable
	case fasthttp.StatusGatewayTimeout:
		e.Status, e.Code = sc, CodeUpstreamTimeout
	}
	if ra := resp.Header.Peek("retry-after"); len(ra) > 0 {
		n, err := fasthttp.ParseUint(ra)
		if err == nil {
			e.RetryAfter = n
		}
	}
	if e.RetryAfter == 0 && (e.Status == fasthttp.StatusTooManyRequests || e.Status == fasthttp.StatusServiceUnavailable) {
		e.RetryAfter = 1
	}
	if len(msg) > 0 && len(msg) < 512 {
		e.Err = errors.New(string(msg))
	}
	return e
}

// forwardRateLimitHeaders passes an upstream's x-ratelimit-* headers (as
// OpenAI and some servers send them) to the client.
func forwardRateLimitHeaders(x *Exchange, h *fasthttp.ResponseHeader) {
	if x.resHeader == nil {
		return
	}
	for k, v := range h.All() {
		if len(k) > len(rateLimitPrefix) && bytes.EqualFold(k[:len(rateLimitPrefix)], rateLimitPrefix) {
			x.resHeader.SetBytesKV(k, v)
		}
	}
}

var rateLimitPrefix = []byte("x-ratelimit-")

// hopHeaders are not forwarded upstream: connection-level headers, the
// client's gateway credentials, and encodings the gateway already undid.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Authorization": true, "Host": true,
	"Content-Length": true, "Content-Encoding": true, "Accept-Encoding": true,
	"Proxy-Authorization": true, "X-Api-Key": true,
}

func (p *proxy) copyHeaders(x *Exchange, req *fasthttp.Request) {
	if h := x.reqHeader; h != nil {
		for k, v := range h.All() {
			if hopHeaders[string(k)] {
				continue
			}
			req.Header.AddBytesKV(k, v)
		}
	}
	req.Header.SetContentType("application/json")
	req.Header.SetBytesV("X-Request-Id", x.RequestID)
	for _, k := range x.UpstreamRemoveHeaders {
		req.Header.Del(k)
	}
	for _, h := range x.UpstreamHeaders {
		req.Header.Set(h.Key, h.Value)
	}
}

func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, limit))
}

// closeStream ends the upstream stream of the exchange, if one is open.
func (x *Exchange) closeStream() {
	if x.stream != nil {
		x.stream.Close()
		x.stream = nil
	}
}

// writeStream relays the upstream stream to the client, event by event,
// flushing whenever no further event has already arrived. It runs after the
// handler returned (fasthttp's stream writer) and owns the exchange until it
// returns: it releases it.
func (x *Exchange) writeStream(w *bufio.Writer) {
	srv := x.srv
	m := srv.metrics
	defer srv.finish(x)
	defer func() {
		// A panic in a stream observer ends this stream, not the process.
		if p := recover(); p != nil {
			srv.log.Error("panic while relaying a stream", "request_id", string(x.RequestID), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			x.Scratch = sse.AppendErrorEvent(x.Scratch[:0], "internal error", "api_error", string(CodeInternal))
			_, _ = w.Write(x.Scratch)
			_ = w.Flush()
			x.closeStream()
		}
	}()
	if x.events == nil {
		x.events = sse.NewReader(x.stream, maxStreamEvent)
	} else {
		x.events.Reset(x.stream)
	}
	r := x.events
	ttftH, itlH := m.streamHistograms(x)
	first := true
	var last time.Time
	for {
		data, raw, err := r.Next()
		if err != nil {
			if err != io.EOF {
				// The upstream died mid-stream: tell the client, then close.
				msg := "the upstream stream from backend " + x.Backend + " ended abnormally: " + err.Error()
				x.Scratch = sse.AppendErrorEvent(x.Scratch[:0], msg, "api_error", string(CodeUpstream))
				_, _ = w.Write(x.Scratch)
				_ = w.Flush()
				m.streamError(x)
			}
			break
		}
		now := time.Now()
		x.stream.Extend(now)
		if first {
			ttftH.Update(now.Sub(x.Start).Seconds())
			first = false
		} else if len(data) > 0 {
			itlH.Update(now.Sub(last).Seconds())
		}
		last = now
		if pt, ct, ok := sse.ScanUsage(data); ok {
			x.PromptTokens, x.CompletionTokens = pt, ct
		}
		out := raw
		if len(x.observers) > 0 && len(data) > 0 && !sse.IsDone(data) {
			d := data
			for _, o := range x.observers {
				d, err = o.OnEvent(x, d)
				if err != nil || d == nil {
					break
				}
			}
			if err != nil {
				e := asError(err)
				x.tmp = sse.AppendErrorEvent(x.tmp[:0], e.Message, errorType(e.Code), string(e.Code))
				_, _ = w.Write(x.tmp)
				_ = w.Flush()
				break
			}
			if d == nil {
				continue
			}
			x.tmp = sse.AppendEvent(x.tmp[:0], d)
			out = x.tmp
		}
		if _, err := w.Write(out); err != nil {
			m.clientGone(x)
			break
		}
		// Flush unless the next event is already here: events that arrived
		// together leave together, and none waits for the upstream.
		if r.Buffered() {
			continue
		}
		if err := w.Flush(); err != nil {
			m.clientGone(x)
			break
		}
	}
	// Closing before the end drops the upstream connection: that is what
	// cancels the generation (and its cost) when the client went away.
	x.closeStream()
}
