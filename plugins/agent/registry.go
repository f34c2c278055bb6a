package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/internal/respool"
	"switchyard/router"
)

// MaxToolsPerServer bounds the tools offered from one server (after its
// allow globs); the rest, by name, are refused. OpenAI takes at most 128
// tools in a request, so a stage picks among them with its own globs.
const MaxToolsPerServer = 256

// Registry is the tool registry of one config generation: the tools of
// the configured MCP servers, as OpenAI function tools, and calls to
// them. It is the value of the service ServiceName; a stage gets it at
// Provision with RegistryOf, an endpoint with RegistryFor. The
// connections behind it are shared resources that outlive the
// generation when the next config keeps their servers.
//
// A Registry is safe for concurrent use. While a config is only
// validated (Env.Live false) it connects nowhere: it has no tools, and
// every call fails with ErrUnavailable.
type Registry struct {
	log     *slog.Logger
	met     *gateway.StageMetrics
	servers []*server // in config order
	byName  map[string]*server

	mu  sync.Mutex // serializes rebuilding set
	set atomic.Pointer[ToolSet]

	unknown *metrics.Counter // calls of names that are no tool
}

// server is one configured MCP server, as this generation configures it.
type server struct {
	name      string
	transport string // "http" or "stdio"
	allow     []router.Glob
	timeout   time.Duration
	maxResult int
	conn      *conn // nil while only validating
	duration  *metrics.PrometheusHistogram

	// view is the server's tools as last built from its connection's
	// state of that version (guarded by the registry's mu).
	view struct {
		version uint64
		tools   []*Tool
		refused []string
	}
}

// Tool is one tool of the registry. It is part of a ToolSet and must not
// be modified.
type Tool struct {
	// Name is the function name the model sees and calls:
	// "<server>__<tool>" (see FunctionName).
	Name string
	// Server is the name of the tool's MCP server (tools.mcp[].name).
	Server string
	// MCPName is the tool's name on its server.
	MCPName string
	// Title and Description are the server's; the function's description
	// is Description, else Title.
	Title, Description string
	// InputSchema is the tool's JSON Schema for its arguments, a JSON
	// object: the function's parameters.
	InputSchema json.RawMessage
	// Annotations are the server's hints (read-only, destructive,
	// idempotent, open-world), or nil. They are hints from the server,
	// not guarantees.
	Annotations *mcp.ToolAnnotations
	// Function is the OpenAI function tool, ready to put in a request's
	// "tools" array: {"type":"function","function":{"name","description",
	// "parameters"}}.
	Function json.RawMessage

	srv       *server
	available bool // offered: its server is up
	calls     [numResults]atomic.Pointer[metrics.Counter]
}

// ToolSet is a snapshot of the registry's tools. It does not change;
// Registry.Tools returns a new one after a server's tools or state
// changed, so a stage may cache what it derives from one (its rendered
// tools array, say) by the ToolSet's pointer.
type ToolSet struct {
	// Tools are the tools offered, sorted by Name: those of the servers
	// that are up, allowed by their server's allow globs, and not refused.
	Tools []*Tool
	// Refused says, per server, which of its tools are not offered and
	// why (a name collision, too many tools, a bad schema).
	Refused map[string][]string

	byName   map[string]*Tool // offered, and the last known tools of servers down
	versions []uint64         // the servers' connection states it was built from
}

// Lookup returns the tool of a function name, offered or of a server
// that is down (the model may call a tool offered before the server
// dropped); nil when there is none.
func (s *ToolSet) Lookup(name string) *Tool { return s.byName[name] }

// Offered says whether the tool is offered: its server is up.
func (t *Tool) Offered() bool { return t.available }

// AppendFunctions appends the function tools of the offered tools for
// which match returns true (every one, when match is nil) to dst,
// separated by commas, for the inside of a request's "tools" array.
func (s *ToolSet) AppendFunctions(dst []byte, match func(*Tool) bool) []byte {
	first := true
	for _, t := range s.Tools {
		if match != nil && !match(t) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, t.Function...)
	}
	return dst
}

// Open is the service's Open: the registry of cfg's tools.mcp, its
// connections taken from the resource pool (an unchanged server keeps its
// session) or started now. It waits a little (at most 5s) for new
// servers' first connection, so that a gateway starts with their tools;
// a server not up by then keeps trying in the background, unavailable
// meanwhile.
func Open(env *gateway.Env, cfg *config.Config) (*Registry, error) {
	return open(env, cfg, defaultTiming)
}

