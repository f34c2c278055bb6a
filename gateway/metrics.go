package gateway

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"switchyard/router"
)

// Metrics are the gateway's Prometheus metrics. Label values are bounded:
// names from the config (routes, models, backends), operations and status
// codes; never keys, users or prompts. Each series is created once and then
// found by a struct-keyed map lookup, so recording allocates nothing.
type Metrics struct {
	set *metrics.Set

	mu     sync.RWMutex
	series map[seriesKey]any

	reloadOK      bool
	lastSuccess   float64
	reloadMu      sync.Mutex
	generationID  float64
	watchedNames  map[string]bool
	watchedServer *Server
}

type seriesKey struct {
	name string
	l    [4]string
	code int
}

// labelNames lists each metric's labels in order, with its help text.
var labelNames = map[string][]string{
	"switchyard_requests_total":              {"route", "model", "backend", "op"},
	"switchyard_request_duration_seconds":    {"route", "model", "op"},
	"switchyard_gateway_overhead_seconds":    {"op"},
	"switchyard_upstream_responses_total":    {"backend"},
	"switchyard_ttft_seconds":                {"model"},
	"switchyard_inter_token_latency_seconds": {"model"},
	"switchyard_tokens_total":                {"model", "backend", "type"},
	"switchyard_retries_total":               {"model"},
	"switchyard_fallbacks_total":             {"model", "fallback"},
	"switchyard_stream_errors_total":         {"model"},
	"switchyard_client_disconnects_total":    {"model"},
	"switchyard_config_reloads_total":        {"result"},
	"switchyard_upstream_first_byte_seconds": {"backend"},
	"switchyard_stream_duration_seconds":     {"model"},
}

// latencyBuckets cover 100us to 60s for request, TTFT and overhead times.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newMetrics() *Metrics {
	m := &Metrics{set: metrics.NewSet(), series: map[seriesKey]any{}, watchedNames: map[string]bool{}}
	m.set.NewGauge("switchyard_config_last_reload_successful", func() float64 {
		m.reloadMu.Lock()
		defer m.reloadMu.Unlock()
		if m.reloadOK {
			return 1
		}
		return 0
	})
	m.set.NewGauge("switchyard_config_last_reload_success_timestamp_seconds", func() float64 {
		m.reloadMu.Lock()
		defer m.reloadMu.Unlock()
		return m.lastSuccess
	})
	m.set.NewGauge("switchyard_config_generation", func() float64 {
		m.reloadMu.Lock()
		defer m.reloadMu.Unlock()
		return m.generationID
	})
	return m
}

