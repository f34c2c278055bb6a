package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/valyala/fasthttp"

	"switchyard/gateway/config"
	"switchyard/internal/limit"
	"switchyard/internal/respool"
	"switchyard/internal/sse"
)

// Handler continues the pipeline for one exchange.
type Handler interface{ Handle(x *Exchange) error }

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(x *Exchange) error

// Handle calls f(x).
func (f HandlerFunc) Handle(x *Exchange) error { return f(x) }

// Stage is one step of a route's chain: defaults, headers, ratelimit, cache,
// guard, retrieval, agent, review... A Stage is built once per config
// generation and shared by all requests, so it must be safe for concurrent
// use, and it never keeps x, or anything borrowed from it, after Handle
// returns. It calls next.Handle(x) to continue, and may call it again (an
// agent's tool loop: each call releases the previous response and adds its
// usage). To short-circuit (a cache hit, a denial) it sets x's response
// with x.Respond, or x.RespondStream for a streaming client, and returns
// nil without calling next. An *Error from downstream is returned
// unchanged.
type Stage interface {
	Handle(x *Exchange, next Handler) error
}

// Provisioner is implemented by stages that need set-up when their
// generation is built: resolving dependencies, precomputing, starting owned
// workers (which Close stops).
type Provisioner interface{ Provision(env *Env) error }

// Validator is implemented by stages whose settings need checks beyond
// strict decoding. Validate is pure and fast.
type Validator interface{ Validate() error }

// Closer is implemented by stages that own resources; Close runs when the
// stage's generation retires, after its last request finished.
type Closer interface{ Close() error }

// StreamObserver sees each event of an exchange's response stream before
// the client does. A stage registers one with x.ObserveStream during
// Handle; observers run in the order registered, each seeing what the one
// before it emitted.
//
// OnEvent gets one event's data (without the "data: " framing; the final
// "[DONE]" included) and appends the events to send in its place to dst,
// framed as AppendEvent frames them: the event itself to pass it on, a
// rewritten one, none (to drop it, or to hold it back: a guard's sliding
// window), or several (held events released together). It returns dst; the
// buffer is the observer's own for this exchange, reused from call to call.
// An error ends the stream: the client gets it as an error event and the
// upstream is cancelled.
//
// OnEnd is called exactly once when the stream ends: cause is nil for a
// clean end, ErrClientGone when the client left (what it appends is then
// dropped), or what went wrong. It appends what it still holds to dst, for
// the client, and returns dst.
type StreamObserver interface {
	OnEvent(x *Exchange, dst, data []byte) ([]byte, error)
	OnEnd(x *Exchange, dst []byte, cause error) []byte
}

// EndStream is the error a stream observer returns from OnEvent to end the
// stream cleanly with Events (framed as AppendEvent frames them; a chunk
// with finish_reason content_filter, the usage chunk, [DONE]) instead of
// an error event. The upstream is dropped, which stops its generation; the
// other observers' OnEnd get the EndStream as cause.
type EndStream struct {
	Events []byte
	Reason string // for logs
}

func (e *EndStream) Error() string { return "stream ended by an observer: " + e.Reason }

// AppendEvent appends data framed as one stream event ("data: " + data +
// "\n\n") to dst, for stream observers.
func AppendEvent(dst, data []byte) []byte { return sse.AppendEvent(dst, data) }

