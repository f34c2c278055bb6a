// Package backends holds the upstream clients of the gateway: pooled
// keep-alive connections to OpenAI-compatible model servers, the timeouts of
// a call (connect, time to first byte, idle gap between stream events, total)
// and active health checks. Decisions (which target, retry or not) belong to
// package router; this package only does the I/O.
package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/router"
)

// Options configure one upstream client.
type Options struct {
	Name           string
	URL            string // base URL, e.g. http://10.0.0.5:8000 (a trailing /v1 is accepted)
	APIKey         string // sent as "Authorization: Bearer" when set
	MaxConns       int
	ConnectTimeout time.Duration
	FirstByte      time.Duration // until the response headers arrive
	Idle           time.Duration // longest gap between two reads of a streamed body
	Total          time.Duration // whole call, stream included
	MaxRespBody    int           // cap on a buffered (non-streamed) response body
}

// Client calls one upstream server. It is safe for concurrent use.
type Client struct {
	opts     Options
	hc       *fasthttp.HostClient
	hcStream *fasthttp.HostClient
	scheme   string
	host     string
	prefix   string // path prefix before /v1/...
	auth     []byte // "Bearer <key>" or nil
}

// ErrConnect marks errors of establishing a connection (nothing was sent).
var ErrConnect = errors.New("connecting to upstream")

// ErrFirstByteTimeout is returned when no response header arrived in time.
var ErrFirstByteTimeout = errors.New("upstream sent no response before the first-byte timeout")

// New builds a client for o.URL.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("backend %q: parsing url %q: %w", o.Name, o.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("backend %q: url %q: scheme must be http or https", o.Name, o.URL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("backend %q: url %q has no host", o.Name, o.URL)
	}
	host := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			host += ":443"
		} else {
			host += ":80"
		}
	}
	prefix := strings.TrimSuffix(u.Path, "/")
	prefix = strings.TrimSuffix(prefix, "/v1")
	if o.MaxConns <= 0 {
		o.MaxConns = 1024
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 2 * time.Second
	}
	if o.MaxRespBody <= 0 {
		o.MaxRespBody = 64 << 20
	}
	c := &Client{opts: o, scheme: u.Scheme, host: u.Host, prefix: prefix}
	if o.APIKey != "" {
		c.auth = []byte("Bearer " + o.APIKey)
	}
	dial := func(addr string) (net.Conn, error) {
		conn, err := fasthttp.DialTimeout(addr, o.ConnectTimeout)
		if err != nil {
			return nil, fmt.Errorf("%w %s (%s): %v", ErrConnect, o.Name, addr, err)
		}
		return newTrackedConn(conn), nil
	}
	mk := func(stream bool) *fasthttp.HostClient {
		return &fasthttp.HostClient{
			Addr:                          host,
			Name:                          "switchyard",
			IsTLS:                         u.Scheme == "https",
			Dial:                          dial,
			MaxConns:                      o.MaxConns,
			MaxIdleConnDuration:           90 * time.Second,
			MaxResponseBodySize:           o.MaxRespBody,
			StreamResponseBody:            stream,
			DisableHeaderNamesNormalizing: false,
			NoDefaultUserAgentHeader:      true,
			MaxConnWaitTimeout:            o.ConnectTimeout,
			RetryIfErr:                    func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		}
	}
	c.hc = mk(false)
	c.hcStream = mk(true)
	return c, nil
}

// Name is the backend's configured name.
func (c *Client) Name() string { return c.opts.Name }

// Options returns the options the client was built with.
func (c *Client) Options() Options { return c.opts }

// PrepareRequest sets the method, URI, host and authorization of req for a
// call of path (e.g. "/v1/chat/completions") on this upstream.
func (c *Client) PrepareRequest(req *fasthttp.Request, method, path string) {
	req.Header.SetMethod(method)
	uri := req.URI()
	uri.SetScheme(c.scheme)
	uri.SetHost(c.host)
	if c.prefix != "" {
		uri.SetPath(c.prefix + path)
	} else {
		uri.SetPath(path)
	}
	req.Header.SetHost(c.host)
	if c.auth != nil {
		req.Header.SetBytesV(fasthttp.HeaderAuthorization, c.auth)
	} else {
		req.Header.Del(fasthttp.HeaderAuthorization)
	}
}

// Do sends req and waits for the whole response, up to the first-byte
// timeout (a non-streamed completion arrives all at once) and the total
// deadline, whichever is first.
func (c *Client) Do(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	d := c.headerDeadline(c.totalDeadline(deadline))
	err := c.hc.DoDeadline(req, resp, d)
	return c.classify(err)
}

