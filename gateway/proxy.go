package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// Handle dispatches the exchange to its pool. It may be called more than
// once per exchange: each call first releases the response of the one
// before (its stream, slot and connection) and banks its usage.
func (p *proxy) Handle(x *Exchange) error {
	x.endResponse()
	x.Calls++
	if x.pin != nil {
		return p.pinned(x)
	}
	if pb := p.gen.batcherFor(x); pb != nil {
		return p.batched(x, pb)
	}
	return p.dispatch(x)
}

// dispatch sends x to its pool: a target per attempt, retries within the
// pool's budget, then its fallbacks in order.
func (p *proxy) dispatch(x *Exchange) error {
	// Every stream asks its upstream for usage (token metrics and, later,
	// limits need it); a client that did not ask does not get the usage
	// chunk.
	x.hideUsage = x.Fields.Stream && !x.Fields.IncludeUsage && x.Op.Operation().StreamUsage
	x.usageBodySet = false
	if p.gen.prefixHints {
		x.rreq.Prefix = router.AppendPrefixHashes(x.prefix[:0], promptOf(x))
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
			t := pool.Pick(&x.rreq, avoid)
			if t == nil {
				if last == nil {
					last = &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1,
						Message: "no healthy backend with spare capacity for model " + pool.Name}
				}
				break
			}
			// Pick holds a concurrency slot on t's upstream for this
			// attempt, and the attempt counts its prompt tokens there; a
			// stream's source keeps both until it is closed.
			t.Upstream.AddTokens(x.rreq.Tokens)
			err := p.attempt(x, t)
			if err != nil || !x.Streaming {
				t.Upstream.Release()
				t.Upstream.AddTokens(-x.rreq.Tokens)
			}
			// Every attempt's outcome reaches the upstream's breaker: a
			// success or a failure, or no verdict (the client left, the
			// route's timeout, a 429, no free connection), which only frees
			// the slot, a half-open probe's included, through Release. A
			// stream's verdict comes at its end (upstreamSource.verdict).
			// Transitions are logged and counted by the generation's
			// OnTransition.
			if err == nil {
				if !x.Streaming {
					t.Upstream.ReportSuccess(time.Now())
				}
				return nil
			}
			if !err.retry {
				return err.e
			}
			if err.unhealthy {
				t.Upstream.ReportFailure(time.Now())
			}
			last = err.e
			avoid = t
		}
		// Fall back to the next pool, in order, before anything reached the
		// client; pools the caller's key may not use are skipped.
		next := nextFallback(x.Pool, fallbackDepth)
		fallbackDepth++
		for next != nil && !x.mayFallBack(p.gen, fallbackDepth-1, next) {
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

// pinned sends the exchange to its one target (an operation on an object
// that backend stores): no retries, no fallbacks.
func (p *proxy) pinned(x *Exchange) error {
	t := x.pin
	if !t.Upstream.TryAcquire() {
		return &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1,
			Message: "backend " + t.Upstream.Name + " has no spare capacity"}
	}
	err := p.attempt(x, t)
	if err != nil || !x.Streaming {
		t.Upstream.Release()
	}
	if err != nil {
		return err.e
	}
	return nil
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
	op := x.Op.Operation()
	switch {
	case op.Model == ModelFromPath:
		// /v2/models/{the target's model}[/versions/{v}][/ready|/infer]
		model := t.Model
		if model == "" {
			model = string(x.RequestModel)
		}
		c.PrepareRequest(req, op.Method, op.Path+model+string(x.pathArg))
	case len(x.pathArg) == 0:
		c.PrepareRequest(req, op.Method, op.Path)
	default:
		c.PrepareRequest(req, op.Method, op.Path+string(x.pathArg))
	}
	p.copyHeaders(x, req)
	if op.Body {
		req.SetBodyRaw(x.upstreamBody(t))
	}
	if x.upResp == nil {
		x.upResp = fasthttp.AcquireResponse()
	}
	resp := x.upResp
	x.tries++
	start := time.Now()
	x.call.Reset()
	if x.ctx.Err() != nil {
		x.call.Cancel() // the client left, or the route's timeout passed, meanwhile
	}
	var err error
	var stream *backends.Stream
	if x.Fields.Stream {
		stream, err = c.DoStream(&x.call, req, resp)
	} else {
		err = c.Do(&x.call, req, resp)
	}
	took := time.Since(start)
	x.upDur += took
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
		if stream != nil {
			stream.Close()
		}
		p.metrics.upstreamResult(x, sc)
		return &attemptError{e: e, retry: true, unhealthy: sc != fasthttp.StatusTooManyRequests}
	}
	p.metrics.upstreamResult(x, sc)
	x.Status = sc
	x.ContentType = append(x.ContentType[:0], resp.Header.ContentType()...)
	forwardRateLimitHeaders(x, &resp.Header)
	if x.Fields.Stream {
		src, derr := decodedStream(stream, resp.Header.ContentEncoding())
		if derr != nil {
			stream.Close()
			return &attemptError{e: &Error{Status: fasthttp.StatusBadGateway, Code: CodeUpstream,
				Message: "backend " + c.Name() + " sent a stream in an unsupported content-encoding", Err: derr}, retry: true, unhealthy: true}
		}
		if sc == fasthttp.StatusOK {
			x.up.open(stream, src, t.Upstream, x.rreq.Tokens)
			x.source, x.Streaming = &x.up, true
			return nil
		}
		// An error answer to a stream request: read it whole (bounded).
		b, rerr := readAllLimited(src, 1<<20)
		stream.Close()
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
	if sc == fasthttp.StatusOK {
		t.Upstream.ObserveTTFT(took) // a whole answer: its first byte came with the rest
	}
	if pt, ct, ok := sse.ScanUsage(x.RespBody); ok {
		x.Usage = Usage{pt, ct, sse.ScanCachedTokens(x.RespBody)}
	} else if x.Op == OpResponses || x.Op == OpResponseGet {
		x.Usage = responsesUsage(x.RespBody)
	}
	if sc == fasthttp.StatusOK {
		x.recordStored(x.RespBody)
		if op.KServe && t.Model != "" && t.Model != string(x.RequestModel) {
			x.publicModelName()
		}
	}
	return nil
}