// Env is what a stage may use while it is provisioned.
// Env is what a stage may use while it is provisioned (see resources.go
// and "Keeping state across reloads" in docs/stages.md).
type Env struct {
	Log   *slog.Logger
	Route string // the route the stage belongs to
	Path  string // the YAML path of the stage, for error messages
	// Resources is the generation's lease on the server's resource pool;
	// use it through Resource. Its values outlive the generation when the
	// next one asks for the same keys.
	Resources *respool.Lease
	// Metrics registers the stage's series, at Provision.
	Metrics *StageMetrics
	// Dispatcher calls a model pool from a stage (the semantic cache's
	// embeddings, a judge model) through the same routing, chain and
	// dispatch as a client's request; nil where the generation is built
	// without a server (validation).
	Dispatcher Dispatcher
	// Limiter is the gateway's rate limiter (in process, or Redis shared by
	// replicas, as ratelimit.backend says), for stages that add limits of
	// their own; see Exchange.MergeLimits and RateLimitError.
	Limiter limit.Limiter
	// DataDir is the config's data_dir (resolved), where a stage keeps
	// files that survive restarts (the semantic cache's index).
	DataDir string
	// ConfigDir is the directory of the config file, against which a
	// stage resolves relative paths (the guard's policy directory).
	ConfigDir string
	// Live is false while a config is only validated (`switchyard
	// validate`): then open no files and connect nowhere.
	Live bool

	services map[string]any // the generation's services, see Env.Service

	ctx context.Context // cancelled when the generation closes; see Context
}

// Dispatcher runs a request without HTTP; *Server is one (Server.Do).
type Dispatcher interface {
	Do(ctx context.Context, req *Request) (*Response, error)
}

var _ Dispatcher = (*Server)(nil)

// Endpoint is an HTTP endpoint a plugin adds to the public API (next to the
// operations table's rows) or to the admin API. Public endpoints are
// authenticated like the API (Handle gets the caller's principal, nil when
// no keys are configured); admin endpoints are behind the admin token.
type Endpoint struct {
	Method string // GET, POST, ...; several comma-separated ("GET, DELETE"): Handle tells them apart
	Path   string // exact path, e.g. /v1/files; ending in '/', every path under it (/v1/files/)
	Admin  bool   // served on the admin listener instead
	Handle func(ctx *fasthttp.RequestCtx, p *Principal)
}

// RegisterEndpoint adds an endpoint; a path registered twice panics.
func (r *Registry) RegisterEndpoint(e Endpoint) {
	if r.endpoints == nil {
		r.endpoints = map[string]Endpoint{}
	}
	k := e.key()
	if _, dup := r.endpoints[k]; dup || e.Handle == nil || e.Path == "" {
		panic("gateway: endpoint registered twice or without a handler: " + k)
	}
	if _, _, ok := lookupOp([]byte(e.Path)); ok && !e.Admin {
		panic("gateway: endpoint path taken by an operation: " + e.Path)
	}
	r.endpoints[k] = e
}

// allows reports whether the endpoint takes method.
func (e Endpoint) allows(method []byte) bool {
	for m := range strings.SplitSeq(e.Method, ",") {
		if strings.TrimSpace(m) == string(method) {
			return true
		}
	}
	return false
}

func (e Endpoint) key() string {
	if e.Admin {
		return "admin " + e.Path
	}
	return e.Path
}

// endpoint returns the endpoint registered for path.
func (r *Registry) endpoint(path []byte, admin bool) (Endpoint, bool) {
	if r == nil || len(r.endpoints) == 0 {
		return Endpoint{}, false
	}
	k := string(path)
	if admin {
		k = "admin " + k
	}
	if e, ok := r.endpoints[k]; ok {
		return e, true
	}
	// The longest prefix endpoint ("/v1/files/") that holds the path.
	for i := len(k) - 1; i > 0; i-- {
		if k[i] == '/' {
			if e, ok := r.endpoints[k[:i+1]]; ok && strings.HasSuffix(e.Path, "/") {
				return e, true
			}
		}
	}
	return Endpoint{}, false
}

// Factory makes a zero stage of one kind, into which the stage's YAML
// options are strictly decoded.
type Factory struct {
	Kind string
	Doc  string // one line for `switchyard validate` listings and docs
	New  func() Stage
}

// Registry holds the stage kinds and backend kinds the binary knows. The
// binary fills it explicitly at start-up; it is read-only afterwards.
type Registry struct {
	kinds     map[string]Factory
	backends  map[string]BackendKind
	endpoints map[string]Endpoint
	services  []Service
}

// NewRegistry returns a registry with no stage kinds and the backend kinds
// of the gateway's own protocols: openai (OpenAIBackend) and kserve
// (KServeBackend).
func NewRegistry() *Registry {
	r := &Registry{kinds: map[string]Factory{}, backends: map[string]BackendKind{}}
	r.RegisterBackend(OpenAIBackend)
	r.RegisterBackend(KServeBackend)
	return r
}

