package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
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
	// Every stream asks its upstream for usage (token metrics and, later,
	// limits need it); a client that did not ask does not get the usage
	// chunk.
	x.hideUsage = x.Fields.Stream && !x.Fields.IncludeUsage && (x.Op == OpChat || x.Op == OpCompletions)
	x.usageBodySet = false
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
			t := pool.Pick(&x.rreq, avoid)
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
		// Fall back to the next pool, in order, before anything reached the
		// client; pools the caller's key may not use are skipped.
		next := nextFallback(x.Pool, fallbackDepth)
		fallbackDepth++
		for next != nil && !x.Principal.allowsPool(p.gen, next) {
			next = nextFallback(x.Pool, fallbackDepth)
			fallbackDepth++
		}
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
	req.SetBodyRaw(x.upstreamBody(t))
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
		e := upstreamStatusError(c, resp, x.Fields.Stream)
		if sc == fasthttp.StatusTooManyRequests {
			forwardRateLimitHeaders(x, &resp.Header) // the client may pace itself by them
		}
		x.closeStream()
		p.metrics.upstreamResult(x, sc)
		return &attemptError{e: e, retry: true, unhealthy: sc != fasthttp.StatusTooManyRequests}
	}
	p.metrics.upstreamResult(x, sc)
	x.Status = sc
	x.ContentType = append(x.ContentType[:0], resp.Header.ContentType()...)
	forwardRateLimitHeaders(x, &resp.Header)
	if x.Fields.Stream {
		src, derr := decodedStream(x.stream, resp.Header.ContentEncoding())
		if derr != nil {
			x.closeStream()
			return &attemptError{e: &Error{Status: fasthttp.StatusBadGateway, Code: CodeUpstream,
				Message: "backend " + c.Name() + " sent a stream in an unsupported content-encoding", Err: derr}, retry: true, unhealthy: true}
		}
		x.src = src
		if sc == fasthttp.StatusOK {
			x.Streaming = true
			return nil
		}
		// An error answer to a stream request: read it whole (bounded).
		b, rerr := readAllLimited(x.src, 1<<20)
		x.closeStream()
		if rerr != nil {
			return &attemptError{e: &Error{Status: fasthttp.StatusBadGateway, Code: CodeUpstream, Message: "reading the error answer of backend " + c.Name(), Err: rerr}, retry: true, unhealthy: true}
		}
		x.RespBody = append(x.RespBody[:0], b...)
		return nil
	}
	body := resp.Body()
	if ce := resp.Header.ContentEncoding(); len(ce) > 0 && !bytes.EqualFold(ce, []byte("identity")) {
		// The gateway asked for no encoding; one that came anyway is undone,
		// and writeBody encodes again as the client accepts.
		b, derr := resp.BodyUncompressedWithLimit(maxUpstreamBody)
		if derr != nil {
			return &attemptError{e: &Error{Status: fasthttp.StatusBadGateway, Code: CodeUpstream,
				Message: "backend " + c.Name() + " sent a body in an unsupported or corrupt content-encoding", Err: derr}, retry: true, unhealthy: true}
		}
		body = b
	}
	x.RespBody = append(x.RespBody[:0], body...)
	if pt, ct, ok := sse.ScanUsage(x.RespBody); ok {
		x.PromptTokens, x.CompletionTokens = pt, ct
	}
	return nil
}

// maxUpstreamBody bounds a decompressed upstream body.
const maxUpstreamBody = 64 << 20

// upstreamBody returns the body to send to target t: the exchange's body,
// asking for stream usage when the gateway hides it from the client, and
// with the model name of the target.
func (x *Exchange) upstreamBody(t *router.Target) []byte {
	body := x.Body
	if x.hideUsage {
		if !x.usageBodySet {
			x.usageBody = x.appendWithUsage(x.usageBody[:0], x.Body)
			x.usageBodySet = true
		}
		body = x.usageBody
	}
	if t.Model != "" && string(x.Fields.Model) != t.Model {
		x.upModel = jsonscan.AppendString(x.upModel[:0], t.Model)
		x.upBody = jsonscan.Set(x.upBody[:0], body, "model", x.upModel)
		return x.upBody
	}
	return body
}

// appendWithUsage appends body with stream_options.include_usage set to
// true, keeping the client's other stream options.
func (x *Exchange) appendWithUsage(dst, body []byte) []byte {
	so, ok := jsonscan.Lookup(body, "stream_options")
	if !ok || len(so) == 0 || so[0] != '{' {
		return jsonscan.Set(dst, body, "stream_options", includeUsage)
	}
	x.tmp = jsonscan.Set(x.tmp[:0], so, "include_usage", []byte("true"))
	return jsonscan.Set(dst, body, "stream_options", x.tmp)
}

var includeUsage = []byte(`{"include_usage":true}`)