// responsesUsage reads the Responses API's usage object
// ({"input_tokens","output_tokens"}) of body, or of its "response".
func responsesUsage(body []byte) Usage {
	if r, ok := jsonscan.Lookup(body, "response"); ok {
		body = r
	}
	u, ok := jsonscan.Lookup(body, "usage")
	if !ok || len(u) == 0 || u[0] != '{' {
		return Usage{}
	}
	var out Usage
	if v, ok := jsonscan.Lookup(u, "input_tokens"); ok {
		out.PromptTokens, _ = jsonscan.ParseInt(v)
	}
	if v, ok := jsonscan.Lookup(u, "output_tokens"); ok {
		out.CompletionTokens, _ = jsonscan.ParseInt(v)
	}
	return out
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
	if t.Model != "" && string(x.Fields.Model) != t.Model && x.Op.Operation().Model != ModelFromPath {
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
	case errors.Is(err, backends.ErrCanceled) && x.ctx.Err() == context.DeadlineExceeded:
		return &attemptError{e: &Error{Status: fasthttp.StatusGatewayTimeout, Code: CodeUpstreamTimeout, Message: "the route's timeout passed while backend " + c.Name() + " was answering", Err: err}}
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

// promptOf returns the part of x's body that prefix affinity hashes: the
// raw JSON of its messages (chat), prompt (completions) or input
// (responses, embeddings), whose leading bytes are the same for requests
// that share a system prompt or a conversation's start; nil when none.
func promptOf(x *Exchange) []byte {
	key := "messages"
	switch x.Op {
	case OpCompletions:
		key = "prompt"
	case OpEmbeddings, OpResponses:
		key = "input"
	}
	v, _ := jsonscan.Lookup(x.Body, key)
	return v
}