func open(env *gateway.Env, cfg *config.Config, tm timing) (*Registry, error) {
	r := &Registry{log: env.Log, met: env.Metrics, byName: map[string]*server{}}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.unknown = new(metrics.Counter) // exported only where tools are configured
	if len(cfg.Tools.MCP) > 0 {
		r.unknown = r.met.Counter(`switchyard_mcp_tool_calls_total{server="",tool="",result="unknown_tool"}`, callsHelp)
	}
	var fresh []*conn
	for i := range cfg.Tools.MCP {
		spec := cfg.Tools.MCP[i]
		p := fmt.Sprintf("tools.mcp[%d]", i)
		s := &server{name: spec.Name, transport: "stdio", timeout: spec.Timeout.D(), maxResult: int(spec.MaxResultSize)}
		if spec.URL != "" {
			s.transport = "http"
		}
		for j, g := range spec.Allow {
			cg, err := router.CompileGlob(g)
			if err != nil {
				return nil, cfg.Errorf(fmt.Sprintf("%s.allow[%d]", p, j), "%v", err)
			}
			s.allow = append(s.allow, cg)
		}
		q := `{server="` + spec.Name + `"}`
		s.duration = r.met.Histogram("switchyard_mcp_tool_call_duration_seconds"+q, "Time of tool calls to an MCP server, by server.", nil)
		gauges := &connGauges{
			up:       r.met.Gauge("switchyard_mcp_server_up"+q, "1 while the gateway's session with the MCP server is up, by server."),
			tools:    r.met.Gauge("switchyard_mcp_server_tools"+q, "Tools the MCP server listed (before allow), by server."),
			connects: r.met.Counter("switchyard_mcp_server_connects_total"+q, "Sessions established with the MCP server, by server."),
		}
		if env.Live {
			cs := connSpecOf(spec, env.ConfigDir)
			key, err := respool.Key("agent.mcp", cs)
			if err != nil {
				return nil, err
			}
			created := false
			c, err := gateway.Resource(env, key, func() (*conn, error) {
				created = true
				return newConn(cs, r.log, tm), nil
			})
			if err != nil {
				return nil, cfg.Errorf(p, "MCP server %q: %v", spec.Name, err)
			}
			c.setGauges(gauges)
			s.conn = c
			if created {
				fresh = append(fresh, c)
			}
		}
		r.servers = append(r.servers, s)
		r.byName[s.name] = s
	}
	if len(fresh) > 0 {
		t := time.NewTimer(tm.startWait)
		defer t.Stop()
	wait:
		for _, c := range fresh {
			select {
			case <-c.first:
			case <-t.C:
				break wait
			}
		}
	}
	return r, nil
}

// connSpecOf is what a server's connection is made from.
func connSpecOf(s config.MCPServer, dir string) connSpec {
	cs := connSpec{Name: s.Name, URL: s.URL, Args: s.Args}
	if s.Command != "" {
		cs.Command = resolveCommand(s.Command, dir)
		cs.Dir = dir
	}
	if len(s.Env) > 0 {
		cs.Env = make(map[string]string, len(s.Env))
		for k, v := range s.Env {
			cs.Env[k] = v.Value()
		}
	}
	if len(s.Headers) > 0 {
		cs.Headers = make(map[string]string, len(s.Headers))
		for k, v := range s.Headers {
			cs.Headers[k] = v.Value()
		}
	}
	return cs
}