// decodedStream reads a streamed upstream body through the decoder of its
// content-encoding. Streams are almost never encoded (the gateway asks for
// none), so only gzip and deflate are undone; others are an error.
func decodedStream(r io.Reader, ce []byte) (io.Reader, error) {
	switch {
	case len(ce) == 0 || bytes.EqualFold(ce, []byte("identity")):
		return r, nil
	case bytes.EqualFold(ce, []byte("gzip")):
		return gzip.NewReader(r)
	case bytes.EqualFold(ce, []byte("deflate")):
		return zlib.NewReader(r)
	}
	return nil, fmt.Errorf("content-encoding %q", ce)
}

func (p *proxy) transportError(x *Exchange, c *backends.Client, err error) *attemptError {
	p.metrics.upstreamResult(x, 0)
	switch {
	case errors.Is(err, backends.ErrCanceled):
		// The client is gone: no retry, no fallback; 499 is for the logs and metrics.
		x.Backend = c.Name()
		return &attemptError{e: &Error{Status: StatusClientClosed, Code: CodeClientClosed, Message: "the client closed the connection", Err: err}}
	case errors.Is(err, backends.ErrNoFreeConns):
		// A full connection pool is load, not a broken backend.
		return &attemptError{e: &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1, Message: "backend " + c.Name() + " has no free connection", Err: err}, retry: true}
	case errors.Is(err, backends.ErrFirstByteTimeout):
		return &attemptError{e: &Error{Status: fasthttp.StatusGatewayTimeout, Code: CodeUpstreamTimeout, Message: "backend " + c.Name() + " did not answer before its first_byte timeout", Err: err}, retry: true, unhealthy: true}
	case errors.Is(err, backends.ErrTotalTimeout):
		return &attemptError{e: &Error{Status: fasthttp.StatusGatewayTimeout, Code: CodeUpstreamTimeout, Message: "backend " + c.Name() + " did not answer before its total timeout", Err: err}, retry: true, unhealthy: true}
	case errors.Is(err, backends.ErrConnect):
		return &attemptError{e: &Error{Status: fasthttp.StatusBadGateway, Code: CodeUpstream, Message: "backend " + c.Name() + " could not be reached", Err: err}, retry: true, unhealthy: true}
	default:
		return &attemptError{e: &Error{Status: fasthttp.StatusBadGateway, Code: CodeUpstream, Message: "the connection to backend " + c.Name() + " failed", Err: err}, retry: true, unhealthy: true}
	}
}

// upstreamStatusError maps a 429 or 5xx answer of an upstream to the error
// the client gets if no retry or fallback succeeds: the backend's name and
// status, never its body (which can name internal hosts or echo
// credentials). The body, redacted, goes into Err for the log.
func upstreamStatusError(c *backends.Client, resp *fasthttp.Response, stream bool) *Error {
	sc := resp.StatusCode()
	name := c.Name()
	e := &Error{Status: fasthttp.StatusBadGateway, Code: CodeUpstream, Message: "backend " + name + " answered " + strconv.Itoa(sc) + " " + fasthttp.StatusMessage(sc)}
	if sc == fasthttp.StatusTooManyRequests {
		e.Status, e.Code = sc, CodeRateLimited
		e.Message = "backend " + name + " is rate limiting requests"
		if ra := resp.Header.Peek("retry-after"); len(ra) > 0 {
			if n, err := fasthttp.ParseUint(ra); err == nil {
				e.RetryAfter = n
			}
		}
		if e.RetryAfter == 0 {
			e.RetryAfter = 1
		}
	}
	if !stream {
		if msg := resp.Body(); len(msg) > 0 {
			if len(msg) > 512 {
				msg = msg[:512]
			}
			e.Err = errors.New("upstream body: " + strconv.Quote(string(c.Redact(msg))))
		}
	}
	return e
}

// forwardRateLimitHeaders passes an upstream's x-ratelimit-* headers (as
// OpenAI and some servers send them) to the client.
// Those of an earlier attempt are dropped first, so that a 429 that a retry
// recovered from leaves none of its own behind.
func forwardRateLimitHeaders(x *Exchange, h *fasthttp.ResponseHeader) {
	if x.resHeader == nil {
		return
	}
	if x.rateLimited {
		for _, k := range x.rateLimitKeys {
			x.resHeader.DelBytes(k)
		}
		x.rateLimitKeys = x.rateLimitKeys[:0]
		x.rateLimited = false
	}
	for k, v := range h.All() {
		if len(k) > len(rateLimitPrefix) && bytes.EqualFold(k[:len(rateLimitPrefix)], rateLimitPrefix) {
			x.resHeader.SetBytesKV(k, v)
			if h.StatusCode() == fasthttp.StatusTooManyRequests {
				x.rateLimitKeys = append(x.rateLimitKeys, append([]byte(nil), k...))
				x.rateLimited = true
			}
		}
	}
}

var rateLimitPrefix = []byte("x-ratelimit-")

// hopHeaders are not forwarded upstream: connection-level headers, every
// header a client may carry its gateway key in (authenticate reads
// Authorization and api-key), and encodings the gateway already undid.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Authorization": true, "Host": true,
	"Content-Length": true, "Content-Encoding": true, "Accept-Encoding": true,
	"Proxy-Authorization": true, "X-Api-Key": true, "Api-Key": true,
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
	x.src = nil
}

