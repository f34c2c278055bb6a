package backends

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/router"
)

// MaxMetricsPage bounds a scraped metrics page; a longer one is a failed
// scrape.
const MaxMetricsPage = 4 << 20

// Scrape describes the metrics scraping of one backend.
type Scrape struct {
	Client   *Client // the backend's: its URL and API key
	Upstream *router.Upstream
	Path     string // e.g. "/metrics"
	Kind     string // one of MetricsKinds
	Interval time.Duration
	Timeout  time.Duration
}

// ScrapeResult is the outcome of one scrape, given to the scrapers'
// callback.
type ScrapeResult struct {
	Upstream *router.Upstream
	Load     router.Load // valid when Err is nil
	Err      error       // nil: the load was recorded with SetLoad
	At       time.Time   // when the scrape started
	Took     time.Duration
}

// Scrapers scrape each backend's metrics page and record the load it
// reports on the backend's router.Upstream (SetLoad). A failed scrape
// (connection refused, timeout, a status other than 200, a page that does
// not parse or lacks the kind's metrics) records nothing, so the last load
// ages and, past the upstream's MetricsStale, stops counting: the balancer
// falls back to the gateway's own counts. It owns one goroutine per
// scraped backend, stopped by Close.
type Scrapers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartScrapers starts the scrapes; an empty list starts nothing. onResult,
// when not nil, is called after each scrape from the scrape's goroutine; it
// must be quick. A scrape of an unknown kind is an error, and nothing is
// started.
func StartScrapers(log *slog.Logger, scrapes []Scrape, onResult func(ScrapeResult)) (*Scrapers, error) {
	exs := make([]*Extractor, len(scrapes))
	for i, sc := range scrapes {
		ex, err := NewExtractor(sc.Kind)
		if err != nil {
			return nil, fmt.Errorf("backend %q: metrics: %w", sc.Client.Name(), err)
		}
		if sc.Interval <= 0 || sc.Timeout <= 0 {
			return nil, fmt.Errorf("backend %q: metrics: interval %v and timeout %v must be positive", sc.Client.Name(), sc.Interval, sc.Timeout)
		}
		exs[i] = ex
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scrapers{cancel: cancel}
	for i, sc := range scrapes {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			newScraper(sc, exs[i]).run(ctx, log, onResult)
		}()
	}
	return s, nil
}

// Close stops every scrape, one in flight included, and waits for them to
// return.
func (s *Scrapers) Close() {
	if s == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
}

// scraper is one backend's scrape loop. It keeps its own connection to
// the backend, so scrapes neither take nor wait for the connections of the
// backend's requests, and it runs no goroutine besides its loop.
type scraper struct {
	sc   Scrape
	ex   *Extractor
	addr string      // host:port to dial
	tls  *tls.Config // nil for http
	req  *fasthttp.Request
	resp *fasthttp.Response

	conn net.Conn // kept alive between scrapes; nil when closed
	br   *bufio.Reader
	bw   *bufio.Writer
}

func newScraper(sc Scrape, ex *Extractor) *scraper {
	c := sc.Client
	s := &scraper{sc: sc, ex: ex, addr: c.host, req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse()}
	host, port, err := net.SplitHostPort(c.host)
	if err != nil { // no port in the URL
		host, port = strings.Trim(c.host, "[]"), "80"
		if c.scheme == "https" {
			port = "443"
		}
		s.addr = net.JoinHostPort(host, port)
	}
	if c.scheme == "https" {
		s.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return s
}

func (s *scraper) close() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// jitter spreads d by ±10%, so the scrapes of many gateways and backends
// do not line up.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

func (s *scraper) run(ctx context.Context, log *slog.Logger, onResult func(ScrapeResult)) {
	defer func() {
		s.close()
		fasthttp.ReleaseRequest(s.req)
		fasthttp.ReleaseResponse(s.resp)
	}()
	name := s.sc.Client.Name()
	t := time.NewTimer(jitter(s.sc.Interval) / 10) // the first soon, not all at once
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		l, err := s.scrape(ctx)
		if ctx.Err() != nil {
			return
		}
		took := time.Since(start)
		if err == nil {
			s.sc.Upstream.SetLoad(l, start)
			if failing {
				log.Info("backend metrics scraped again", "backend", name, "path", s.sc.Path, "load", formatLoad(l))
				failing = false
			}
		} else if !failing {
			log.Warn("backend metrics scrape failed; routing uses the gateway's own counts for it until a scrape succeeds",
				"backend", name, "path", s.sc.Path, "error", err)
			failing = true
		}
		if onResult != nil {
			onResult(ScrapeResult{Upstream: s.sc.Upstream, Load: l, Err: err, At: start, Took: took})
		}
		t.Reset(jitter(s.sc.Interval))
	}
}

