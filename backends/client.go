// Package backends holds the upstream clients of the gateway: pooled
// keep-alive connections to OpenAI-compatible model servers, the timeouts of
// a call (connect, time to first byte, idle gap between stream events, total),
// cancellation of a call from another goroutine, active health checks, and
// the scraping of each backend's metrics page into its load (scrape.go).
// Decisions (which target, retry or not) belong to package router; this
// package only does the I/O.
package backends

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Options configure one upstream client. The limits and timeouts that the
// gateway's config sets are used as given (its config package owns their
// defaults): zero means none.
type Options struct {
	Name           string
	URL            string        // base URL, e.g. http://10.0.0.5:8000 (a trailing /v1 is accepted)
	APIKey         string        // sent as "Authorization: Bearer" when set
	MaxConns       int           // most open connections; 0 = no cap
	ConnectTimeout time.Duration // dialling, TLS included; 0 = none
	FirstByte      time.Duration // until the response headers arrive; 0 = none (Total still applies)
	Idle           time.Duration // longest gap between two reads of a streamed body; 0 = none
	Total          time.Duration // whole call, stream included; 0 = none
	MaxRespBody    int           // cap on a buffered (non-streamed) response body (default 64 MiB)
	MaxIdle        time.Duration // idle connections older than this are closed (default 60s)
}

// Errors of a call. Each is wrapped with the backend's name.
var (
	// ErrConnect: no connection could be made; nothing was sent.
	ErrConnect = errors.New("connecting to upstream")
	// ErrFirstByteTimeout: no response header arrived in time.
	ErrFirstByteTimeout = errors.New("upstream sent no response before the first-byte timeout")
	// ErrTotalTimeout: the call ran past its total deadline.
	ErrTotalTimeout = errors.New("upstream call exceeded its total timeout")
	// ErrIdleTimeout: a streamed body went quiet for longer than the idle timeout.
	ErrIdleTimeout = errors.New("upstream stream idle for longer than the idle timeout")
	// ErrCanceled: the call was cancelled (the client went away).
	ErrCanceled = errors.New("upstream call cancelled")
	// ErrNoFreeConns: the backend's connection limit is reached.
	ErrNoFreeConns = errors.New("no free connection to the upstream (max_conns reached)")
)

// Client calls one upstream server over its own pool of keep-alive
// connections. It is safe for concurrent use.
type Client struct {
	opts   Options
	scheme string
	host   string // as written in the URL, for the Host header
	prefix string // path prefix before /v1/...
	auth   []byte // "Bearer <key>" or nil
	pool   pool
}

// New builds a client for o.URL. It dials nothing until the first call.
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
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	if o.MaxRespBody <= 0 {
		o.MaxRespBody = 64 << 20
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = 60 * time.Second
	}
	prefix := strings.TrimSuffix(u.Path, "/")
	prefix = strings.TrimSuffix(prefix, "/v1")
	c := &Client{opts: o, scheme: u.Scheme, host: u.Host, prefix: prefix}
	if o.APIKey != "" {
		c.auth = []byte("Bearer " + o.APIKey)
	}
	var tlsCfg *tls.Config
	if u.Scheme == "https" {
		tlsCfg = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	}
	c.pool = pool{max: o.MaxConns, maxIdle: o.MaxIdle, dial: func() (net.Conn, error) {
		conn, err := net.DialTimeout("tcp", addr, o.ConnectTimeout)
		if err != nil {
			return nil, fmt.Errorf("%w %s (%s): %v", ErrConnect, o.Name, addr, err)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		if tlsCfg == nil {
			return conn, nil
		}
		tc := tls.Client(conn, tlsCfg)
		if o.ConnectTimeout > 0 {
			_ = tc.SetDeadline(time.Now().Add(o.ConnectTimeout))
		}
		if err := tc.Handshake(); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("%w %s (%s): TLS handshake: %v", ErrConnect, o.Name, addr, err)
		}
		_ = tc.SetDeadline(time.Time{}) // the call sets its own
		return tc, nil
	}}
	return c, nil
}

// Name is the backend's configured name.
func (c *Client) Name() string { return c.opts.Name }

// Close closes the idle connections; calls in flight finish, and their
// connections are closed when they end.
func (c *Client) Close() { c.pool.close() }

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

// Call is the handle of one upstream call. Cancel may be called from any
// goroutine, at any time; it breaks the call's connection, which stops the
// upstream's work. Reset it before reusing it for another call.
type Call struct {
	pc       atomic.Pointer[pconn]
	canceled atomic.Bool
}

