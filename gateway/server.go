// Package gateway is Switchyard's hot path: the fasthttp server with the
// OpenAI-compatible endpoints, the pooled per-request Exchange, the stage
// chains compiled once per config generation, the proxying of requests and
// streams to upstream model servers, errors as OpenAI error bodies, metrics,
// the admin API, and the atomic swap of config generations on reload.
package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/gateway/config"
	"switchyard/internal/jsonscan"
	"switchyard/internal/respool"
	"switchyard/internal/spend"
	"switchyard/internal/store"
	"switchyard/router"
)

// Options are the process-level settings of a Server.
type Options struct {
	ConfigPath  string
	Listen      string // overrides the config's listen when set
	AdminListen string // overrides the config's admin.listen when set
	Registry    *Registry
	Log         *slog.Logger
	// Version is the binary's version, for server metadata (GET /v2);
	// empty: "dev".
	Version string
}

// Server is a running gateway. Its configuration lives in the current
// Generation, swapped atomically on reload.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	// resources keeps stage state (limiters, caches, clients) across
	// reloads whose settings did not change; see BuildOptions.Resources.
	resources *respool.Pool
	stored    storedObjects // who made each stored object (Responses API)
	gen       atomic.Pointer[Generation]
	srv       *fasthttp.Server
	admin     *fasthttp.Server
	reloadMu  sync.Mutex

	ctx    context.Context // cancelled by Shutdown; owns the watcher and retirers
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// The durable store and the spend ledger, when the config uses them
	// (nil otherwise), and the store's keys compiled against the current
	// generation. The store is chosen at start; reloads keep it.
	store         store.Store
	ledger        *spend.Ledger
	storeSettings string
	keys          atomic.Pointer[keyring]
	keysMu        sync.Mutex

	watcher  watcher
	idPrefix [8]byte
	idSeq    atomic.Uint64
	maxBody  int
}

// New loads the config at o.ConfigPath and builds the first generation,
// starting embedded simulators and health checks. It does not listen yet.
func New(o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = NewRegistry()
	}
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	if len(cfg.Models) == 0 {
		// Valid as a config (validate accepts it), but a gateway serving it
		// would answer every request 404: an empty or truncated file.
		return nil, fmt.Errorf("%s: the config has no models, so every request would answer 404; refusing to serve it", o.ConfigPath)
	}
	s := &Server{opts: o, log: o.Log, metrics: newMetrics(), resources: respool.New()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	hex.Encode(s.idPrefix[:], rnd[:])
	g, err := Build(cfg, BuildOptions{Registry: o.Registry, Log: o.Log, Metrics: s.metrics, StartSims: true, Resources: s.resources, Dispatcher: s})
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.gen.Store(g)
	if err := s.openStore(cfg); err != nil {
		g.Close()
		s.cancel()
		return nil, err
	}
	s.metrics.reloaded(true, g)
	s.metrics.watchGeneration(s)
	s.metrics.watchAdmission(s)
	s.maxBody = int(cfg.Server.MaxBodySize)
	s.srv = &fasthttp.Server{
		Handler:                       s.Handler,
		Name:                          "switchyard",
		ReadTimeout:                   cfg.Server.ReadTimeout.D(),
		WriteTimeout:                  cfg.Server.WriteTimeout.D(),
		IdleTimeout:                   cfg.Server.IdleTimeout.D(),
		MaxRequestBodySize:            s.maxBody,
		Concurrency:                   cfg.Server.MaxConns,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 false,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		ReadBufferSize:                int(cfg.Server.MaxHeaderSize),
		SecureErrorLogMessage:         true, // fasthttp's errors would quote the request, credentials and all
		// Multipart bodies (the Files API's uploads) are parsed by their
		// endpoint, which answers a malformed one the API's way; parsing
		// every one before the handler would do it twice.
		DisablePreParseMultipartForm: true,
		ErrorHandler:                 s.fasthttpError,
		Logger:                       fasthttpLogger{s.log},
	}
	s.admin = &fasthttp.Server{Handler: s.adminHandler, Name: "switchyard-admin", NoDefaultServerHeader: true,
		ReadTimeout: 10 * time.Second, CloseOnShutdown: true, SecureErrorLogMessage: true,
		ErrorHandler: s.fasthttpError, Logger: fasthttpLogger{s.log}}
	s.watcher.init()
	s.wg.Add(1)
	go s.runWatcher()
	if cfg.Server.WatchInterval.D() > 0 {
		s.wg.Add(1)
		go s.watch(cfg.Server.WatchInterval.D())
	}
	if s.store != nil {
		s.wg.Add(1)
		go s.runKeySync(cfg.Store.KeySync.D())
	}
	return s, nil
}

