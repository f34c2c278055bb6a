package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
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

// Close stops every scrape and waits for them to return: at most a
// scrape's timeout, for one in flight.
func (s *Scrapers) Close() {
	if s == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
}

// scraper is one backend's scrape loop, with its own HTTP client: scrapes
// neither take nor wait for the connections of the backend's requests.
type scraper struct {
	sc   Scrape
	ex   *Extractor
	hc   *fasthttp.Client
	req  *fasthttp.Request
	resp *fasthttp.Response
}

func newScraper(sc Scrape, ex *Extractor) *scraper {
	timeout := sc.Timeout
	return &scraper{
		sc: sc,
		ex: ex,
		hc: &fasthttp.Client{
			Name:                "switchyard-scraper",
			MaxConnsPerHost:     2,
			MaxIdleConnDuration: max(3*sc.Interval, 10*time.Second),
			ReadTimeout:         timeout,
			WriteTimeout:        timeout,
			MaxResponseBodySize: MaxMetricsPage,
			Dial: func(addr string) (net.Conn, error) {
				return fasthttp.DialTimeout(addr, timeout)
			},
		},
		req:  fasthttp.AcquireRequest(),
		resp: fasthttp.AcquireResponse(),
	}
}

// jitter spreads d by ±10%, so the scrapes of many gateways and backends
// do not line up.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

func (s *scraper) run(ctx context.Context, log *slog.Logger, onResult func(ScrapeResult)) {
	defer func() {
		s.hc.CloseIdleConnections()
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
		l, err := s.scrape()
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
func (s *scraper) scrape() (router.Load, error) {
	req, resp := s.req, s.resp
	req.Reset()
	resp.Reset()
	s.sc.Client.PrepareRequest(req, fasthttp.MethodGet, s.sc.Path)
	req.Header.Set(fasthttp.HeaderAccept, "text/plain;version=0.0.4")
	if err := s.hc.DoTimeout(req, resp, s.sc.Timeout); err != nil {
		if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) {
			return router.Load{KVUsage: -1}, fmt.Errorf("GET %s: no answer within %v", s.sc.Path, s.sc.Timeout)
		}
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			return router.Load{KVUsage: -1}, fmt.Errorf("GET %s: page larger than %d bytes", s.sc.Path, MaxMetricsPage)
		}
		return router.Load{KVUsage: -1}, fmt.Errorf("GET %s: %w", s.sc.Path, err)
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
