package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// timing holds the connection's pauses and bounds; tests shorten them.
type timing struct {
	backoffMin  time.Duration // the first pause before reconnecting
	backoffMax  time.Duration // the longest pause
	connect     time.Duration // bounds connecting and the first listing
	ping        time.Duration // between health checks of an idle session
	pingTimeout time.Duration // bounds a health check
	relist      time.Duration // between listings without a change notification (a safety net)
	startWait   time.Duration // how long a new registry waits for new servers' first attempt
	terminate   time.Duration // a stdio server's grace after its stdin is closed, before SIGTERM
}

var defaultTiming = timing{
	backoffMin:  250 * time.Millisecond,
	backoffMax:  30 * time.Second,
	connect:     30 * time.Second,
	ping:        15 * time.Second,
	pingTimeout: 5 * time.Second,
	relist:      5 * time.Minute,
	startWait:   5 * time.Second,
	terminate:   2 * time.Second,
}

// backoff is the pause after the n-th failure in a row (n from 0, a drop
// of a session that was up): backoffMin doubled n times, capped at
// backoffMax, with jitter (between half and all of it), so that servers
// that went down together are not all retried at the same instant.
func (t timing) backoff(n int) time.Duration {
	d := t.backoffMin
	for i := 0; i < n && d < t.backoffMax; i++ {
		d *= 2
	}
	d = min(d, t.backoffMax)
	return d/2 + rand.N(d/2+1)
}

// maxListedTools bounds what one listing takes from a server (over all
// its pages); the rest are ignored with a warning.
const maxListedTools = 4096

// connSpec is what a connection is made from, and its resource key:
// settings that change it make a new connection. Secret values are in
// it in clear, and the key is their hash (respool.Key).
type connSpec struct {
	Name    string
	URL     string            `json:",omitempty"`
	Command string            `json:",omitempty"` // resolved: a path, or a name looked up in PATH
	Args    []string          `json:",omitempty"`
	Env     map[string]string `json:",omitempty"`
	Headers map[string]string `json:",omitempty"`
	Dir     string            `json:",omitempty"` // the command's working directory
}

// conn is the registry's connection to one MCP server: a shared resource,
// kept across reloads that leave its connSpec unchanged. One goroutine
// (run) owns the session: it connects, lists the tools, keeps the list
// fresh on tools/list_changed, checks the session with pings, and
// reconnects with back-off when it drops. Calls use the session of the
// current state. Close stops run, which closes the session (and stops a
// stdio server's process).
type conn struct {
	spec   connSpec
	log    *slog.Logger
	tm     timing
	client *mcp.Client
	httpT  *http.Transport // url servers

	state   atomic.Pointer[connState]
	refresh chan struct{} // a tools/list_changed: list again
	kick    chan struct{} // a call saw the session fail: check it now
	first   chan struct{} // closed once the first attempt has ended
	gauges  atomic.Pointer[connGauges]

	cancel    context.CancelFunc
	done      chan struct{} // closed when run has returned
	closeOnce sync.Once
}

// connState is one state of a connection, replaced whole on each change.
type connState struct {
	cs       *mcp.ClientSession // nil while down
	up       bool
	tools    []*mcp.Tool // the server's tools as last listed, sorted by name; kept while down
	version  uint64      // differs for every state
	err      error       // why the server is down
	since    time.Time   // when it went up or down
	failures int         // failed attempts in a row
	pid      int         // a stdio server's process while up
	protocol string      // the protocol version negotiated
}

// connGauges are the server's series, set by the connection as its state
// changes; each new generation hands in its own handles (the same series
// in the server's metric set).
type connGauges struct {
	up, tools *metrics.Gauge
	connects  *metrics.Counter
}

// stateVersions numbers the states of every connection.
var stateVersions atomic.Uint64

