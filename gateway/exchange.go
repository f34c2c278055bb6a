package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/backends"
	"switchyard/internal/jsonscan"
	"switchyard/internal/sse"
	"switchyard/router"
)

// Op is the OpenAI operation of an exchange.
type Op uint8

// The operations the gateway proxies.
const (
	OpChat Op = iota
	OpCompletions
	OpEmbeddings
)

var opPaths = [...]string{OpChat: "/v1/chat/completions", OpCompletions: "/v1/completions", OpEmbeddings: "/v1/embeddings"}
var opNames = [...]string{OpChat: "chat", OpCompletions: "completions", OpEmbeddings: "embeddings"}

// Path is the API path of the operation.
func (o Op) Path() string { return opPaths[o] }

func (o Op) String() string { return opNames[o] }

// Principal is the authenticated caller of an exchange.
type Principal struct {
	KeyID  string
	Tenant string
	models []router.Glob // allowed model globs; empty = all
}

// Header is one header to add.
type Header struct{ Key, Value string }

// Exchange is the state of one request through the gateway. It is pooled:
// whoever acquires it releases it exactly once, and nothing may keep it, or
// a slice borrowed from it, after that. All byte slices here are owned by
// the exchange (copied out of the fasthttp RequestCtx), so an exchange
// outlives its handler while a stream is relayed.
type Exchange struct {
	// ctx is made on first use by Context; cancel ends it with the exchange.
	ctx    context.Context
	cancel context.CancelFunc

	Op        Op
	Start     time.Time
	RequestID []byte
	Principal *Principal

	// Body is the request body as it will go upstream; Fields is its scan.
	// Change the body only with SetField or DeleteField, which keep the two
	// in step.
	Body   []byte
	Fields jsonscan.Fields
	// RequestModel is the model name the client asked for (a copy).
	RequestModel []byte

	Route *router.Route
	Pool  *router.Pool

	// Headers to add to the upstream request and to the client response,
	// and header names to remove from them. Stages append to these.
	UpstreamHeaders       []Header
	UpstreamRemoveHeaders []string
	ResponseHeaders       []Header
	ResponseRemoveHeaders []string

	// Response, once known: status, content type and body for a buffered
	// response; or a stream being relayed.
	Status      int
	ContentType []byte
	RespBody    []byte
	RetryAfter  []byte
	Backend     string // name of the backend that answered
	Streaming   bool

	// Usage as reported by the upstream.
	PromptTokens, CompletionTokens int64

	// Scratch is a buffer a stage may use for the duration of one call
	// (for example to return a rewritten stream event).
	Scratch []byte

	gen       *Generation
	srv       *Server
	upBody    []byte
	events    *sse.Reader              // kept across pooling: its buffer is reused
	reqHeader *fasthttp.RequestHeader  // valid only while the handler runs
	resHeader *fasthttp.ResponseHeader // the client's response headers, likewise
	observers []StreamObserver
	upReq     *fasthttp.Request
	upResp    *fasthttp.Response
	stream    *backends.Stream
	src       io.Reader // what the relay reads: stream, or its decoder
	call      backends.Call
	client    net.Conn // the client's connection, while the disconnect watcher holds the exchange
	upStart   time.Time
	upDur     time.Duration // time spent waiting on upstreams
	target    *router.Target
	slot      *router.Upstream // concurrency slot held by a relayed stream
	rreq      router.Request
	meta      jsonscan.MetadataView
	tmp       []byte
	writeFn   func(w *bufio.Writer)
	tries     int

	// hideUsage: the gateway asked the upstream for stream usage the client
	// did not ask for, and drops the usage chunk; usageBody is the body
	// that asks for it.
	hideUsage    bool
	usageBodySet bool
	usageBody    []byte
	upModel      []byte // the target's model name as a JSON string

	// rateLimitKeys are the x-ratelimit-* headers a 429 attempt set on the
	// client response (dropped if a later attempt answers).
	rateLimited   bool
	rateLimitKeys [][]byte
}

var exchangePool sync.Pool

func acquireExchange() *Exchange {
	if v := exchangePool.Get(); v != nil {
		return v.(*Exchange)
	}
	x := &Exchange{}
	x.writeFn = x.writeStream
	return x
}

