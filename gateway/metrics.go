package gateway

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"switchyard/router"
)

// Metrics are the gateway's Prometheus metrics. Label values are bounded:
// names from the config (routes, models, backends), operations, status
// codes and error codes; never keys, users or prompts.
//
// Fast path: each generation gets a table of series handles indexed by the
// positions of its routes, pools and upstreams (see prepare), so recording
// is index arithmetic and atomic loads, with no map and no lock. Slow path:
// a struct-keyed map under a lock, for what the table does not cover (a
// status code outside the usual set, an exchange of a retired generation,
// the first use of a series). A series is created on its first recording,
// so the exposition has no series that never counted anything.
type Metrics struct {
	set *metrics.Set

	mu     sync.RWMutex
	series map[seriesKey]any

	tab atomic.Pointer[metricTable]                       // the current generation's handles
	ovh [nOps]atomic.Pointer[metrics.PrometheusHistogram] // gateway overhead, by op

	reloadOK      bool
	lastSuccess   float64
	reloadMu      sync.Mutex
	generationID  float64
	watchedNames  map[string]bool
	beforeWrite   []func() // run before each scrape; guarded by reloadMu
	watchedServer *Server
}

type seriesKey struct {
	name string
	l    [4]string
	code int
}

// family is one metric family: its labels in order (a status code label
// "code" is added after them when a series key has one), its type and help.
type family struct {
	labels []string
	typ    string
	help   string
}