// ErrMetricsStatus: the metrics page answered with a status other than 200.
var ErrMetricsStatus = errors.New("metrics page status")

// scrape GETs the page and extracts the load. Errors name the path; the
// API key is never in them.
func (s *scraper) scrape(ctx context.Context) (router.Load, error) {
	req, resp := s.req, s.resp
	req.Reset()
	resp.Reset()
	s.sc.Client.PrepareRequest(req, fasthttp.MethodGet, s.sc.Path)
	req.Header.Set(fasthttp.HeaderAccept, "text/plain;version=0.0.4")
	if err := s.get(ctx, time.Now().Add(s.sc.Timeout)); err != nil {
		s.close()
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, fasthttp.ErrTimeout):
			return router.Load{KVUsage: -1}, fmt.Errorf("GET %s: no answer within %v", s.sc.Path, s.sc.Timeout)
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			return router.Load{KVUsage: -1}, fmt.Errorf("GET %s: page larger than %d bytes", s.sc.Path, MaxMetricsPage)
		}
		return router.Load{KVUsage: -1}, fmt.Errorf("GET %s: %w", s.sc.Path, err)
	}
	if resp.ConnectionClose() {
		s.close()
	}
	if sc := resp.StatusCode(); sc != fasthttp.StatusOK {
		return router.Load{KVUsage: -1}, fmt.Errorf("GET %s: %w %d", s.sc.Path, ErrMetricsStatus, sc)
	}
	l, err := s.ex.Extract(resp.Body())
	if err != nil {
		return l, fmt.Errorf("reading the %s page at %s: %w", s.sc.Kind, s.sc.Path, err)
	}
	return l, nil
}

// get sends the request and reads the response, all before deadline, on
// the kept connection; a kept connection that the server closed meanwhile
// is replaced once. Cancelling ctx (Close) ends a scrape in flight at once.
func (s *scraper) get(ctx context.Context, deadline time.Time) error {
	for try := 0; ; try++ {
		reused := s.conn != nil
		if !reused {
			d := net.Dialer{Deadline: deadline}
			conn, err := d.DialContext(ctx, "tcp", s.addr)
			if err != nil {
				return fmt.Errorf("connecting to %s: %w", s.addr, err)
			}
			if s.tls != nil {
				tc := tls.Client(conn, s.tls)
				_ = tc.SetDeadline(deadline)
				if err := tc.HandshakeContext(ctx); err != nil {
					_ = conn.Close()
					return fmt.Errorf("TLS handshake with %s: %w", s.addr, err)
				}
				conn = tc
			}
			s.conn = conn
			if s.br == nil {
				s.br = bufio.NewReaderSize(conn, 16<<10)
				s.bw = bufio.NewWriterSize(conn, 4<<10)
			} else {
				s.br.Reset(conn)
				s.bw.Reset(conn)
			}
		}
		conn := s.conn
		_ = conn.SetDeadline(deadline)
		stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
		err := s.req.Write(s.bw)
		if err == nil {
			err = s.bw.Flush()
		}
		if err == nil {
			s.resp.Reset()
			err = s.resp.ReadLimitBody(s.br, MaxMetricsPage)
		}
		stop()
		if err == nil {
			return nil
		}
		s.close()
		// A kept-alive connection the server had closed: one more try on
		// a new one, when nothing of the answer came.
		if reused && try == 0 && ctx.Err() == nil && time.Now().Before(deadline) && isClosedConn(err) {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
}

// isClosedConn says whether err is a read or write on a connection the
// peer closed before answering.
func isClosedConn(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, fasthttp.ErrTimeout) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, fasthttp.ErrConnectionClosed)
}