// Current returns the generation now serving.
func (s *Server) Current() *Generation { return s.gen.Load() }

// ListenAddr is the address the gateway listens on: the flag, else the config.
func (s *Server) ListenAddr() string {
	if s.opts.Listen != "" {
		return s.opts.Listen
	}
	return s.gen.Load().Config.Listen
}

// AdminAddr is the admin listener's address, "" when the admin API is off.
func (s *Server) AdminAddr() string {
	if s.opts.AdminListen != "" {
		return s.opts.AdminListen
	}
	return s.gen.Load().Config.Admin.Listen
}

// Serve serves the OpenAI API on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// ServeAdmin serves the admin API on ln until Shutdown.
func (s *Server) ServeAdmin(ln net.Listener) error {
	return s.admin.Serve(ln)
}

// Shutdown stops accepting connections, lets requests and streams in flight
// finish until ctx ends, then stops everything the server owns.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	errs = append(errs, s.admin.ShutdownWithContext(ctx))
	errs = append(errs, s.srv.ShutdownWithContext(ctx))
	s.cancel()
	s.wg.Wait()
	if g := s.gen.Load(); g != nil {
		g.Close()
	}
	s.closeStore()
	return errors.Join(errs...)
}

// Handler is the fasthttp handler of the OpenAI-compatible API.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	if op, arg, ok := lookupOp(ctx.Path()); ok {
		s.serveInference(ctx, op, arg)
		return
	}
	// Every other answer carries a request id too.
	var idBuf [160]byte
	ctx.Response.Header.SetBytesV("X-Request-Id", s.appendRequestID(idBuf[:0], ctx))
	gen := s.gen.Load()
	switch p := ctx.Path(); string(p) {
	case "/v2/health/live", "/v2/health/ready", "/v2", "/v2/":
		s.serveV2(ctx, gen, string(p))
	case "/v1/models":
		if methodAllowed(ctx, "GET, HEAD") {
			s.serveModels(ctx, gen)
		}
	case "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
	case "/readyz":
		s.serveReady(ctx)
	case "/metrics":
		if !*gen.Config.Server.PublicMetrics {
			writeError(ctx, &Error{Status: fasthttp.StatusNotFound, Code: CodeInvalidRequest,
				Message: "unknown path /metrics (metrics are served on the admin listener)"})
			return
		}
		ctx.SetContentType("text/plain; version=0.0.4")
		s.metrics.write(ctx)
	default:
		if e, ok := s.opts.Registry.endpoint(p, false); ok {
			s.serveEndpoint(ctx, gen, e)
			return
		}
		if bytes.HasPrefix(p, []byte("/v2/")) {
			writeKServeError(ctx, &Error{Status: fasthttp.StatusNotFound, Code: CodeNotFound, Message: "unknown path " + string(p)})
			return
		}
		if bytes.HasPrefix(p, []byte("/v1/models/")) {
			if methodAllowed(ctx, "GET, HEAD") {
				s.serveModel(ctx, gen, p[len("/v1/models/"):])
			}
			return
		}
		writeError(ctx, &Error{Status: fasthttp.StatusNotFound, Code: CodeInvalidRequest,
			Message: "unknown path " + string(p)})
	}
}

// serveEndpoint serves a plugin's public endpoint, authenticated as the
// API is.
func (s *Server) serveEndpoint(ctx *fasthttp.RequestCtx, gen *Generation, e Endpoint) {
	p, ok := s.caller(ctx, gen)
	if !ok {
		return
	}
	if !e.allows(ctx.Method()) {
		writeError(ctx, errMethod(ctx, e.Method))
		return
	}
	serveWithGeneration(ctx, gen, e, p)
}

// caller authenticates ctx when keys are in use; on failure it has
// answered 401 and ok is false. Without keys the principal is nil.
func (s *Server) caller(ctx *fasthttp.RequestCtx, gen *Generation) (p *Principal, ok bool) {
	if !s.authRequired(gen) {
		return nil, true
	}
	p, err := s.principal(ctx, gen)
	if err != nil {
		writeError(ctx, asError(err))
		return nil, false
	}
	return p, true
}

// errMethod is the 405 for ctx's method, with the allow header set.
func errMethod(ctx *fasthttp.RequestCtx, allow string) *Error {
	ctx.Response.Header.Set("allow", allow)
	return &Error{Status: fasthttp.StatusMethodNotAllowed, Code: CodeInvalidRequest,
		Message: "method " + string(ctx.Method()) + " not allowed; use " + allow}
}

