package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/backends"
	"switchyard/internal/jsonscan"
	"switchyard/internal/limit"
	"switchyard/internal/shed"
	"switchyard/router"
)

// Principal is the authenticated caller of an exchange.
type Principal struct {
	KeyID  string
	Tenant string
	// Metadata is the key's free-form labels (keys[].metadata).
	Metadata map[string]string

	models     []router.Glob   // allowed model globs; empty = all
	tenant     *tenant         // nil without a tenants entry
	class      shed.Class      // priority class when pools are full
	budget     budget          // the key's own
	byPool     [][]limit.Check // by pool index: the limits that apply there
	softWarned atomic.Int64    // start (unix) of the budget period last warned about
}

// Priority is the principal's priority class: critical, standard or
// sheddable.
func (p *Principal) Priority() string { return className(p.class) }

// Header is one header to add.
type Header struct{ Key, Value string }

// Exchange is the state of one request through the gateway. It is pooled:
// whoever acquires it releases it exactly once, and nothing may keep it, or
// a slice borrowed from it, after that. All byte slices here are owned by
// the exchange (copied out of the fasthttp RequestCtx), so an exchange
// outlives its handler while a stream is relayed.
//
// The response is a value on the exchange: a status and a buffered body, or
// an EventSource that the relay reads for a streaming client. The chain's
// last handler dispatches to a model pool and leaves its answer there; it
// may be called more than once (an agent's tool loop): each call releases
// what the previous response held and adds its usage to the total.
type Exchange struct {
	ctx *exchangeContext

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

	// The response, once known: status, content type and body for a
	// buffered response; Streaming with an event source for a stream.
	Status      int
	ContentType []byte
	RespBody    []byte
	Backend     string // name of the backend that answered
	Streaming   bool

	// Usage of the latest model call, as its upstream reported it (for a
	// stream: known once the stream has been read).
	Usage Usage
	// Calls counts the model calls dispatched so far.
	Calls int

	adm exchangeAdmission // what admission took, given back at the end

	gen        *Generation
	srv        *Server
	source     EventSource // the streamed response, while one is open
	up         upstreamSource
	relay      relay
	doneUsage  Usage // usage of the calls before the latest
	defers     []func(*Exchange)
	upBody     []byte
	reqHeader  *fasthttp.RequestHeader  // valid only while the handler runs
	resHeader  *fasthttp.ResponseHeader // the client's response headers, likewise
	header     headerList               // the request headers of a Server.Do request
	pathArg    []byte                   // the id segment of an operation's path
	pin        *router.Target           // the one target a stored object's operation must use
	stopLink   func() bool              // unlinks a Server.Do caller's context
	observers  []StreamObserver
	upReq      *fasthttp.Request
	upResp     *fasthttp.Response
	call       backends.Call
	client     net.Conn // the client's connection, while the disconnect watcher holds the exchange
	watchShard uint32
	watched    bool
	upStart    time.Time
	upDur      time.Duration // time spent waiting on upstreams
	target     *router.Target
	rreq       router.Request
	prefix     [router.MaxPrefixBlocks]uint64 // rreq.Prefix's storage
	meta       jsonscan.MetadataView
	tmp        []byte
	writeFn    func(w *bufio.Writer)
	tries      int
	inBatch    bool   // the exchange of a batch (batching.go), not a client's
	batchMask  uint64 // its callers' usable fallbacks, by index

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

var watchSeq atomic.Uint32

func acquireExchange() *Exchange {
	if v := exchangePool.Get(); v != nil {
		return v.(*Exchange)
	}
	x := &Exchange{watchShard: watchSeq.Add(1) % watchShards}
	x.up.x = x
	x.writeFn = x.writeStream
	x.ctx = &exchangeContext{x: x}
	return x
}

// maxPooledBuf is the largest buffer kept when an exchange is pooled; bigger
// ones are dropped so that one huge request does not pin memory.
const maxPooledBuf = 256 << 10

func releaseExchange(x *Exchange) {
	x.ctx.cancel(context.Canceled)
	x.endRelay(context.Canceled) // closes a source still open, too
	if x.upReq != nil {
		fasthttp.ReleaseRequest(x.upReq)
	}
	if x.upResp != nil {
		fasthttp.ReleaseResponse(x.upResp)
	}
	ctx := x.ctx
	if ctx.reusable() {
		ctx.reset()
	} else {
		ctx = &exchangeContext{x: x} // someone may still hold the old one
	}
	r := x.relay
	for i := range r.obsBuf {
		r.obsBuf[i] = trimBuf(r.obsBuf[i])
	}
	clear(x.defers)
	*x = Exchange{
		ctx:                   ctx,
		Body:                  trimBuf(x.Body),
		RequestID:             trimBuf(x.RequestID),
		RequestModel:          trimBuf(x.RequestModel),
		pathArg:               trimBuf(x.pathArg),
		header:                x.header[:0],
		UpstreamHeaders:       x.UpstreamHeaders[:0],
		UpstreamRemoveHeaders: x.UpstreamRemoveHeaders[:0],
		ResponseHeaders:       x.ResponseHeaders[:0],
		ResponseRemoveHeaders: x.ResponseRemoveHeaders[:0],
		ContentType:           trimBuf(x.ContentType),
		RespBody:              trimBuf(x.RespBody),
		observers:             x.observers[:0],
		defers:                x.defers[:0],
		tmp:                   trimBuf(x.tmp),
		upBody:                trimBuf(x.upBody),
		usageBody:             trimBuf(x.usageBody),
		upModel:               trimBuf(x.upModel),
		rateLimitKeys:         x.rateLimitKeys[:0],
		up:                    upstreamSource{x: x, events: x.up.events},
		relay:                 relay{out: trimBuf(r.out), obsBuf: r.obsBuf[:0], split: trimBuf(r.split)},
		writeFn:               x.writeFn,
		watchShard:            x.watchShard,
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
// behalf and for the waits it does (a policy evaluation, a limiter or batch
// queue, a review hold). It is made when the request is accepted, bounded by
// the route's timeout, and cancelled when the client disconnects (cause
// ErrClientGone, noticed within about 100 ms) or the exchange ends. Upstream
// calls are cancelled with it.
func (x *Exchange) Context() context.Context { return x.ctx }

// Defer registers fn to run when the exchange ends: after the last byte of a
// streamed response, or once a buffered one is written, in every ending
// (clean, upstream failure, client gone, panic), exactly once. Deferred
// functions run last-registered first. fn gets the exchange, which it must
// not keep.
func (x *Exchange) Defer(fn func(*Exchange)) { x.defers = append(x.defers, fn) }

// runDefers runs the deferred functions, each once, a panic in one logged.
func (x *Exchange) runDefers() {
	for len(x.defers) > 0 {
		fn := x.defers[len(x.defers)-1]
		x.defers = x.defers[:len(x.defers)-1]
		x.safeDefer(fn)
	}
}

func (x *Exchange) safeDefer(fn func(*Exchange)) {
	defer func() {
		if p := recover(); p != nil && x.srv != nil {
			x.srv.log.Error("panic in a function deferred to the end of an exchange", "request_id", string(x.RequestID), "panic", fmt.Sprint(p))
		}
	}()
	fn(x)
}

// Header returns a request header of the client's request. It is valid only
// while the chain runs (not in stream observers or deferred functions).
func (x *Exchange) Header(key string) []byte {
	if x.reqHeader == nil {
		return x.header.Peek(key)
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
// Observers run in the order registered, each seeing what the one before it
// emitted.
func (x *Exchange) ObserveStream(o StreamObserver) { x.observers = append(x.observers, o) }

// Respond short-circuits the exchange with a buffered response, releasing a
// response that was there before (a streamed one included).
func (x *Exchange) Respond(status int, contentType string, body []byte) {
	x.endResponse()
	x.Status = status
	x.ContentType = append(x.ContentType[:0], contentType...)
	x.RespBody = append(x.RespBody[:0], body...)
}

// RespondStream answers the exchange with a stream: a replay of a stored
// answer (Replay), text a stage produces (NewSynth), or any EventSource. It
// is sent with the stream headers, never compressed, and counted as a
// stream; the exchange closes src when the stream ends. A response that was
// there before is released.
func (x *Exchange) RespondStream(src EventSource) {
	x.endResponse()
	x.Status = fasthttp.StatusOK
	x.ContentType = append(x.ContentType[:0], "text/event-stream"...)
	x.source, x.Streaming = src, true
}

// Source returns the streamed response's event source, or nil. A stage may
// read it to its end inside Handle (an agent reading a step) instead of
// letting it flow to the client; the usage it carries is then in x.Usage.
// Reading it bypasses the stream observers.
func (x *Exchange) Source() EventSource { return x.source }

// TotalUsage is the usage over every model call of the exchange so far.
func (x *Exchange) TotalUsage() Usage { return x.doneUsage.Add(x.Usage) }

// endResponse releases the current response (its stream, its concurrency
// slot, its upstream connection) and banks its usage, so that the exchange
// can take another one.
func (x *Exchange) endResponse() {
	x.closeSource()
	x.doneUsage = x.doneUsage.Add(x.Usage)
	x.Usage = Usage{}
	x.Status, x.Streaming, x.Backend = 0, false, ""
	x.ContentType, x.RespBody = x.ContentType[:0], x.RespBody[:0]
	x.relay = relay{out: x.relay.out, obsBuf: x.relay.obsBuf, split: x.relay.split}
}

// closeSource closes the streamed response, if one is open.
func (x *Exchange) closeSource() {
	if x.source != nil {
		src := x.source
		x.source = nil
		_ = src.Close()
	}
}

// NewExchange builds a standalone exchange over a copy of body, for testing
// stages and for tools; the server itself takes exchanges from its pool.
func NewExchange(op Op, body []byte) (*Exchange, error) {
	x := &Exchange{Op: op, Start: time.Now()}
	x.up.x = x
	x.writeFn = x.writeStream
	x.ctx = &exchangeContext{x: x}
	x.Body = append([]byte(nil), body...)
	if err := jsonscan.Scan(x.Body, &x.Fields); err != nil {
		return nil, err
	}
	return x, nil
}

// headerList is a small set of request headers (for Server.Do requests),
// looked up by canonical name.
type headerList []Header

// Peek returns the value of the header named key (case-insensitive).
func (h headerList) Peek(key string) []byte {
	for _, kv := range h {
		if strings.EqualFold(kv.Key, key) {
			return []byte(kv.Value)
		}
	}
	return nil
}

// SetPool sends the exchange to the model pool named name instead of the
// one its route chose (the guard's route decision). The key's model
// allow-list applies to it as to a routed pool: a pool the key may not use
// is a 403, a name that is no pool a 500 (the policy is wrong, not the
// request). The pool's targets rewrite the model name upstream as usual.
// Admission has run for the routed pool: its concurrency slot and limits
// stay counted there; spend is priced at the new pool's prices.
func (x *Exchange) SetPool(name string) *Error {
	g := x.gen
	p := g.Router.Pool([]byte(name))
	if p == nil {
		return &Error{Status: 500, Code: CodeInternal, Message: "the route's policy sent the request to a model pool that does not exist"}
	}
	if !x.Principal.allowsPool(g, p) {
		return &Error{Status: 403, Code: CodePermission, Message: "the route's policy sent the request to the model `" + name + "`, which this key may not use"}
	}
	x.Pool = p
	if g.adm != nil {
		x.adm.prices = g.adm.prices[p.Index]
	}
	return nil
}