// families lists every switchyard_* family, with the help text written to
// /metrics. A new metric needs an entry here.
var families = map[string]family{
	"switchyard_requests_total": {[]string{"route", "model", "backend", "op"}, "counter",
		"Requests finished, by route, model (pool), backend that answered, operation and HTTP status code."},
	"switchyard_errors_total": {[]string{"route", "model", "reason"}, "counter",
		"Requests answered with a gateway error, by route, model and error code (the OpenAI error code of the body)."},
	"switchyard_request_duration_seconds": {[]string{"route", "model", "op"}, "histogram",
		"Time from reading a routed request to its last response byte (to the end of the stream for streams)."},
	"switchyard_gateway_overhead_seconds": {[]string{"op"}, "histogram",
		"Time a proxied request spent in the gateway itself, without the waits on upstreams (for a stream, up to its first relayed byte)."},
	"switchyard_upstream_responses_total": {[]string{"backend"}, "counter",
		`Upstream attempts, by backend and HTTP status code; code="error" is a transport error or timeout.`},
	"switchyard_upstream_first_byte_seconds": {[]string{"backend"}, "histogram",
		"Time from sending an upstream attempt to its response headers (or its transport error)."},
	"switchyard_batches_total": {[]string{"model"}, "counter",
		"Batches the dynamic batcher sent upstream, by model (pool)."},
	"switchyard_batch_items": {[]string{"model"}, "histogram",
		"Items per batch (embedding inputs, prompts, tensor rows), by model."},
	"switchyard_batch_requests": {[]string{"model"}, "histogram",
		"Callers' requests per batch, by model."},
	"switchyard_batch_queue_delay_seconds": {[]string{"model"}, "histogram",
		"Time a request waited in its pool's batch queue before its batch was sent."},
	"switchyard_batch_unbatched_total": {[]string{"model", "reason"}, "counter",
		`Batchable requests that did not go in a batch: reason="queue_full" (refused with 503), "too_large" (larger than one batch: sent alone), "alone" (their batch was refused with a 4xx, so each went alone).`},
	"switchyard_ttft_seconds": {[]string{"model"}, "histogram",
		"Time to the first streamed event, by model."},
	"switchyard_inter_token_latency_seconds": {[]string{"model"}, "histogram",
		"Time between streamed events, by model."},
	"switchyard_stream_duration_seconds": {[]string{"model"}, "histogram",
		"Duration of relayed streams, by model."},
	"switchyard_tokens_total": {[]string{"model", "backend", "type"}, "counter",
		"Tokens reported by upstreams in usage, by model, backend and type (prompt or completion)."},
	"switchyard_retries_total": {[]string{"model"}, "counter",
		"Retries within a model's pool."},
	"switchyard_fallbacks_total": {[]string{"model", "fallback"}, "counter",
		"Fallbacks from a model's pool to the next fallback pool."},
	"switchyard_stream_errors_total": {[]string{"model"}, "counter",
		"Streams whose upstream ended abnormally after the first byte reached the client."},
	"switchyard_client_disconnects_total": {[]string{"model"}, "counter",
		"Streams whose client went away before their end."},
	"switchyard_config_reloads_total": {[]string{"result"}, "counter",
		"Config reload attempts, by result (success or failure)."},
	"switchyard_config_last_reload_successful": {nil, "gauge",
		"Whether the last config reload attempt succeeded (1) or not (0)."},
	"switchyard_config_last_reload_success_timestamp_seconds": {nil, "gauge",
		"Unix time of the last successful config load."},
	"switchyard_config_generation": {nil, "gauge",
		"ID of the config generation now serving."},
	"switchyard_backend_metrics_scrapes_total": {[]string{"backend", "result"}, "counter",
		"Scrapes of a backend's metrics page (backends[].metrics), by backend and result: ok, or error (down, timeout, a status other than 200, a page that does not parse or lacks the kind's metrics)."},
	"switchyard_backend_queue_waiting": {[]string{"backend"}, "gauge",
		"Requests waiting in a backend's queue, as its last good metrics scrape reported; NaN before the first."},
	"switchyard_backend_queue_running": {[]string{"backend"}, "gauge",
		"Requests running on a backend, as its last good metrics scrape reported; NaN before the first."},
	"switchyard_backend_kv_cache_usage": {[]string{"backend"}, "gauge",
		"Fraction (0..1) of a backend's KV cache in use, as its last good metrics scrape reported; -1 when the server does not report it, NaN before the first scrape."},
	"switchyard_backend_metrics_age_seconds": {[]string{"backend"}, "gauge",
		"Age of a backend's last good metrics scrape; routing ignores a scrape older than 3 intervals plus the timeout. NaN before the first."},
	"switchyard_backend_inflight": {[]string{"backend"}, "gauge",
		"Requests in flight to a backend (streams count until their last event)."},
	"switchyard_backend_healthy": {[]string{"backend"}, "gauge",
		"Whether a backend is in rotation (1) or ejected or failing its active checks (0)."},
	"switchyard_backend_circuit_state": {[]string{"backend"}, "gauge",
		"State of a backend's circuit breaker: 0 closed, 1 open (ejected), 2 half-open (probe requests only)."},
	"switchyard_backend_ejections_total": {[]string{"backend", "reason"}, "counter",
		"Backend ejections (circuit opened), by backend and reason: failures (consecutive failures), latency (time-to-first-byte outlier), probe (a half-open probe failed)."},
	"switchyard_backend_ejections_refused_total": {[]string{"backend", "reason", "rule"}, "counter",
		"Ejections refused, by backend, reason and rule: last_healthy (the pool's last healthy backend) or max_ejected_percent."},
	"switchyard_ratelimit_refused_total": {[]string{"scope", "type"}, "counter",
		"Requests refused by a rate limit, by the limit's scope (key, tenant, pool, key_model, tenant_model, stage) and type (requests, tokens, concurrency, too_large, unavailable)."},
	"switchyard_ratelimit_store_up": {nil, "gauge",
		"Whether the shared rate-limit store (Redis) answers (1) or not (0); 1 with the local backend."},
	"switchyard_ratelimit_store_errors_total": {nil, "counter",
		"Failed calls to the shared rate-limit store (Redis)."},
	"switchyard_ratelimit_fallbacks_total": {nil, "counter",
		"Admissions decided by the local fallback while Redis was unreachable (on_redis_error: local)."},
	"switchyard_budget_refused_total": {[]string{"scope", "tenant"}, "counter",
		"Requests refused because a key's or tenant's hard budget was spent, by scope (key or tenant) and tenant."},
	"switchyard_budget_soft_exceeded_total": {[]string{"scope", "tenant"}, "counter",
		"Requests served past a key's or tenant's soft budget, by scope and tenant."},
	"switchyard_tenant_spend_usd_total": {[]string{"tenant"}, "counter",
		"Spend priced by models[].prices, in USD, by tenant (\"\" for keys without one)."},
	"switchyard_tenant_tokens_total": {[]string{"tenant", "type"}, "counter",
		"Tokens used, by tenant and type (prompt or completion)."},
	"switchyard_admission_shed_total": {[]string{"model", "class"}, "counter",
		"Requests refused (503) because their model pool was at capacity, by pool and priority class."},
	"switchyard_admission_wait_seconds": {[]string{"class"}, "histogram",
		"Time requests waited for capacity in their pool's queue before being admitted, by priority class."},
	"switchyard_admission_queue_length": {[]string{"model", "class"}, "gauge",
		"Requests waiting for capacity, by pool and priority class."},
	"switchyard_admission_inflight": {[]string{"model"}, "gauge",
		"Requests holding a slot of their pool's admission capacity."},
}