// maxPooledBuf is the largest buffer kept when an exchange is pooled; bigger
// ones are dropped so that one huge request does not pin memory.
const maxPooledBuf = 256 << 10

func releaseExchange(x *Exchange) {
	if x.cancel != nil {
		x.cancel()
	}
	x.closeStream()
	if x.upReq != nil {
		fasthttp.ReleaseRequest(x.upReq)
	}
	if x.upResp != nil {
		fasthttp.ReleaseResponse(x.upResp)
	}
	*x = Exchange{
		Body:                  trimBuf(x.Body),
		RequestID:             trimBuf(x.RequestID),
		RequestModel:          trimBuf(x.RequestModel),
		UpstreamHeaders:       x.UpstreamHeaders[:0],
		UpstreamRemoveHeaders: x.UpstreamRemoveHeaders[:0],
		ResponseHeaders:       x.ResponseHeaders[:0],
		ResponseRemoveHeaders: x.ResponseRemoveHeaders[:0],
		ContentType:           trimBuf(x.ContentType),
		RespBody:              trimBuf(x.RespBody),
		RetryAfter:            trimBuf(x.RetryAfter),
		Scratch:               trimBuf(x.Scratch),
		observers:             x.observers[:0],
		tmp:                   trimBuf(x.tmp),
		upBody:                trimBuf(x.upBody),
		usageBody:             trimBuf(x.usageBody),
		upModel:               trimBuf(x.upModel),
		rateLimitKeys:         x.rateLimitKeys[:0],
		events:                x.events,
		writeFn:               x.writeFn,
	}
	if x.events != nil {
		x.events.Reset(nil)
	}
	exchangePool.Put(x)
}

func trimBuf(b []byte) []byte {
	if cap(b) > maxPooledBuf {
		return nil
	}
	return b[:0]
}

// Context returns the exchange's context, for the calls a stage makes on its
// behalf (a policy evaluation, a limiter wait, a lookup). It is cancelled
// when the exchange ends. It is made on first use, so exchanges that need
// none pay nothing for it.
func (x *Exchange) Context() context.Context {
	if x.ctx == nil {
		x.ctx, x.cancel = context.WithCancel(context.Background())
	}
	return x.ctx
}

// Header returns a request header of the client's request. It is valid only
// while the chain runs (not in stream observers).
func (x *Exchange) Header(key string) []byte {
	if x.reqHeader == nil {
		return nil
	}
	return x.reqHeader.Peek(key)
}

// SetField sets the top-level JSON field key of the request body to raw
// (raw JSON) and rescans the body.
func (x *Exchange) SetField(key string, raw []byte) error {
	x.tmp = jsonscan.Set(x.tmp[:0], x.Body, key, raw)
	x.Body, x.tmp = x.tmp, x.Body
	return x.rescan()
}

// DeleteField removes the top-level JSON field key of the request body.
func (x *Exchange) DeleteField(key string) error {
	x.tmp = jsonscan.Delete(x.tmp[:0], x.Body, key)
	x.Body, x.tmp = x.tmp, x.Body
	return x.rescan()
}

func (x *Exchange) rescan() error {
	if err := jsonscan.Scan(x.Body, &x.Fields); err != nil {
		return &Error{Status: fasthttp.StatusInternalServerError, Code: CodeInternal, Message: "rewriting the request body", Err: err}
	}
	return nil
}

// ObserveStream registers o to see each event of the response stream.
func (x *Exchange) ObserveStream(o StreamObserver) { x.observers = append(x.observers, o) }

// Respond short-circuits the exchange with a buffered response.
func (x *Exchange) Respond(status int, contentType string, body []byte) {
	x.Status = status
	x.ContentType = append(x.ContentType[:0], contentType...)
	x.RespBody = append(x.RespBody[:0], body...)
	x.Streaming = false
}

// NewExchange builds a standalone exchange over a copy of body, for testing
// stages and for tools; the server itself takes exchanges from its pool.
func NewExchange(op Op, body []byte) (*Exchange, error) {
	x := &Exchange{Op: op, Start: time.Now()}
	x.writeFn = x.writeStream
	x.Body = append([]byte(nil), body...)
	if err := jsonscan.Scan(x.Body, &x.Fields); err != nil {
		return nil, err
	}
	return x, nil
}