func newConn(spec connSpec, log *slog.Logger, tm timing) *conn {
	c := &conn{
		spec:    spec,
		log:     log.With("mcp_server", spec.Name),
		tm:      tm,
		refresh: make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		first:   make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.client = mcp.NewClient(&mcp.Implementation{Name: "switchyard", Version: "1"}, &mcp.ClientOptions{
		Logger: c.log,
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			signal(c.refresh)
		},
	})
	if spec.URL != "" {
		c.httpT = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 0, // a tool call may take its whole timeout
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	c.state.Store(&connState{version: stateVersions.Add(1), err: errNotYet, since: time.Now()})
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(ctx)
	return c
}

// errNotYet is the state of a server before its first attempt ended.
var errNotYet = errors.New("connecting")

// signal sends on a channel of capacity 1 without blocking: signals
// coalesce.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Close stops the connection: the session is closed, a stdio server's
// process stopped (stdin closed, then SIGTERM, then SIGKILL), and run has
// returned when Close does.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		<-c.done
		if g := c.gauges.Load(); g != nil {
			g.up.Set(0)
		}
	})
	return nil
}

// setGauges hands in a generation's series and sets them to the state.
func (c *conn) setGauges(g *connGauges) {
	c.gauges.Store(g)
	c.updateGauges(c.state.Load())
}

func (c *conn) updateGauges(st *connState) {
	g := c.gauges.Load()
	if g == nil {
		return
	}
	if st.up {
		g.up.Set(1)
	} else {
		g.up.Set(0)
	}
	g.tools.Set(float64(len(st.tools)))
}

func (c *conn) store(st *connState) {
	st.version = stateVersions.Add(1)
	c.state.Store(st)
	c.updateGauges(st)
}

// run owns the session until ctx ends.
func (c *conn) run(ctx context.Context) {
	defer close(c.done)
	firstDone := false
	markFirst := func() {
		if !firstDone {
			firstDone = true
			close(c.first)
		}
	}
	defer markFirst()
	failures := 0
	for ctx.Err() == nil {
		err := c.attempt(ctx, markFirst)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errDropped) {
			failures = 0 // it was up: the first pause is the shortest
			c.log.Warn("MCP server session ended; reconnecting", "error", err)
		} else {
			failures++
			if failures == 1 || failures%20 == 0 {
				c.log.Warn("MCP server unavailable; retrying", "attempt", failures, "error", err)
			}
		}
		prev := c.state.Load()
		since := prev.since
		if prev.up || prev.err == errNotYet {
			since = time.Now()
		}
		c.store(&connState{tools: prev.tools, err: err, since: since, failures: failures})
		markFirst()
		t := time.NewTimer(c.tm.backoff(max(failures-1, 0)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// errDropped marks the end of a session that was up.
var errDropped = errors.New("session dropped")

// attempt connects, lists the tools and serves the session until it
// ends. Its error wraps errDropped when the session had been up.
func (c *conn) attempt(ctx context.Context, markFirst func()) error {
	cs, cmd, err := c.connect(ctx)
	if err != nil {
		return err
	}
	tools, err := c.list(ctx, cs, c.tm.connect)
	if err != nil {
		c.closeSession(cs, cmd)
		return fmt.Errorf("listing tools: %w", err)
	}
	pid := 0
	if cmd != nil {
		pid = cmd.Process.Pid
	}
	c.store(&connState{cs: cs, up: true, tools: tools, since: time.Now(), pid: pid, protocol: protocolOf(cs)})
	if g := c.gauges.Load(); g != nil {
		g.connects.Inc()
	}
	c.log.Info("MCP server connected", "tools", len(tools), "pid", pid, "protocol", protocolOf(cs))
	markFirst()
	err = c.serve(ctx, cs, cmd)
	return fmt.Errorf("%w: %w", errDropped, err)
}

// serve watches an established session until it ends, relisting the
// tools on change notifications, and every relist interval too (a server
// may not send them, and one sent as a session starts can be lost); it
// closes the session before returning why it ended (nil when ctx ended).
func (c *conn) serve(ctx context.Context, cs *mcp.ClientSession, cmd *exec.Cmd) error {
	ended := make(chan error, 1)
	go func() { ended <- cs.Wait() }()
	waited := false
	defer func() {
		c.closeSession(cs, cmd)
		if !waited {
			<-ended
		}
	}()
	ping := time.NewTimer(c.tm.ping)
	defer ping.Stop()
	relist := time.NewTimer(c.tm.relist)
	defer relist.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-ended:
			waited = true
			if err == nil {
				err = errors.New("closed by the server")
			}
			return fmt.Errorf("session ended: %w", err)
		case <-c.refresh:
			if err := c.relist(ctx, cs); err != nil {
				return err
			}
		case <-relist.C:
			if err := c.relist(ctx, cs); err != nil {
				return err
			}
			relist.Reset(c.tm.relist)
		case <-c.kick:
			if err := c.ping(ctx, cs); err != nil {
				return err
			}
		case <-ping.C:
			if err := c.ping(ctx, cs); err != nil {
				return err
			}
			ping.Reset(c.tm.ping)
		}
	}
}

// relist lists the tools again and stores them if they changed.
func (c *conn) relist(ctx context.Context, cs *mcp.ClientSession) error {
	tools, err := c.list(ctx, cs, c.tm.connect)
	if err != nil {
		return fmt.Errorf("listing tools: %w", err)
	}
	prev := c.state.Load()
	if sameTools(prev.tools, tools) {
		return nil
	}
	c.store(&connState{cs: cs, up: true, tools: tools, since: prev.since, pid: prev.pid, protocol: prev.protocol})
	c.log.Info("MCP server's tools changed", "tools", len(tools))
	return nil
}

// sameTools says whether two listings are the same.
func sameTools(a, b []*mcp.Tool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name {
			return false
		}
		ja, err1 := json.Marshal(a[i])
		jb, err2 := json.Marshal(b[i])
		if err1 != nil || err2 != nil || !bytes.Equal(ja, jb) {
			return false
		}
	}
	return true
}