// RegisterBackend adds a backend kind; an empty name, a nil Open or a kind
// registered twice panics (a wiring bug).
func (r *Registry) RegisterBackend(k BackendKind) {
	switch {
	case k.Name == "" || k.Open == nil:
		panic("gateway: backend kind without a name or an Open function")
	case r.backends[k.Name].Open != nil:
		panic("gateway: backend kind registered twice: " + k.Name)
	}
	r.backends[k.Name] = k
}

// BackendKinds lists the registered backend kinds, sorted.
func (r *Registry) BackendKinds() []string {
	ks := make([]string, 0, len(r.backends))
	for k := range r.backends {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// openBackend opens config backend i with its kind. Its errors start with
// the backend's "file:line: backends[i]".
func (r *Registry) openBackend(file string, i int, b *config.Backend, env *BackendEnv) (Backend, error) {
	at := config.Error{File: file, Line: b.Line, Path: fmt.Sprintf("backends[%d].kind", i)}
	k, ok := r.backends[b.Kind]
	if !ok {
		at.Msg = fmt.Sprintf("backend kind %q is not registered in this binary (registered: %v)", b.Kind, r.BackendKinds())
		return Backend{}, at
	}
	be, err := k.Open(env, b)
	if err != nil {
		return Backend{}, fmt.Errorf("%s:%d: backends[%d] (%s): %w", file, b.Line, i, b.Name, err)
	}
	return be, nil
}

// Register adds a stage kind; registering a kind twice panics (a wiring bug).
func (r *Registry) Register(f Factory) {
	if _, dup := r.kinds[f.Kind]; dup {
		panic("gateway: stage kind registered twice: " + f.Kind)
	}
	r.kinds[f.Kind] = f
}

// Kinds lists the registered kinds, sorted.
func (r *Registry) Kinds() []string {
	ks := make([]string, 0, len(r.kinds))
	for k := range r.kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// build decodes, provisions and validates one chain entry. Its errors start
// with the entry's "file:line:col: path:", like the config package's.
func (r *Registry) build(file string, ref config.StageRef, env *Env) (Stage, error) {
	at := config.Error{File: file, Line: ref.Line, Column: ref.Column, Path: ref.Path}
	f, ok := r.kinds[ref.Kind]
	if !ok {
		at.Msg = fmt.Sprintf("unknown stage kind %q (known: %v)", ref.Kind, r.Kinds())
		return nil, at
	}
	st := f.New()
	if ref.Options.Kind != 0 {
		if err := config.DecodeStrict(file, ref.Path+"."+ref.Kind, &ref.Options, st); err != nil {
			return nil, err
		}
	}
	if v, ok := st.(Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("%s%w", at, err)
		}
	}
	if p, ok := st.(Provisioner); ok {
		if err := p.Provision(env); err != nil {
			return nil, fmt.Errorf("%sprovisioning %s: %w", at, ref.Kind, err)
		}
		if err := env.Metrics.Err(); err != nil {
			return nil, fmt.Errorf("%sprovisioning %s: %w", at, ref.Kind, err)
		}
	}
	return st, nil
}

// link is one compiled step of a chain: the stage and what follows it.
type link struct {
	stage Stage
	next  Handler
}

func (l *link) Handle(x *Exchange) error { return l.stage.Handle(x, l.next) }

// compileChain folds stages right to left around the terminal handler, once
// per generation; running the chain then allocates nothing.
func compileChain(stages []Stage, terminal Handler) Handler {
	h := terminal
	for i := len(stages) - 1; i >= 0; i-- {
		h = &link{stage: stages[i], next: h}
	}
	return h
}

// WriteError writes err as an OpenAI error body with its status, for
// plugins' endpoints (an *Error keeps its status and code; any other error
// is a 500).
func WriteError(ctx *fasthttp.RequestCtx, err error) { writeError(ctx, asError(err)) }