// latencyBuckets cover 100us to 60s for request, TTFT and overhead times.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newMetrics() *Metrics {
	// TYPE and HELP lines for every family, ours and the process metrics.
	// The switch is the library's and process-wide; nothing of ours reads
	// the exposition without it.
	metrics.ExposeMetadata(true)
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
	for i, ln := range families[k.name].labels {
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

// get is the slow path: the series of k, created on first use.
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

// counterSlot returns the counter cached in s, filling s from the map on
// first use. Concurrent fills store the same counter.
func (m *Metrics) counterSlot(s *atomic.Pointer[metrics.Counter], k *seriesKey) *metrics.Counter {
	if c := s.Load(); c != nil {
		return c
	}
	return m.fillCounter(s, k)
}

func (m *Metrics) fillCounter(s *atomic.Pointer[metrics.Counter], k *seriesKey) *metrics.Counter {
	c := m.counter(*k)
	s.Store(c)
	return c
}

func (m *Metrics) histogramSlot(s *atomic.Pointer[metrics.PrometheusHistogram], k *seriesKey) *metrics.PrometheusHistogram {
	if h := s.Load(); h != nil {
		return h
	}
	return m.fillHistogram(s, k)
}

func (m *Metrics) fillHistogram(s *atomic.Pointer[metrics.PrometheusHistogram], k *seriesKey) *metrics.PrometheusHistogram {
	h := m.histogram(*k)
	s.Store(h)
	return h
}

const nOps = len(operations)

// tableCodes are the status codes with a slot in the table; other codes take
// the slow path.
var tableCodes = [...]int{200, 400, 401, 403, 404, 408, 413, 422, 429, StatusClientClosed, 500, 502, 503, 504}

const nCodes = len(tableCodes)

// codeSlots maps a status code to its index in tableCodes, or -1.
var codeSlots = func() (a [600]int8) {
	for i := range a {
		a[i] = -1
	}
	for i, c := range tableCodes {
		a[c] = int8(i)
	}
	return a
}()

func codeSlot(code int) int {
	if uint(code) < uint(len(codeSlots)) {
		return int(codeSlots[code])
	}
	return -1
}

// tableReasons are the error codes with a slot in the table.
var tableReasons = [...]Code{CodeInvalidRequest, CodeAuthentication, CodePermission, CodeNotFound, CodeBodyTooLarge,
	CodeRateLimited, CodeUpstream, CodeUnavailable, CodeUpstreamTimeout, CodeInternal, CodeClientClosed}

const nReasons = len(tableReasons)

func reasonSlot(c Code) int {
	switch c {
	case CodeInvalidRequest:
		return 0
	case CodeAuthentication:
		return 1
	case CodePermission:
		return 2
	case CodeNotFound:
		return 3
	case CodeBodyTooLarge:
		return 4
	case CodeRateLimited:
		return 5
	case CodeUpstream:
		return 6
	case CodeUnavailable:
		return 7
	case CodeUpstreamTimeout:
		return 8
	case CodeInternal:
		return 9
	case CodeClientClosed:
		return 10
	}
	return -1
}

// metricTable holds the series handles of one generation. Routes, pools and
// backends are found by their Index and checked by pointer, so an exchange
// of another generation takes the slow path rather than a wrong series.
// Index 0 of a route, pool or backend dimension is "none" (label "").
// Blocks are allocated on first use of their (route, pool) or pool, once
// per generation; the slots in them fill on first recording.
type metricTable struct {
	routes    []*router.Route
	pools     []*router.Pool
	upstreams []*router.Upstream
	byName    func(string) *router.Upstream

	np, nu int                               // pools+1, upstreams+1
	rp     []atomic.Pointer[routePoolSeries] // [(route+1)*np + pool+1]
	pool   []atomic.Pointer[poolSeries]      // [pool+1]
	up     []upstreamSeries                  // [upstream]
}

type routePoolSeries struct {
	dur  [nOps]atomic.Pointer[metrics.PrometheusHistogram]
	reqs []atomic.Pointer[metrics.Counter] // [(op*nu + backend)*nCodes + code]
	errs [nReasons]atomic.Pointer[metrics.Counter]
}

type poolSeries struct {
	streamDur, ttft, itl            atomic.Pointer[metrics.PrometheusHistogram]
	retries, streamErrs, clientGone atomic.Pointer[metrics.Counter]
	tokens                          []atomic.Pointer[metrics.Counter] // [backend*2 + 0 prompt / 1 completion]
	fallbacks                       []atomic.Pointer[metrics.Counter] // [to pool's Index]
}

type upstreamSeries struct {
	codes     [nCodes + 1]atomic.Pointer[metrics.Counter] // the last is code="error"
	firstByte atomic.Pointer[metrics.PrometheusHistogram]
}

// prepare builds g's table of series handles and makes it the one recording
// uses. reloaded calls it for each generation that starts serving; it costs
// a few small slices, and no series is created.
func (m *Metrics) prepare(g *Generation) {
	if m == nil || g == nil || g.Router == nil {
		return
	}
	r := g.Router
	t := &metricTable{routes: r.Routes(), pools: r.Pools(), upstreams: r.Upstreams(), byName: r.Upstream}
	t.np, t.nu = len(t.pools)+1, len(t.upstreams)+1
	t.rp = make([]atomic.Pointer[routePoolSeries], (len(t.routes)+1)*t.np)
	t.pool = make([]atomic.Pointer[poolSeries], t.np)
	t.up = make([]upstreamSeries, len(t.upstreams))
	m.tab.Store(t)
}

func (t *metricTable) routeSlot(r *router.Route) int {
	if r == nil {
		return 0
	}
	if uint(r.Index) < uint(len(t.routes)) && t.routes[r.Index] == r {
		return r.Index + 1
	}
	return -1
}

func (t *metricTable) poolSlot(p *router.Pool) int {
	if p == nil {
		return 0
	}
	if uint(p.Index) < uint(len(t.pools)) && t.pools[p.Index] == p {
		return p.Index + 1
	}
	return -1
}

func (t *metricTable) upstreamSlot(u *router.Upstream) int {
	if u != nil && uint(u.Index) < uint(len(t.upstreams)) && t.upstreams[u.Index] == u {
		return u.Index + 1
	}
	return -1
}

// backendSlot finds the backend named name, normally the upstream of the
// exchange's last target.
func (t *metricTable) backendSlot(x *Exchange, name string) int {
	if name == "" {
		return 0
	}
	if x.target != nil && x.target.Upstream.Name == name {
		if i := t.upstreamSlot(x.target.Upstream); i >= 0 {
			return i
		}
	}
	return t.upstreamSlot(t.byName(name)) // an earlier attempt answered
}

func (t *metricTable) routePool(ri, pi int) *routePoolSeries {
	s := &t.rp[ri*t.np+pi]
	if b := s.Load(); b != nil {
		return b
	}
	b := &routePoolSeries{reqs: make([]atomic.Pointer[metrics.Counter], nOps*t.nu*nCodes)}
	if s.CompareAndSwap(nil, b) {
		return b
	}
	return s.Load()
}

func (t *metricTable) poolSeries(pi int) *poolSeries {
	s := &t.pool[pi]
	if b := s.Load(); b != nil {
		return b
	}
	b := &poolSeries{tokens: make([]atomic.Pointer[metrics.Counter], t.nu*2), fallbacks: make([]atomic.Pointer[metrics.Counter], len(t.pools))}
	if s.CompareAndSwap(nil, b) {
		return b
	}
	return s.Load()
}

func poolName(p *router.Pool) string {
	if p == nil {
		return ""
	}
	return p.Name
}

// requestBackend is the backend label of a finished exchange: the backend
// that answered or, for a client that left during an attempt (499), the
// one it was waiting on.
func requestBackend(x *Exchange, code int) string {
	if x.Backend == "" && code == StatusClientClosed && x.target != nil {
		return x.target.Upstream.Name
	}
	return x.Backend
}

// request records a finished exchange.
func (m *Metrics) request(x *Exchange) {
	if m == nil {
		return
	}
	code := x.Status
	if code == 0 {
		code = fasthttp.StatusInternalServerError
	}
	backend := requestBackend(x, code)
	total := time.Since(x.Start)
	secs := total.Seconds()
	route, model, op := routeName(x.Route), poolName(x.Pool), x.Op.String()

	var rp *routePoolSeries
	var ps *poolSeries
	bi := -1
	if t := m.tab.Load(); t != nil {
		ri, pi := t.routeSlot(x.Route), t.poolSlot(x.Pool)
		if ri >= 0 && pi >= 0 {
			rp, ps = t.routePool(ri, pi), t.poolSeries(pi)
			bi = t.backendSlot(x, backend)
		}
		if ci := codeSlot(code); rp != nil && bi >= 0 && ci >= 0 {
			k := seriesKey{name: "switchyard_requests_total", l: [4]string{route, model, backend, op}, code: code}
			m.counterSlot(&rp.reqs[(int(x.Op)*t.nu+bi)*nCodes+ci], &k).Inc()
		} else {
			m.counter(seriesKey{name: "switchyard_requests_total", l: [4]string{route, model, backend, op}, code: code}).Inc()
		}
	} else {
		m.counter(seriesKey{name: "switchyard_requests_total", l: [4]string{route, model, backend, op}, code: code}).Inc()
	}

	if x.Route != nil {
		k := seriesKey{name: "switchyard_request_duration_seconds", l: [4]string{route, model, op}}
		if rp != nil {
			m.histogramSlot(&rp.dur[x.Op], &k).Update(secs)
		} else {
			m.histogram(k).Update(secs)
		}
	}
	if x.Streaming {
		k := seriesKey{name: "switchyard_stream_duration_seconds", l: [4]string{model}}
		if ps != nil {
			m.histogramSlot(&ps.streamDur, &k).Update(secs)
		} else {
			m.histogram(k).Update(secs)
		}
	} else {
		m.overhead(x, total)
	}
	u := x.TotalUsage()
	if u.PromptTokens > 0 {
		m.tokens(ps, bi, 0, model, backend, "prompt", u.PromptTokens)
	}
	if u.CompletionTokens > 0 {
		m.tokens(ps, bi, 1, model, backend, "completion", u.CompletionTokens)
	}
}

func (m *Metrics) tokens(ps *poolSeries, bi, typ int, model, backend, name string, n int64) {
	k := seriesKey{name: "switchyard_tokens_total", l: [4]string{model, backend, name}}
	if ps != nil && bi >= 0 {
		m.counterSlot(&ps.tokens[bi*2+typ], &k).Add(int(n))
		return
	}
	m.counter(k).Add(int(n))
}

// requestError counts an error the gateway answered x with, by its code;
// x may be nil for a request that never became an exchange. Server.fail
// calls it once per failed exchange.
func (m *Metrics) requestError(x *Exchange, code Code) {
	if m == nil {
		return
	}
	var r *router.Route
	var p *router.Pool
	if x != nil {
		r, p = x.Route, x.Pool
	}
	k := seriesKey{name: "switchyard_errors_total", l: [4]string{routeName(r), poolName(p), string(code)}}
	if t := m.tab.Load(); t != nil {
		ri, pi, ei := t.routeSlot(r), t.poolSlot(p), reasonSlot(code)
		if ri >= 0 && pi >= 0 && ei >= 0 {
			m.counterSlot(&t.routePool(ri, pi).errs[ei], &k).Inc()
			return
		}
	}
	m.counter(k).Inc()
}

// upstreamResult records one upstream attempt; code 0 is a transport error.
func (m *Metrics) upstreamResult(x *Exchange, code int) {
	if m == nil {
		return
	}
	if code == 0 {
		code = -1
	}
	u := x.target.Upstream
	secs := time.Since(x.upStart).Seconds()
	rk := seriesKey{name: "switchyard_upstream_responses_total", l: [4]string{u.Name}, code: code}
	hk := seriesKey{name: "switchyard_upstream_first_byte_seconds", l: [4]string{u.Name}}
	if t := m.tab.Load(); t != nil {
		if ui := t.upstreamSlot(u); ui > 0 {
			us := &t.up[ui-1]
			ci := nCodes // code="error"
			if code > 0 {
				ci = codeSlot(code)
			}
			if ci >= 0 {
				m.counterSlot(&us.codes[ci], &rk).Inc()
			} else {
				m.counter(rk).Inc()
			}
			m.histogramSlot(&us.firstByte, &hk).Update(secs)
			return
		}
	}
	m.counter(rk).Inc()
	m.histogram(hk).Update(secs)
}

// overhead records the time an exchange spent in the gateway itself: all of
// it but the waits on upstreams (for a stream, up to its first relayed byte).
func (m *Metrics) overhead(x *Exchange, total time.Duration) {
	if x.tries == 0 {
		return
	}
	if ov := total - x.upDur; ov >= 0 {
		k := seriesKey{name: "switchyard_gateway_overhead_seconds", l: [4]string{x.Op.String()}}
		m.histogramSlot(&m.ovh[x.Op], &k).Update(ov.Seconds())
	}
}

// poolOf returns the table block of pool p, or nil for the slow path.
func (m *Metrics) poolOf(p *router.Pool) *poolSeries {
	if t := m.tab.Load(); t != nil {
		if pi := t.poolSlot(p); pi >= 0 {
			return t.poolSeries(pi)
		}
	}
	return nil
}

// streamHistograms returns the TTFT and inter-token histograms of x's
// model, looked up once per stream rather than once per event.
func (m *Metrics) streamHistograms(x *Exchange) (ttft, itl *metrics.PrometheusHistogram) {
	model := poolName(x.Pool)
	tk := seriesKey{name: "switchyard_ttft_seconds", l: [4]string{model}}
	ik := seriesKey{name: "switchyard_inter_token_latency_seconds", l: [4]string{model}}
	if ps := m.poolOf(x.Pool); ps != nil {
		return m.histogramSlot(&ps.ttft, &tk), m.histogramSlot(&ps.itl, &ik)
	}
	return m.histogram(tk), m.histogram(ik)
}

func (m *Metrics) retry(p *router.Pool) {
	m.poolCounter(p, "switchyard_retries_total", func(ps *poolSeries) *atomic.Pointer[metrics.Counter] { return &ps.retries })
}

func (m *Metrics) fallback(from, to *router.Pool) {
	k := seriesKey{name: "switchyard_fallbacks_total", l: [4]string{from.Name, to.Name}}
	if t := m.tab.Load(); t != nil {
		if fi, ti := t.poolSlot(from), t.poolSlot(to); fi > 0 && ti > 0 {
			m.counterSlot(&t.poolSeries(fi).fallbacks[ti-1], &k).Inc()
			return
		}
	}
	m.counter(k).Inc()
}

func (m *Metrics) streamError(x *Exchange) {
	m.poolCounter(x.Pool, "switchyard_stream_errors_total", func(ps *poolSeries) *atomic.Pointer[metrics.Counter] { return &ps.streamErrs })
}

func (m *Metrics) clientGone(x *Exchange) {
	m.poolCounter(x.Pool, "switchyard_client_disconnects_total", func(ps *poolSeries) *atomic.Pointer[metrics.Counter] { return &ps.clientGone })
}

// poolCounter increments the {model} counter name of pool p; slot picks its
// slot in the pool's block.
func (m *Metrics) poolCounter(p *router.Pool, name string, slot func(*poolSeries) *atomic.Pointer[metrics.Counter]) {
	k := seriesKey{name: name, l: [4]string{poolName(p)}}
	if ps := m.poolOf(p); ps != nil {
		m.counterSlot(slot(ps), &k).Inc()
		return
	}
	m.counter(k).Inc()
}

// reloaded records a load or reload attempt; g is the new generation on
// success, whose table of series handles it prepares.
func (m *Metrics) reloaded(ok bool, g *Generation) {
	result := "success"
	if !ok {
		result = "failure"
	}
	m.counter(seriesKey{name: "switchyard_config_reloads_total", l: [4]string{result}}).Inc()
	if ok {
		m.prepare(g)
	}
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

// watchGeneration registers the per-backend gauges (in flight, healthy, circuit state) of
// the current generation's backends; they read whichever generation is
// current when scraped.
func (m *Metrics) watchGeneration(s *Server) {
	m.watchedServer = s
	m.watchLoads(s)
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
		m.set.GetOrCreateGauge("switchyard_backend_circuit_state{backend="+q+"}", func() float64 {
			if u := lookup(); u != nil {
				return float64(u.State(time.Now()).Breaker)
			}
			return 0
		})
	}
}

// write writes the exposition: our families, then the Go runtime and process
// metrics, each family once with its HELP and TYPE lines before its samples.
func (m *Metrics) write(ctx *fasthttp.RequestCtx) {
	m.reloadMu.Lock()
	for _, f := range m.beforeWrite {
		f()
	}
	m.reloadMu.Unlock()
	var buf bytes.Buffer
	m.set.WritePrometheus(&buf)
	metrics.WriteProcessMetrics(&buf)
	ctx.Write(appendHelp(make([]byte, 0, buf.Len()+4096), buf.Bytes()))
}

// appendHelp appends the exposition in with help text filled into its bare
// "# HELP name" lines: the library writes them without text, which parsers
// read as no help at all. Our families get theirs; the Go runtime and
// process families a generic one.
func appendHelp(dst, in []byte) []byte {
	const help = "# HELP "
	for len(in) > 0 {
		line := in
		var rest []byte
		if i := bytes.IndexByte(in, '\n'); i >= 0 {
			line, rest = in[:i], in[i+1:]
		}
		in = rest
		dst = append(dst, line...)
		if name, ok := bytes.CutPrefix(line, []byte(help)); ok && len(name) > 0 && bytes.IndexByte(name, ' ') < 0 {
			dst = append(dst, ' ')
			switch f, ok := families[string(name)]; {
			case ok:
				dst = append(dst, f.help...)
			case stageHelpOf(name) != "": // a stage's family (StageMetrics)
				dst = append(dst, stageHelpOf(name)...)
			case bytes.HasPrefix(name, []byte("go_")):
				dst = append(dst, "Go runtime metric "...)
				dst = append(dst, name...)
				dst = append(dst, " (github.com/VictoriaMetrics/metrics)."...)
			default:
				dst = append(dst, "Process metric "...)
				dst = append(dst, name...)
				dst = append(dst, " (github.com/VictoriaMetrics/metrics)."...)
			}
		}
		dst = append(dst, '\n')
	}
	return dst
}