func protocolOf(cs *mcp.ClientSession) string {
	if r := cs.InitializeResult(); r != nil {
		return r.ProtocolVersion
	}
	return ""
}

func (c *conn) ping(ctx context.Context, cs *mcp.ClientSession) error {
	pctx, cancel := context.WithTimeout(ctx, c.tm.pingTimeout)
	defer cancel()
	if err := cs.Ping(pctx, nil); err != nil && ctx.Err() == nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// closeSession closes a session, which for stdio stops the process
// (stdin closed, then SIGTERM, then SIGKILL) and then what is left of its
// process group, and drops the idle HTTP connections.
func (c *conn) closeSession(cs *mcp.ClientSession, cmd *exec.Cmd) {
	_ = cs.Close()
	if cmd != nil {
		killGroup(cmd)
	}
	if c.httpT != nil {
		c.httpT.CloseIdleConnections()
	}
}

// connect makes a session. For stdio it starts the process; whatever it
// started is stopped again when it fails.
func (c *conn) connect(ctx context.Context) (*mcp.ClientSession, *exec.Cmd, error) {
	cctx, cancel := context.WithTimeout(ctx, c.tm.connect)
	defer cancel()
	ot := &ownedTransport{}
	var cmd *exec.Cmd
	if c.spec.URL != "" {
		ot.t = &mcp.StreamableClientTransport{
			Endpoint:   c.spec.URL,
			HTTPClient: &http.Client{Transport: headerTransport{c.httpT, c.spec.Headers}},
			MaxRetries: 2, // then the session fails, and run reconnects with its back-off
		}
	} else {
		cmd = exec.Command(c.spec.Command, c.spec.Args...)
		cmd.Dir = c.spec.Dir
		cmd.Env = childEnv(c.spec.Env)
		cmd.Stderr = &lineLog{log: c.log}
		cmd.WaitDelay = time.Second // a grandchild holding stderr must not hold up Wait
		setProcAttr(cmd)
		ot.t = &mcp.CommandTransport{Command: cmd, TerminateDuration: c.tm.terminate}
	}
	cs, err := c.client.Connect(cctx, ot, nil)
	if err != nil {
		if ot.conn != nil {
			_ = ot.conn.Close() // idempotent: the SDK may have closed it already
		}
		if cmd != nil {
			killGroup(cmd)
		}
		if c.httpT != nil {
			c.httpT.CloseIdleConnections()
		}
		if ctx.Err() == nil && cctx.Err() != nil {
			err = fmt.Errorf("connecting: no answer within %s", c.tm.connect)
		} else {
			err = fmt.Errorf("connecting: %w", err)
		}
		return nil, nil, err
	}
	return cs, cmd, nil
}

// list lists every tool of the server, page after page, sorted by name.
func (c *conn) list(ctx context.Context, cs *mcp.ClientSession, timeout time.Duration) ([]*mcp.Tool, error) {
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var tools []*mcp.Tool
	for t, err := range cs.Tools(lctx, nil) {
		if err != nil {
			return nil, err
		}
		if len(tools) == maxListedTools {
			c.log.Warn("MCP server lists too many tools; the rest are ignored", "max", maxListedTools)
			break
		}
		tools = append(tools, t)
	}
	sort.Slice(tools, func(i, j int) bool { return tools[i].Name < tools[j].Name })
	return tools, nil
}

// ownedTransport remembers the connection its transport made, so that a
// failed Connect can close it (and stop a process it started). It hands
// the SDK the connection itself: the SDK finds the optional interfaces of
// its own transports' connections by type assertion.
type ownedTransport struct {
	t    mcp.Transport
	conn mcp.Connection
}

func (o *ownedTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := o.t.Connect(ctx)
	o.conn = c
	return c, err
}

// headerTransport adds the configured headers to every request, and
// bounds JSON response bodies (the SDK reads them whole; SSE events are
// bounded by the SDK itself, at 16 MiB each).
type headerTransport struct {
	rt      http.RoundTripper
	headers map[string]string
}

// maxJSONResponse bounds a JSON response from a server.
const maxJSONResponse = 32 << 20

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(h.headers) > 0 {
		r = r.Clone(r.Context())
		for k, v := range h.headers {
			r.Header.Set(k, v)
		}
	}
	resp, err := h.rt.RoundTrip(r)
	if err == nil && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		resp.Body = &limitedBody{ReadCloser: resp.Body, left: maxJSONResponse}
	}
	return resp, err
}