// writeStream relays the upstream stream to the client, event by event,
// flushing whenever no further event has already arrived. It runs after the
// handler returned (fasthttp's stream writer) and owns the exchange until it
// returns: it releases it. The client's socket stays watched while the
// relay waits on the upstream, so a client that leaves before the first
// token, or in a long gap between events, cancels the generation too.
func (x *Exchange) writeStream(w *bufio.Writer) {
	srv := x.srv
	m := srv.metrics
	defer srv.finish(x)
	defer func() {
		// A panic in a stream observer ends this stream, not the process.
		if p := recover(); p != nil {
			x.watch(false)
			srv.log.Error("panic while relaying a stream", "request_id", string(x.RequestID), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			x.Scratch = sse.AppendErrorEvent(x.Scratch[:0], "internal error", "api_error", string(CodeInternal))
			_, _ = w.Write(x.Scratch)
			_ = w.Flush()
			x.closeStream()
		}
	}()
	if x.events == nil {
		x.events = sse.NewReader(x.src, maxStreamEvent)
	} else {
		x.events.Reset(x.src)
	}
	r := x.events
	ttftH, itlH := m.streamHistograms(x)
	first, sawDone := true, false
	var last time.Time
	x.watch(true)
	for {
		data, raw, err := r.Next()
		if err != nil {
			x.watch(false)
			switch {
			case x.call.Canceled() || errors.Is(err, backends.ErrCanceled):
				x.Status = StatusClientClosed // the watcher found the client gone
				m.clientGone(x)
			case err != io.EOF || (!sawDone && x.Op != OpEmbeddings):
				// The upstream died mid-stream, or closed before [DONE]
				// (a chat or completions stream always ends with it):
				// tell the client, since a bare close looks like success.
				x.abnormalEnd(w, err)
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
		out := raw
		if pt, ct, ok := sse.ScanUsage(data); ok {
			x.PromptTokens, x.CompletionTokens = pt, ct
			if x.hideUsage && usageOnly(data) {
				out = nil // asked for by the gateway, not by the client
			}
		}
		if sse.IsDone(data) {
			sawDone = true
		} else if out != nil && len(x.observers) > 0 && len(data) > 0 {
			d := data
			for _, o := range x.observers {
				d, err = o.OnEvent(x, d)
				if err != nil || d == nil {
					break
				}
			}
			if err != nil {
				x.watch(false)
				e := asError(err)
				x.tmp = sse.AppendErrorEvent(x.tmp[:0], e.Message, errorType(e.Code), string(e.Code))
				_, _ = w.Write(x.tmp)
				_ = w.Flush()
				break
			}
			out = nil
			if d != nil {
				x.tmp = sse.AppendEvent(x.tmp[:0], d)
				out = x.tmp
			}
		}
		if out != nil {
			if _, err := w.Write(out); err != nil {
				x.clientLeft()
				break
			}
		}
		// Flush unless the next event is already here: events that arrived
		// together leave together, and none waits for the upstream.
		if r.Buffered() {
			continue
		}
		if err := w.Flush(); err != nil {
			x.clientLeft()
			break
		}
	}
	x.watch(false)
	// Closing before the end drops the upstream connection: that is what
	// cancels the generation (and its cost) when the client went away.
	x.closeStream()
}

// clientLeft records a client that went away mid-stream.
func (x *Exchange) clientLeft() {
	x.watch(false)
	x.Status = StatusClientClosed
	x.srv.metrics.clientGone(x)
}

// abnormalEnd sends the client an error event for an upstream stream that
// failed or ended early. The client learns the backend and the kind of
// failure; the details go to the log.
func (x *Exchange) abnormalEnd(w *bufio.Writer, err error) {
	reason := "the connection was lost"
	switch {
	case err == io.EOF:
		reason = "it closed before [DONE]"
	case errors.Is(err, backends.ErrIdleTimeout):
		reason = "its idle timeout passed"
	case errors.Is(err, backends.ErrTotalTimeout):
		reason = "its total timeout passed"
	case errors.Is(err, sse.ErrEventTooLarge):
		reason = "an event was too large"
	}
	x.srv.log.Warn("upstream stream ended abnormally", "request_id", string(x.RequestID), "backend", x.Backend, "error", err.Error())
	msg := "the stream from backend " + x.Backend + " ended abnormally: " + reason
	x.Scratch = sse.AppendErrorEvent(x.Scratch[:0], msg, "api_error", string(CodeUpstream))
	_, _ = w.Write(x.Scratch)
	_ = w.Flush()
	x.srv.metrics.streamError(x)
}

// usageOnly reports whether a stream chunk is the usage chunk alone, with
// "choices": [] (as include_usage sends it), rather than a content chunk
// that also carries usage.
func usageOnly(data []byte) bool {
	c, ok := jsonscan.Lookup(data, "choices")
	if !ok {
		return true
	}
	c = bytes.TrimSpace(c)
	return len(c) >= 2 && c[0] == '[' && len(bytes.TrimSpace(c[1:len(c)-1])) == 0
}