func (m *Metrics) seriesName(k seriesKey) string {
	var b strings.Builder
	b.WriteString(k.name)
	b.WriteByte('{')
	n := 0
	for i, ln := range labelNames[k.name] {
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(ln)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(k.l[i]))
		n++
	}
	if k.code != 0 {
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`code="`)
		if k.code < 0 {
			b.WriteString("error")
		} else {
			b.WriteString(strconv.Itoa(k.code))
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func (m *Metrics) get(k seriesKey, mk func(name string) any) any {
	m.mu.RLock()
	v := m.series[k]
	m.mu.RUnlock()
	if v != nil {
		return v
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v = m.series[k]; v == nil {
		v = mk(m.seriesName(k))
		m.series[k] = v
	}
	return v
}

func (m *Metrics) counter(k seriesKey) *metrics.Counter {
	return m.get(k, func(n string) any { return m.set.GetOrCreateCounter(n) }).(*metrics.Counter)
}

func (m *Metrics) histogram(k seriesKey) *metrics.PrometheusHistogram {
	return m.get(k, func(n string) any { return m.set.GetOrCreatePrometheusHistogramExt(n, latencyBuckets) }).(*metrics.PrometheusHistogram)
}

func poolName(p *router.Pool) string {
	if p == nil {
		return ""
	}
	return p.Name
}

// request records a finished exchange.
func (m *Metrics) request(x *Exchange) {
	if m == nil {
		return
	}
	route, model := routeName(x.Route), poolName(x.Pool)
	op := x.Op.String()
	code := x.Status
	if code == 0 {
		code = fasthttp.StatusInternalServerError
	}
	m.counter(seriesKey{name: "switchyard_requests_total", l: [4]string{route, model, x.Backend, op}, code: code}).Inc()
	total := time.Since(x.Start)
	if x.Route != nil {
		m.histogram(seriesKey{name: "switchyard_request_duration_seconds", l: [4]string{route, model, op}}).Update(total.Seconds())
	}
	if x.Streaming {
		m.histogram(seriesKey{name: "switchyard_stream_duration_seconds", l: [4]string{model}}).Update(total.Seconds())
	} else {
		m.overhead(x, total)
	}
	if x.PromptTokens > 0 {
		m.counter(seriesKey{name: "switchyard_tokens_total", l: [4]string{model, x.Backend, "prompt"}}).Add(int(x.PromptTokens))
	}
	if x.CompletionTokens > 0 {
		m.counter(seriesKey{name: "switchyard_tokens_total", l: [4]string{model, x.Backend, "completion"}}).Add(int(x.CompletionTokens))
	}
}

// upstreamResult records one upstream attempt; code 0 is a transport error.
func (m *Metrics) upstreamResult(x *Exchange, code int) {
	if m == nil {
		return
	}
	if code == 0 {
		code = -1
	}
	name := x.target.Upstream.Name
	m.counter(seriesKey{name: "switchyard_upstream_responses_total", l: [4]string{name}, code: code}).Inc()
	m.histogram(seriesKey{name: "switchyard_upstream_first_byte_seconds", l: [4]string{name}}).Update(time.Since(x.upStart).Seconds())
}

// overhead records the time an exchange spent in the gateway itself: all of
// it but the waits on upstreams (for a stream, up to its first relayed byte).
func (m *Metrics) overhead(x *Exchange, total time.Duration) {
	if x.tries == 0 {
		return
	}
	if ov := total - x.upDur; ov >= 0 {
		m.histogram(seriesKey{name: "switchyard_gateway_overhead_seconds", l: [4]string{x.Op.String()}}).Update(ov.Seconds())
	}
}

// streamHistograms returns the TTFT and inter-token histograms of x's
// model, looked up once per stream rather than once per event.
func (m *Metrics) streamHistograms(x *Exchange) (ttft, itl *metrics.PrometheusHistogram) {
	model := poolName(x.Pool)
	return m.histogram(seriesKey{name: "switchyard_ttft_seconds", l: [4]string{model}}),
		m.histogram(seriesKey{name: "switchyard_inter_token_latency_seconds", l: [4]string{model}})
}

func (m *Metrics) retry(p *router.Pool) {
	m.counter(seriesKey{name: "switchyard_retries_total", l: [4]string{p.Name}}).Inc()
}

func (m *Metrics) fallback(from, to *router.Pool) {
	m.counter(seriesKey{name: "switchyard_fallbacks_total", l: [4]string{from.Name, to.Name}}).Inc()
}

func (m *Metrics) streamError(x *Exchange) {
	m.counter(seriesKey{name: "switchyard_stream_errors_total", l: [4]string{poolName(x.Pool)}}).Inc()
}

func (m *Metrics) clientGone(x *Exchange) {
	m.counter(seriesKey{name: "switchyard_client_disconnects_total", l: [4]string{poolName(x.Pool)}}).Inc()
}

// reloaded records a reload attempt; g is the new generation on success.
func (m *Metrics) reloaded(ok bool, g *Generation) {
	result := "success"
	if !ok {
		result = "failure"
	}
	m.counter(seriesKey{name: "switchyard_config_reloads_total", l: [4]string{result}}).Inc()
	m.reloadMu.Lock()
	m.reloadOK = ok
	if ok {
		m.lastSuccess = float64(time.Now().Unix())
		m.generationID = float64(g.ID)
	}
	m.reloadMu.Unlock()
	if ok && m.watchedServer != nil {
		m.watchGeneration(m.watchedServer)
	}
}

// watchGeneration registers the per-backend gauges (in flight, healthy) of
// the current generation's backends; they read whichever generation is
// current when scraped.
func (m *Metrics) watchGeneration(s *Server) {
	m.watchedServer = s
	for _, u := range s.gen.Load().Router.Upstreams() {
		name := u.Name
		m.reloadMu.Lock()
		seen := m.watchedNames[name]
		m.watchedNames[name] = true
		m.reloadMu.Unlock()
		if seen {
			continue
		}
		lookup := func() *router.Upstream {
			for _, u := range s.gen.Load().Router.Upstreams() {
				if u.Name == name {
					return u
				}
			}
			return nil
		}
		q := strconv.Quote(name)
		m.set.GetOrCreateGauge("switchyard_backend_inflight{backend="+q+"}", func() float64 {
			if u := lookup(); u != nil {
				return float64(u.Inflight())
			}
			return 0
		})
		m.set.GetOrCreateGauge("switchyard_backend_healthy{backend="+q+"}", func() float64 {
			if u := lookup(); u != nil && u.Healthy(time.Now()) {
				return 1
			}
			return 0
		})
	}
}

func (m *Metrics) write(ctx *fasthttp.RequestCtx) {
	m.set.WritePrometheus(ctx)
	metrics.WriteProcessMetrics(ctx)
}