// methodAllowed answers 405 with an allow header unless ctx's method is GET
// or HEAD.
func methodAllowed(ctx *fasthttp.RequestCtx, allow string) bool {
	if ctx.IsGet() || ctx.IsHead() {
		return true
	}
	writeError(ctx, errMethod(ctx, allow))
	return false
}

// errNoModel is the one answer for a model that does not exist, one the key
// may not use, and one no route serves, as OpenAI words it: a caller learns
// nothing about models it may not use.
func errNoModel(name []byte) *Error {
	return &Error{Status: fasthttp.StatusNotFound, Code: CodeNotFound,
		Message: "The model `" + string(name) + "` does not exist or you do not have access to it."}
}

// serveModel answers GET /v1/models/{model} (model names may contain '/').
func (s *Server) serveModel(ctx *fasthttp.RequestCtx, gen *Generation, name []byte) {
	p, ok := s.caller(ctx, gen)
	if !ok {
		return
	}
	if gen.Router.Pool(name) == nil || (p != nil && !p.allows(name)) {
		writeError(ctx, errNoModel(name))
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(appendModel(nil, name, gen.Built.Unix()))
}

func (s *Server) serveInference(ctx *fasthttp.RequestCtx, op Op, arg []byte) {
	gen := s.gen.Load()
	x := s.begin(gen, op)
	x.reqHeader, x.resHeader = &ctx.Request.Header, &ctx.Response.Header
	if c := ctx.Conn(); watchable(c) {
		x.client = c
		x.watch(true) // until finish: a client that leaves cancels the exchange's context
	}
	s.setRequestID(ctx, x)
	x.pathArg = append(x.pathArg[:0], arg...)

	err := s.authenticate(ctx, x, gen) // first: nothing about the request is told to a caller without a key
	if m := op.Operation().Method; err == nil && string(ctx.Method()) != m {
		err = errMethod(ctx, m)
	}
	if err == nil && op.Operation().Body {
		err = s.readBody(ctx, x, gen)
	}
	if err == nil {
		err = s.route(x, gen, &ctx.Request.Header)
	}
	if err == nil {
		err = s.admit(x, gen)
	}
	if err == nil {
		err = s.runChain(gen, x)
	}
	if err != nil {
		s.fail(ctx, x, err)
		s.finish(x)
		return
	}
	s.respond(ctx, x)
}

// begin takes an exchange for a request of op under gen.
func (s *Server) begin(gen *Generation, op Op) *Exchange {
	gen.acquire()
	x := acquireExchange()
	x.srv, x.gen, x.Op, x.Start = s, gen, op, time.Now()
	return x
}

// runChain runs the route's chain. A panic in a stage fails this request
// with a 500 and a log line carrying the stack; it never takes the process
// down.
func (s *Server) runChain(gen *Generation, x *Exchange) (err error) {
	defer func() {
		if p := recover(); p != nil {
			x.endRelay(errObserverPanic)
			x.endResponse()
			s.log.Error("panic in a request's chain", "request_id", string(x.RequestID), "route", routeName(x.Route),
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = &Error{Status: fasthttp.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
		}
	}()
	return gen.chains[x.Route.Index].Handle(x)
}

// readBody copies the request body (decompressed, bounded) into x.
func (s *Server) readBody(ctx *fasthttp.RequestCtx, x *Exchange, gen *Generation) error {
	body := ctx.Request.Body()
	if len(ctx.Request.Header.ContentEncoding()) > 0 {
		b, err := ctx.Request.BodyUncompressedWithLimit(s.maxBody)
		if err != nil {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				return &Error{Status: fasthttp.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge, Message: "request body exceeds " + strconv.Itoa(s.maxBody) + " bytes once decompressed"}
			}
			return &Error{Status: fasthttp.StatusBadRequest, Code: CodeInvalidRequest, Message: "decoding the " + string(ctx.Request.Header.ContentEncoding()) + " request body", Err: err}
		}
		body = b
	}
	if max := int(gen.Config.Server.MaxBodySize); max > 0 && len(body) > max {
		return &Error{Status: fasthttp.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge, Message: "request body exceeds " + strconv.Itoa(max) + " bytes"}
	}
	x.Body = append(x.Body[:0], body...)
	return nil
}

// route scans x's body and routes it: the route, its deadline, and the pool,
// which the caller's key must be allowed to use. HTTP requests and
// Server.Do share it.
func (s *Server) route(x *Exchange, gen *Generation, header router.HeaderGetter) error {
	op := x.Op.Operation()
	if op.Body {
		if err := jsonscan.Scan(x.Body, &x.Fields); err != nil {
			var se *jsonscan.Error
			if errors.As(err, &se) && se.Duplicate() {
				// The gateway checks one occurrence; an upstream may act on another.
				return &Error{Status: fasthttp.StatusBadRequest, Code: CodeInvalidRequest, Param: se.Field,
					Message: "the request body has the top-level key " + strconv.Quote(se.Field) + " more than once"}
			}
			return &Error{Status: fasthttp.StatusBadRequest, Code: CodeInvalidRequest, Message: "invalid JSON body: " + err.Error()}
		}
		if !op.Streams {
			x.Fields.Stream = false
		}
	}
	switch op.Model {
	case ModelFromBody:
		if !x.Fields.HasModel || len(x.Fields.Model) == 0 {
			return &Error{Status: fasthttp.StatusBadRequest, Code: CodeInvalidRequest, Param: "model", Message: "you must provide a model parameter"}
		}
		x.RequestModel = append(x.RequestModel[:0], x.Fields.Model...)
	case ModelFromStored:
		if err := s.storedObject(x, gen); err != nil {
			return err
		}
	case ModelFromPath:
		name, rest := splitModelPath(x.pathArg)
		x.RequestModel = append(x.RequestModel[:0], name...)
		x.pathArg = x.pathArg[:copy(x.pathArg, rest)]
		if x.Op == OpV2Infer {
			if err := checkV2Infer(x.Body); err != nil {
				return err
			}
		}
	}
	x.meta.Raw = x.Fields.Metadata
	// Hints for balancers: the caller's user id as a session key, and a
	// rough token estimate (4 bytes a token).
	x.rreq = router.Request{Model: x.RequestModel, Header: header, Metadata: &x.meta, PromptBytes: len(x.Body),
		SessionKey: x.Fields.User, Tokens: len(x.Body) / 4}
	if p := x.Principal; p != nil {
		x.rreq.KeyID, x.rreq.Tenant = p.KeyID, p.Tenant
	}
	x.Route = gen.Router.Match(&x.rreq)
	if x.Route == nil {
		return errNoModel(x.RequestModel)
	}
	x.ctx.setDeadline(gen.routeTimeout[x.Route.Index])
	if x.Pool == nil {
		x.Pool = gen.pool(x.Route, x.RequestModel)
	}
	// The key's allow-list applies to the pool that serves, whatever name
	// the client used to reach it (a header route may send it elsewhere);
	// fallbacks the key may not use are skipped at dispatch.
	if x.Pool == nil || !x.Principal.allowsPool(gen, x.Pool) {
		return errNoModel(x.RequestModel)
	}
	return nil
}

// authenticate resolves the bearer key into a principal when keys are in use.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, x *Exchange, gen *Generation) error {
	if !s.authRequired(gen) {
		return nil
	}
	p, err := s.principal(ctx, gen)
	if err != nil {
		return err
	}
	x.Principal = p
	return nil
}

// setRequestID takes a sane client x-request-id or makes one, and returns it.
func (s *Server) setRequestID(ctx *fasthttp.RequestCtx, x *Exchange) {
	x.RequestID = s.appendRequestID(x.RequestID[:0], ctx)
	ctx.Response.Header.SetBytesV("X-Request-Id", x.RequestID)
}

// appendRequestID appends the client's x-request-id when it is sane (at most
// 128 printable bytes), else a new one: the process prefix and a counter.
func (s *Server) appendRequestID(dst []byte, ctx *fasthttp.RequestCtx) []byte {
	if id := ctx.Request.Header.Peek("X-Request-Id"); len(id) > 0 && len(id) <= 128 && printable(id) {
		return append(dst, id...)
	}
	dst = append(dst, s.idPrefix[:]...)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, s.idSeq.Add(1), 36)
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// respond writes the exchange's response: buffered, or a stream whose writer
// then owns the exchange.
func (s *Server) respond(ctx *fasthttp.RequestCtx, x *Exchange) {
	h := &ctx.Response.Header
	if x.Backend != "" {
		h.Set("X-Switchyard-Backend", x.Backend)
	}
	h.Set("X-Switchyard-Route", x.Route.Name)
	for _, k := range x.ResponseRemoveHeaders {
		h.Del(k)
	}
	for _, hd := range x.ResponseHeaders {
		h.Set(hd.Key, hd.Value)
	}
	x.writeRateLimitHeaders(h)
	if x.Streaming && x.source != nil {
		ctx.SetStatusCode(fasthttp.StatusOK)
		h.SetContentType("text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		s.metrics.overhead(x, time.Since(x.Start))
		// The client's request is not ours after the handler. Its
		// connection stays watched (writeStream unwatches it before it
		// returns, and fasthttp reuses the connection only after that).
		x.reqHeader, x.resHeader = nil, nil
		ctx.SetBodyStreamWriter(x.writeFn)
		return
	}
	ctx.SetStatusCode(x.Status)
	if len(x.ContentType) > 0 {
		h.SetContentTypeBytes(x.ContentType)
	} else {
		h.SetContentType("application/json")
	}
	s.writeBody(ctx, x)
	s.finish(x)
}

// fail writes err as an OpenAI error body.
func (s *Server) fail(ctx *fasthttp.RequestCtx, x *Exchange, err error) {
	e := asError(err)
	x.Status = e.Status
	s.metrics.requestError(x, e.Code)
	if e.Status >= 500 {
		s.log.Warn("request failed", "request_id", string(x.RequestID), "status", e.Status, "error", e.Error())
	}
	x.writeRateLimitHeaders(&ctx.Response.Header)
	if x.Op.Operation().KServe {
		writeKServeError(ctx, e)
		return
	}
	writeError(ctx, e)
}

// finish ends the exchange: it stops watching the client, ends a stream
// nobody read (its observers told), runs the deferred functions, records
// the outcome and releases the exchange.
func (s *Server) finish(x *Exchange) {
	x.watch(false)
	if x.stopLink != nil {
		x.stopLink()
	}
	x.endRelay(context.Canceled)
	x.runDefers()
	s.settle(x)
	s.metrics.request(x)
	if x.gen.Config.Log.Requests {
		u := x.TotalUsage()
		s.log.Info("request", "request_id", string(x.RequestID), "op", x.Op.String(), "model", string(x.RequestModel),
			"route", routeName(x.Route), "backend", x.Backend, "status", x.Status, "stream", x.Fields.Stream,
			"duration_ms", float64(time.Since(x.Start).Microseconds())/1000, "prompt_tokens", u.PromptTokens, "completion_tokens", u.CompletionTokens)
	}
	gen := x.gen
	releaseExchange(x)
	gen.release()
}

func routeName(r *router.Route) string {
	if r == nil {
		return ""
	}
	return r.Name
}

func (s *Server) serveModels(ctx *fasthttp.RequestCtx, gen *Generation) {
	ctx.SetContentType("application/json")
	if !s.authRequired(gen) {
		ctx.SetBody(gen.models)
		return
	}
	p, err := s.principal(ctx, gen)
	if err != nil {
		writeError(ctx, asError(err))
		return
	}
	ctx.SetBody(appendModelList(nil, gen.poolName, p, gen.Built.Unix()))
}

func (s *Server) serveReady(ctx *fasthttp.RequestCtx) {
	gen := s.gen.Load()
	now := time.Now()
	ctx.SetContentType("application/json")
	for _, p := range gen.Router.Pools() {
		if !p.Healthy(now) {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString(fmt.Sprintf(`{"status":"unavailable","model":%q}`, p.Name))
			return
		}
	}
	ctx.SetBodyString(`{"status":"ready"}`)
}

// fasthttpError renders fasthttp's own errors (oversized body or head, bad
// request line) as OpenAI error bodies. It never echoes the request: its
// error text can quote the raw request, credentials included.
func (s *Server) fasthttpError(ctx *fasthttp.RequestCtx, err error) {
	ctx.Response.Header.SetBytesV("X-Request-Id", s.appendRequestID(nil, ctx))
	var small *fasthttp.ErrSmallBuffer
	var te interface{ Timeout() bool }
	var e *Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e = &Error{Status: fasthttp.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge, Message: "request body exceeds " + strconv.Itoa(s.maxBody) + " bytes"}
	case errors.As(err, &small):
		e = &Error{Status: fasthttp.StatusRequestHeaderFieldsTooLarge, Code: CodeInvalidRequest,
			Message: "request headers exceed server.max_header_size (" + strconv.Itoa(s.srv.ReadBufferSize) + " bytes)"}
	case errors.As(err, &te) && te.Timeout():
		e = &Error{Status: fasthttp.StatusRequestTimeout, Code: CodeInvalidRequest, Message: "timed out reading the request"}
	default:
		e = &Error{Status: fasthttp.StatusBadRequest, Code: CodeInvalidRequest, Message: "malformed HTTP request"}
	}
	s.metrics.requestError(nil, e.Code)
	writeError(ctx, e)
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}