// Cancel ends the call: a blocked read or write returns at once.
func (k *Call) Cancel() {
	if k.canceled.CompareAndSwap(false, true) {
		if pc := k.pc.Load(); pc != nil {
			_ = pc.SetDeadline(aLongTimeAgo)
		}
	}
}

// Canceled reports whether Cancel was called.
func (k *Call) Canceled() bool { return k.canceled.Load() }

// Reset makes the call reusable.
func (k *Call) Reset() {
	k.pc.Store(nil)
	k.canceled.Store(false)
}

var aLongTimeAgo = time.Unix(1, 0)

// Do sends req and reads the whole response into resp. The response must
// start before the first-byte timeout (a non-streamed completion arrives
// all at once, so that bounds the generation) and end before the total
// deadline.
func (c *Client) Do(k *Call, req *fasthttp.Request, resp *fasthttp.Response) error {
	start := time.Now()
	resp.StreamBody = false
	pc, err := c.roundTrip(k, req, resp, start)
	if err != nil {
		return err
	}
	c.done(k, pc, !resp.ConnectionClose())
	return nil
}

// DoStream sends req and returns when the response headers have arrived;
// the body is then read from resp.BodyStream(). Call Stream.Extend after
// each event to move the idle deadline, and Stream.Close when done.
func (c *Client) DoStream(k *Call, req *fasthttp.Request, resp *fasthttp.Response) (*Stream, error) {
	start := time.Now()
	resp.StreamBody = true
	pc, err := c.roundTrip(k, req, resp, start)
	if err != nil {
		return nil, err
	}
	s := &pc.stream
	*s = Stream{c: c, k: k, pc: pc, resp: resp, idle: c.opts.Idle}
	if c.opts.Total > 0 {
		s.deadline = start.Add(c.opts.Total)
	}
	s.Extend(time.Now())
	return s, nil
}

// roundTrip writes req and reads the response head (and, unless streaming,
// the body). A reused connection that the server had closed is replaced
// once: nothing was processed on it. The head must arrive within FirstByte
// and Total, where set; with neither, the wait is unbounded (a cancelled
// call still ends at once).
func (c *Client) roundTrip(k *Call, req *fasthttp.Request, resp *fasthttp.Response, start time.Time) (*pconn, error) {
	var headerBy time.Time // zero: no deadline
	if c.opts.FirstByte > 0 {
		headerBy = start.Add(c.opts.FirstByte)
	}
	totalBound := false // the total deadline is the one that bounds the head
	if c.opts.Total > 0 {
		if t := start.Add(c.opts.Total); headerBy.IsZero() || !t.After(headerBy) {
			headerBy, totalBound = t, true
		}
	}
	for attempt := 0; ; attempt++ {
		if k.Canceled() {
			return nil, fmt.Errorf("backend %s: %w", c.opts.Name, ErrCanceled)
		}
		pc, reused, err := c.pool.get()
		if err != nil {
			if errors.Is(err, ErrNoFreeConns) {
				return nil, fmt.Errorf("backend %s: %w", c.opts.Name, err)
			}
			return nil, err
		}
		_ = pc.SetWriteDeadline(headerBy)
		_ = pc.SetReadDeadline(headerBy)
		k.pc.Store(pc)
		if k.Canceled() { // Cancel ran before the Store: honour it.
			_ = pc.SetDeadline(aLongTimeAgo)
		}
		err = req.Write(pc.bw)
		if err == nil {
			err = pc.bw.Flush()
		}
		if err == nil {
			err = resp.ReadLimitBody(pc.br, c.opts.MaxRespBody)
		}
		if err == nil {
			return pc, nil
		}
		c.done(k, pc, false)
		if reused && attempt == 0 && !k.Canceled() && staleConn(err) {
			continue
		}
		return nil, c.classify(k, err, totalBound)
	}
}

// staleConn tells errors of a kept-alive connection that the server closed
// while it was idle: nothing of the request was processed.
func staleConn(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

func (c *Client) classify(k *Call, err error, totalBound bool) error {
	if k.Canceled() {
		return fmt.Errorf("backend %s: %w", c.opts.Name, ErrCanceled)
	}
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		if totalBound {
			return fmt.Errorf("backend %s: %w", c.opts.Name, ErrTotalTimeout)
		}
		return fmt.Errorf("backend %s: %w", c.opts.Name, ErrFirstByteTimeout)
	}
	return fmt.Errorf("backend %s: %w", c.opts.Name, err)
}