// Tools returns the current tool set. It is cheap when nothing changed
// (one atomic load per server), so a stage may call it per request.
func (r *Registry) Tools() *ToolSet {
	if s := r.set.Load(); s != nil && r.fresh(s) {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.set.Load(); s != nil && r.fresh(s) {
		return s
	}
	s := r.build()
	r.set.Store(s)
	return s
}

// Lookup returns the tool of a function name (see ToolSet.Lookup).
func (r *Registry) Lookup(name string) *Tool { return r.Tools().Lookup(name) }

func (r *Registry) fresh(s *ToolSet) bool {
	for i, srv := range r.servers {
		if srv.conn != nil && srv.conn.state.Load().version != s.versions[i] {
			return false
		}
	}
	return true
}

// build makes the tool set from the servers' current states.
func (r *Registry) build() *ToolSet {
	s := &ToolSet{byName: map[string]*Tool{}, versions: make([]uint64, len(r.servers))}
	for i, srv := range r.servers {
		if srv.conn == nil {
			continue
		}
		st := srv.conn.state.Load()
		s.versions[i] = st.version
		if srv.view.version != st.version {
			tools, refused := srv.tools(st)
			if len(refused) > 0 {
				r.log.Warn("MCP server tools refused", "mcp_server", srv.name, "refused", refused)
			}
			srv.view.version, srv.view.tools, srv.view.refused = st.version, tools, refused
		}
		for _, t := range srv.view.tools {
			s.byName[t.Name] = t // unique: server names split one way
			if st.up {
				s.Tools = append(s.Tools, t)
			}
		}
		if len(srv.view.refused) > 0 {
			if s.Refused == nil {
				s.Refused = map[string][]string{}
			}
			s.Refused[srv.name] = srv.view.refused
		}
	}
	sort.Slice(s.Tools, func(i, j int) bool { return s.Tools[i].Name < s.Tools[j].Name })
	return s
}

// tools maps a server's listed tools to registry tools: allowed by its
// globs, named, collisions and extras refused.
func (srv *server) tools(st *connState) (tools []*Tool, refused []string) {
	claims := map[string][]*mcp.Tool{}
	var names []string
	for _, mt := range st.tools {
		if !srv.allows(mt.Name) {
			continue
		}
		n := FunctionName(srv.name, mt.Name)
		if n == "" {
			refused = append(refused, "a tool without a name")
			continue
		}
		if claims[n] == nil {
			names = append(names, n)
		}
		claims[n] = append(claims[n], mt)
	}
	sort.Strings(names)
	for _, n := range names {
		c := claims[n]
		if len(c) > 1 {
			l := make([]string, len(c))
			for i, mt := range c {
				l[i] = strconv.Quote(mt.Name)
			}
			refused = append(refused, fmt.Sprintf("%v: all map to the function name %s", l, n))
			continue
		}
		mt := c[0]
		if len(tools) == MaxToolsPerServer {
			refused = append(refused, fmt.Sprintf("%q: more than %d tools allowed", mt.Name, MaxToolsPerServer))
			continue
		}
		t, err := newTool(srv, n, mt)
		if err != nil {
			refused = append(refused, fmt.Sprintf("%q: %v", mt.Name, err))
			continue
		}
		t.available = st.up
		tools = append(tools, t)
	}
	return tools, refused
}

func (srv *server) allows(name string) bool {
	for i := range srv.allow {
		if srv.allow[i].Match([]byte(name)) {
			return true
		}
	}
	return false
}

// newTool makes the registry tool of a listed tool.
func newTool(srv *server, name string, mt *mcp.Tool) (*Tool, error) {
	schema := json.RawMessage(`{"type":"object","properties":{}}`)
	if mt.InputSchema != nil {
		b, err := json.Marshal(mt.InputSchema)
		if err != nil {
			return nil, fmt.Errorf("its input schema: %v", err)
		}
		if len(b) == 0 || b[0] != '{' {
			return nil, errors.New("its input schema is not a JSON object")
		}
		schema = b
	}
	desc := mt.Description
	if desc == "" {
		desc = mt.Title
	}
	fn, err := json.Marshal(struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description,omitempty"`
			Parameters  json.RawMessage `json:"parameters"`
		} `json:"function"`
	}{Type: "function", Function: struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters"`
	}{name, desc, schema}})
	if err != nil {
		return nil, err
	}
	return &Tool{Name: name, Server: srv.name, MCPName: mt.Name, Title: mt.Title, Description: mt.Description,
		InputSchema: schema, Annotations: mt.Annotations, Function: fn, srv: srv}, nil
}

// Result is what a tool call returned.
type Result struct {
	// Text is the result for the model: the text parts of the MCP
	// content joined by blank lines, other parts described in brackets
	// ("[image: image/png, 5120 bytes]"), at most the server's
	// max_result_size, with a note at the end when it was cut.
	Text string
	// IsError is the MCP isError flag: the tool ran and reports a failure
	// (Text says what). Give it to the model as the tool's answer, so that
	// it can correct itself; it is not a Go error.
	IsError bool
	// Size is the length of the text before truncation.
	Size int
	// Truncated says Text was cut to max_result_size.
	Truncated bool
}