// DoStream sends req and returns when the response headers have arrived; the
// body is then read from resp.BodyStream(), and the caller must close it
// with resp.CloseBodyStream (closing early drops the connection, which
// cancels the upstream's work). Use Stream.Extend to move the read deadline
// forward as events arrive.
func (c *Client) DoStream(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) (Stream, error) {
	deadline = c.totalDeadline(deadline)
	if err := c.hcStream.DoDeadline(req, resp, c.headerDeadline(deadline)); err != nil {
		return Stream{}, c.classify(err)
	}
	s := Stream{idle: c.opts.Idle, deadline: deadline}
	if ta, ok := resp.LocalAddr().(*trackedAddr); ok {
		s.conn = ta.conn
	}
	s.Extend(time.Now())
	return s, nil
}

// totalDeadline caps deadline (zero: none) by the backend's total timeout.
func (c *Client) totalDeadline(deadline time.Time) time.Time {
	if c.opts.Total > 0 {
		if t := time.Now().Add(c.opts.Total); deadline.IsZero() || t.Before(deadline) {
			return t
		}
	}
	return deadline
}

func (c *Client) headerDeadline(deadline time.Time) time.Time {
	if c.opts.FirstByte > 0 {
		if fb := time.Now().Add(c.opts.FirstByte); deadline.IsZero() || fb.Before(deadline) {
			return fb
		}
	}
	if deadline.IsZero() {
		return time.Now().Add(10 * time.Minute)
	}
	return deadline
}

func (c *Client) classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrConnect) {
		return err
	}
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) {
		return fmt.Errorf("backend %s: %w", c.opts.Name, ErrFirstByteTimeout)
	}
	if errors.Is(err, fasthttp.ErrNoFreeConns) || errors.Is(err, fasthttp.ErrConnectionClosed) {
		return fmt.Errorf("backend %s: %w", c.opts.Name, err)
	}
	return fmt.Errorf("backend %s: %w", c.opts.Name, err)
}

// Stream is the handle on a streamed response body's connection.
type Stream struct {
	conn     *trackedConn
	idle     time.Duration
	deadline time.Time
}

// Extend moves the read deadline of the stream's connection to now plus the
// idle timeout (capped by the total deadline). Call it after each event.
func (s Stream) Extend(now time.Time) {
	if s.conn == nil {
		return
	}
	d := s.deadline
	if s.idle > 0 {
		if id := now.Add(s.idle); d.IsZero() || id.Before(d) {
			d = id
		}
	}
	_ = s.conn.Conn.SetReadDeadline(d)
}

// trackedConn wraps an upstream connection so that the gateway can reach the
// connection of a streamed response (through Response.LocalAddr) and move its
// read deadline as events arrive.
type trackedConn struct {
	net.Conn
	addr trackedAddr
}

type trackedAddr struct {
	net.Addr
	conn *trackedConn
}

func newTrackedConn(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c}
	tc.addr = trackedAddr{Addr: c.LocalAddr(), conn: tc}
	return tc
}

func (c *trackedConn) LocalAddr() net.Addr { return &c.addr }

// HealthChecker polls each upstream's health path and reports the result to
// its router.Upstream. It owns one goroutine per checked upstream, stopped by
// Close.
type HealthChecker struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Check describes one active health check.
type Check struct {
	Client   *Client
	Upstream *router.Upstream
	Path     string
	Interval time.Duration
	Timeout  time.Duration
}

// StartHealthChecks starts the checks; a nil or empty list starts nothing.
func StartHealthChecks(log *slog.Logger, checks []Check) *HealthChecker {
	ctx, cancel := context.WithCancel(context.Background())
	h := &HealthChecker{cancel: cancel}
	for _, ch := range checks {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.run(ctx, log, ch)
		}()
	}
	return h
}

func (h *HealthChecker) run(ctx context.Context, log *slog.Logger, ch Check) {
	t := time.NewTimer(0)
	defer t.Stop()
	last := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, why := ch.Client.probe(ch.Path, ch.Timeout)
		ch.Upstream.SetActiveHealth(ok)
		if ok != last {
			if ok {
				log.Info("backend healthy again", "backend", ch.Client.Name())
			} else {
				log.Warn("backend failed its health check", "backend", ch.Client.Name(), "error", why)
			}
			last = ok
		}
		t.Reset(ch.Interval)
	}
}

// Close stops every check and waits for them to return.
func (h *HealthChecker) Close() {
	if h == nil {
		return
	}
	h.cancel()
	h.wg.Wait()
}

func (c *Client) probe(path string, timeout time.Duration) (bool, string) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c.PrepareRequest(req, fasthttp.MethodGet, path)
	if err := c.hc.DoTimeout(req, resp, timeout); err != nil {
		return false, err.Error()
	}
	if sc := resp.StatusCode(); sc < 200 || sc > 299 {
		return false, fmt.Sprintf("status %d", sc)
	}
	return true, ""
}