// limitedBody fails a body longer than its limit.
type limitedBody struct {
	io.ReadCloser
	left int64
}

var errResponseTooLarge = fmt.Errorf("the server's response is larger than %d bytes", maxJSONResponse)

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errResponseTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.ReadCloser.Read(p)
	l.left -= int64(n)
	return n, err
}

// inheritedEnv are the gateway's variables a stdio server gets.
var inheritedEnv = []string{"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "TMPDIR"}

// childEnv is a stdio server's environment: the inherited variables, then
// the configured ones.
func childEnv(extra map[string]string) []string {
	env := make([]string, 0, len(inheritedEnv)+len(extra))
	for _, k := range inheritedEnv {
		if _, set := extra[k]; set {
			continue
		}
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	return env
}

// resolveCommand returns the program to run for command: a path with a
// separator is taken relative to dir; a bare name is left for PATH.
func resolveCommand(command, dir string) string {
	if strings.ContainsRune(command, filepath.Separator) && !filepath.IsAbs(command) && dir != "" {
		return filepath.Join(dir, command)
	}
	return command
}

// lineLog writes a stdio server's stderr to the log, a record per line
// (lines longer than maxStderrLine are cut).
type lineLog struct {
	log *slog.Logger
	buf []byte
}

const maxStderrLine = 4 << 10

func (l *lineLog) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxStderrLine - len(l.buf)
			if len(p) > room {
				l.buf = append(l.buf, p[:max(room, 0)]...)
				l.flush()
				p = p[max(room, 0):]
				continue
			}
			l.buf = append(l.buf, p...)
			break
		}
		l.buf = append(l.buf, p[:i]...)
		p = p[i+1:]
		l.flush()
	}
	return n, nil
}

func (l *lineLog) flush() {
	line := bytes.TrimRight(l.buf, "\r")
	if len(line) > maxStderrLine {
		line = line[:maxStderrLine]
	}
	if len(line) > 0 {
		l.log.Info("MCP server stderr", "line", string(line))
	}
	l.buf = l.buf[:0]
}