// Call calls the tool of a function name with the arguments the model
// wrote (a JSON object; empty means {}), within the tool's server's
// timeout and ctx. A result (IsError or not) comes with a nil error; an
// error is a *CallError, whose Kind (errors.Is) is one of ErrUnknownTool,
// ErrBadArguments, ErrUnavailable, ErrTimeout, ErrCanceled or ErrFailed,
// and whose message says what failed, for logs and for the model.
//
// A tool call is not retried: tools act, and a call that timed out may
// have run.
func (r *Registry) Call(ctx context.Context, name string, args []byte) (Result, error) {
	t := r.Tools().Lookup(name)
	if t == nil {
		r.unknown.Inc()
		return Result{}, &CallError{Tool: name, Kind: ErrUnknownTool, Err: fmt.Errorf("no tool is named %q", name)}
	}
	res, kind, err := r.call(ctx, t, args)
	t.count(r.met, kind)
	return res, err
}

func (r *Registry) call(ctx context.Context, t *Tool, args []byte) (Result, resultKind, error) {
	srv := t.srv
	fail := func(kind resultKind, sentinel error, err error) (Result, resultKind, error) {
		return Result{}, kind, &CallError{Tool: t.Name, Server: srv.name, Kind: sentinel, Err: err}
	}
	raw, err := CheckArguments(args)
	if err != nil {
		return fail(resBadArguments, ErrBadArguments, err)
	}
	if srv.conn == nil {
		return fail(resUnavailable, ErrUnavailable, fmt.Errorf("server %s is not connected: the config is only being validated", srv.name))
	}
	st := srv.conn.state.Load()
	if !st.up {
		return fail(resUnavailable, ErrUnavailable, unavailable(srv.name, st))
	}
	cctx, cancel := context.WithTimeout(ctx, srv.timeout)
	start := time.Now()
	res, err := st.cs.CallTool(cctx, &mcp.CallToolParams{Name: t.MCPName, Arguments: raw})
	timedOut := cctx.Err() == context.DeadlineExceeded
	cancel()
	srv.duration.UpdateDuration(start)
	if err != nil {
		var werr *jsonrpc.Error
		switch {
		case ctx.Err() == context.Canceled:
			return fail(resCanceled, ErrCanceled, fmt.Errorf("the call to server %s was canceled", srv.name))
		case timedOut || ctx.Err() != nil:
			return fail(resTimeout, ErrTimeout, fmt.Errorf("server %s did not answer within %s", srv.name, min(srv.timeout, time.Since(start)).Round(time.Millisecond)))
		case errors.As(err, &werr):
			return fail(resFailed, ErrFailed, fmt.Errorf("server %s answered an error: %s (code %d)", srv.name, werr.Message, werr.Code))
		case errors.Is(err, mcp.ErrConnectionClosed):
			signal(srv.conn.kick)
			return fail(resUnavailable, ErrUnavailable, fmt.Errorf("server %s: the session dropped: %v", srv.name, err))
		default:
			signal(srv.conn.kick) // is the session still there?
			return fail(resFailed, ErrFailed, fmt.Errorf("calling server %s: %v", srv.name, err))
		}
	}
	text := renderContent(nil, res)
	size := len(text)
	text, cut := truncate(text, srv.maxResult)
	kind := resOK
	if res.IsError {
		kind = resToolError
	}
	return Result{Text: string(text), IsError: res.IsError, Size: size, Truncated: cut}, kind, nil
}

// unavailable says why a server is down.
func unavailable(name string, st *connState) error {
	if st.err == errNotYet {
		return fmt.Errorf("server %s is unavailable: still connecting", name)
	}
	return fmt.Errorf("server %s is unavailable since %s (%d failed attempts to reconnect): %v",
		name, st.since.UTC().Format(time.RFC3339), st.failures, st.err)
}

// Call errors, the kinds of a *CallError (errors.Is).
var (
	ErrUnknownTool  = errors.New("unknown tool")
	ErrBadArguments = errors.New("malformed arguments")
	ErrUnavailable  = errors.New("tool server unavailable")
	ErrTimeout      = errors.New("tool call timed out")
	ErrCanceled     = errors.New("tool call canceled")
	ErrFailed       = errors.New("tool call failed")
)

