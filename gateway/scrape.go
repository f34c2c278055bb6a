package gateway

import (
	"math"
	"strconv"
	"time"

	"switchyard/backends"
	"switchyard/gateway/config"
	"switchyard/router"
)

// metricsStale is how old a backend's last good scrape may be and still
// count: three intervals (two scrapes may fail in a row) plus a timeout; 0
// when the backend is not scraped.
func metricsStale(m *config.BackendMetrics) time.Duration {
	if m == nil {
		return 0
	}
	return 3*m.Interval.D() + m.Timeout.D()
}

// scrapeOf is the scrape of backend b through client c, nil when b has no
// metrics block.
func scrapeOf(b *config.Backend, c *backends.Client, u *router.Upstream) *backends.Scrape {
	m := b.Metrics
	if m == nil {
		return nil
	}
	return &backends.Scrape{Client: c, Upstream: u, Path: m.Path, Kind: m.Kind, Interval: m.Interval.D(), Timeout: m.Timeout.D()}
}

// scrapeResult counts one scrape of a backend's metrics page, by result (ok
// or error).
func (m *Metrics) scrapeResult(r backends.ScrapeResult) {
	if m == nil {
		return
	}
	result := "ok"
	if r.Err != nil {
		result = "error"
	}
	m.counter(seriesKey{name: "switchyard_backend_metrics_scrapes_total", l: [4]string{r.Upstream.Name, result}}).Inc()
}

// watchLoads registers the gauges of the scraped load (queue, running, KV
// use, age of the last good scrape) of the current generation's scraped
// backends; like watchGeneration's, they read whichever generation is
// current when the gateway's metrics are scraped.
func (m *Metrics) watchLoads(s *Server) {
	for _, u := range s.gen.Load().Router.Upstreams() {
		if u.MetricsStale <= 0 {
			continue
		}
		name := u.Name
		m.reloadMu.Lock()
		seen := m.watchedNames["load:"+name]
		m.watchedNames["load:"+name] = true
		m.reloadMu.Unlock()
		if seen {
			continue
		}
		report := func() (router.Load, time.Time, bool) {
			if u := s.gen.Load().Router.Upstream(name); u != nil {
				l, at := u.LoadReport()
				return l, at, true
			}
			return router.Load{}, time.Time{}, false
		}
		q := strconv.Quote(name)
		gauge := func(family string, f func(l router.Load, at time.Time) float64) {
			m.set.GetOrCreateGauge(family+"{backend="+q+"}", func() float64 {
				l, at, ok := report()
				if !ok || at.IsZero() {
					return math.NaN()
				}
				return f(l, at)
			})
		}
		gauge("switchyard_backend_queue_waiting", func(l router.Load, _ time.Time) float64 { return l.Waiting })
		gauge("switchyard_backend_queue_running", func(l router.Load, _ time.Time) float64 { return l.Running })
		gauge("switchyard_backend_kv_cache_usage", func(l router.Load, _ time.Time) float64 { return l.KVUsage })
		gauge("switchyard_backend_metrics_age_seconds", func(_ router.Load, at time.Time) float64 { return time.Since(at).Seconds() })
	}
}

// loadState is a backend's scraped load in /admin/backends.
type loadState struct {
	Waiting    float64  `json:"waiting"`
	Running    float64  `json:"running"`
	KVUsage    *float64 `json:"kv_usage"` // null: not reported
	BlockSize  int      `json:"block_size,omitempty"`
	GPUBlocks  int      `json:"gpu_blocks,omitempty"`
	At         string   `json:"at"`          // RFC 3339, ms
	AgeSeconds float64  `json:"age_seconds"` // since the scrape
	Stale      bool     `json:"stale"`       // older than the backend's MetricsStale: routing ignores it
}

// adminLoad is u's last scraped load for /admin/backends; nil when u is not
// scraped or no scrape has succeeded yet.
func adminLoad(u *router.Upstream, now time.Time) *loadState {
	if u.MetricsStale <= 0 {
		return nil
	}
	l, at := u.LoadReport()
	if at.IsZero() {
		return nil
	}
	age := now.Sub(at)
	s := &loadState{Waiting: l.Waiting, Running: l.Running, BlockSize: l.BlockSize, GPUBlocks: l.GPUBlocks,
		At: at.UTC().Format("2006-01-02T15:04:05.000Z07:00"), AgeSeconds: math.Round(age.Seconds()*1000) / 1000,
		Stale: age > u.MetricsStale}
	if l.KVUsage >= 0 {
		kv := l.KVUsage
		s.KVUsage = &kv
	}
	return s
}