// Redact returns b with this backend's API key replaced by "[redacted]",
// for logging what an upstream answered (some echo the credentials they
// were sent). It returns b itself when there is nothing to replace.
func (c *Client) Redact(b []byte) []byte {
	if c.opts.APIKey == "" || !bytes.Contains(b, []byte(c.opts.APIKey)) {
		return b
	}
	return bytes.ReplaceAll(b, []byte(c.opts.APIKey), []byte("[redacted]"))
}

// done ends the call's use of pc: back to the pool when keep is true and the
// call was not cancelled, else closed.
func (c *Client) done(k *Call, pc *pconn, keep bool) {
	k.pc.Store(nil)
	if keep && !k.Canceled() { // see Cancel: it sets canceled before it loads pc
		c.pool.put(pc)
	} else {
		c.pool.discard(pc)
	}
}

// Stream is a streamed response body in progress, on a connection of its
// own until Close.
type Stream struct {
	c        *Client
	k        *Call
	pc       *pconn
	resp     *fasthttp.Response
	idle     time.Duration
	deadline time.Time
	eof      bool
}

// Read reads the body; io.EOF marks its clean end.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.resp.BodyStream().Read(p)
	switch {
	case err == nil:
	case err == io.EOF:
		s.eof = true
	case s.k.Canceled():
		err = fmt.Errorf("backend %s: %w", s.c.opts.Name, ErrCanceled)
	case errors.Is(err, os.ErrDeadlineExceeded):
		if !s.deadline.IsZero() && !time.Now().Before(s.deadline) {
			err = fmt.Errorf("backend %s: %w", s.c.opts.Name, ErrTotalTimeout)
		} else {
			err = fmt.Errorf("backend %s: %w", s.c.opts.Name, ErrIdleTimeout)
		}
	}
	return n, err
}

// Extend moves the read deadline to now plus the idle timeout, capped by
// the total deadline.
func (s *Stream) Extend(now time.Time) {
	d := s.deadline
	if s.idle > 0 {
		if id := now.Add(s.idle); d.IsZero() || id.Before(d) {
			d = id
		}
	}
	if !s.k.Canceled() {
		_ = s.pc.SetReadDeadline(d)
	}
}

// Close ends the stream. A stream read to its end gives its connection back
// to the pool; any other is closed, which stops the upstream's generation.
func (s *Stream) Close() {
	if s.pc == nil {
		return
	}
	_ = s.resp.CloseBodyStream()
	s.c.done(s.k, s.pc, s.eof && !s.resp.ConnectionClose())
	s.pc = nil
}

// pconn is one upstream connection with its buffers.
type pconn struct {
	net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	stream    Stream // reused by DoStream, so a stream allocates nothing
}

// pool keeps idle keep-alive connections, most recently used first. Idle
// connections past maxIdle are closed when found; no goroutine runs.
type pool struct {
	dial    func() (net.Conn, error)
	max     int
	maxIdle time.Duration

	mu     sync.Mutex
	idle   []*pconn
	open   int
	closed bool
}

func (p *pool) get() (*pconn, bool, error) {
	now := time.Now()
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		pc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(pc.idleSince) < p.maxIdle {
			p.mu.Unlock()
			return pc, true, nil
		}
		p.open--
		p.mu.Unlock()
		_ = pc.Close()
		p.mu.Lock()
	}
	if p.max > 0 && p.open >= p.max {
		p.mu.Unlock()
		return nil, false, ErrNoFreeConns
	}
	p.open++
	p.mu.Unlock()
	conn, err := p.dial()
	if err != nil {
		p.mu.Lock()
		p.open--
		p.mu.Unlock()
		return nil, false, err
	}
	return &pconn{Conn: conn, br: bufio.NewReaderSize(conn, 8<<10), bw: bufio.NewWriterSize(conn, 8<<10)}, false, nil
}

func (p *pool) put(pc *pconn) {
	pc.idleSince = time.Now()
	p.mu.Lock()
	if p.closed {
		p.open--
		p.mu.Unlock()
		_ = pc.Close()
		return
	}
	p.idle = append(p.idle, pc)
	p.mu.Unlock()
}

func (p *pool) discard(pc *pconn) {
	_ = pc.Close()
	p.mu.Lock()
	p.open--
	p.mu.Unlock()
}

func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.open -= len(idle)
	p.closed = true
	p.mu.Unlock()
	for _, pc := range idle {
		_ = pc.Close()
	}
}