// CallError is a tool call that did not give a result.
type CallError struct {
	Tool   string // the function name called
	Server string // its server, "" for an unknown tool
	Kind   error  // ErrUnknownTool, ErrBadArguments, ...
	Err    error  // what happened
}

func (e *CallError) Error() string {
	return "tool " + e.Tool + ": " + e.Kind.Error() + ": " + e.Err.Error()
}

// Unwrap gives the kind and the cause to errors.Is and errors.As.
func (e *CallError) Unwrap() []error { return []error{e.Kind, e.Err} }

// Reason is the kind as a short label: unknown_tool, bad_arguments,
// unavailable, timeout, canceled or failed (as in the calls metric).
func (e *CallError) Reason() string {
	for k, s := range kindErrors {
		if s == e.Kind {
			return resultNames[k]
		}
	}
	return "failed"
}

// resultKind is a call's outcome, the metric's result label.
type resultKind int

const (
	resOK resultKind = iota
	resToolError
	resBadArguments
	resUnavailable
	resTimeout
	resCanceled
	resFailed
	numResults
)

var resultNames = [numResults]string{"ok", "tool_error", "bad_arguments", "unavailable", "timeout", "canceled", "failed"}

var kindErrors = map[resultKind]error{
	resBadArguments: ErrBadArguments, resUnavailable: ErrUnavailable, resTimeout: ErrTimeout,
	resCanceled: ErrCanceled, resFailed: ErrFailed,
}

const callsHelp = "Tool calls through the registry, by server, tool (function name) and result: ok, tool_error (isError), bad_arguments, unavailable, timeout, canceled, failed, unknown_tool."

// count adds a call to the tool's series of its result, registered on
// first use (the tool label takes only tools the registry offers).
func (t *Tool) count(m *gateway.StageMetrics, k resultKind) {
	c := t.calls[k].Load()
	if c == nil {
		c = m.Counter(`switchyard_mcp_tool_calls_total{server="`+t.Server+`",tool="`+t.Name+`",result="`+resultNames[k]+`"}`, callsHelp)
		t.calls[k].Store(c)
	}
	c.Inc()
}

// ServerStatus is the state of one MCP server, for the admin API.
type ServerStatus struct {
	Name      string    `json:"name"`
	Transport string    `json:"transport"`          // http or stdio
	Protocol  string    `json:"protocol,omitempty"` // the MCP version negotiated
	Up        bool      `json:"up"`
	Since     time.Time `json:"since,omitzero"` // when it went up or down
	Error     string    `json:"error,omitempty"`
	Failures  int       `json:"failures,omitempty"` // failed attempts in a row
	PID       int       `json:"pid,omitempty"`      // a stdio server's process
	Listed    int       `json:"listed"`             // tools the server lists
	Offered   []string  `json:"offered"`            // function names offered
	Refused   []string  `json:"refused,omitempty"`
}

// Servers returns the state of every server, in config order.
func (r *Registry) Servers() []ServerStatus {
	set := r.Tools()
	out := make([]ServerStatus, 0, len(r.servers))
	for _, srv := range r.servers {
		s := ServerStatus{Name: srv.name, Transport: srv.transport, Offered: []string{}, Refused: set.Refused[srv.name]}
		if srv.conn == nil {
			s.Error = "not connected: the config is only being validated"
			out = append(out, s)
			continue
		}
		st := srv.conn.state.Load()
		s.Up, s.Since, s.Failures, s.PID, s.Listed, s.Protocol = st.up, st.since, st.failures, st.pid, len(st.tools), st.protocol
		if !st.up && st.err != nil {
			s.Error = st.err.Error()
		}
		for _, t := range set.Tools {
			if t.srv == srv {
				s.Offered = append(s.Offered, t.Name)
			}
		}
		out = append(out, s)
	}
	return out
}

// Wait waits until every server has ended its first attempt to connect
// (up or failed), or ctx ends; for tests and tools that need the first
// tool lists.
func (r *Registry) Wait(ctx context.Context) error {
	for _, srv := range r.servers {
		if srv.conn == nil {
			continue
		}
		select {
		case <-srv.conn.first:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
