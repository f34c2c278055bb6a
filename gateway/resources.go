package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"switchyard/internal/respool"
)

// This file is what a generation gives its stages beyond a logger: a
// context cancelled when the generation closes, a lease on the server-wide
// resource pool (state that survives reloads whose settings did not
// change), and metric registration. See "Keeping state across reloads" in
// docs/stages.md.

// defaultResources is the resource pool of generations built without
// BuildOptions.Resources: every such generation in the process shares it,
// so resources survive reloads even for callers that do not own a pool.
var defaultResources = respool.New()

// stageShared is what all stages of one generation share: the generation's
// context, its lease on the resource pool and the metric set they register
// in. The generation cancels the context and releases the lease in Close,
// after its stages' Close, so a stage may still use its resources while it
// closes (a batch queue flushing into a client, say).
type stageShared struct {
	ctx    context.Context
	cancel context.CancelFunc
	lease  *respool.Lease
	set    *metrics.Set
}

func newStageShared(o BuildOptions) stageShared {
	pool := o.Resources
	if pool == nil {
		pool = defaultResources
	}
	// The server's set, shared by its generations, so a stage's series keep
	// counting across reloads and are written to /metrics; a generation
	// built without Metrics (validation, tests) registers in its own set.
	set := metrics.NewSet()
	if o.Metrics != nil {
		set = o.Metrics.set
	}
	ctx, cancel := context.WithCancel(context.Background())
	return stageShared{ctx: ctx, cancel: cancel, lease: pool.Lease(), set: set}
}

// cancelContext cancels the generation's context (a zero stageShared, of a
// generation not made by Build, has none).
func (s *stageShared) cancelContext() {
	if s.cancel != nil {
		s.cancel()
	}
}

// release gives back every resource use of the generation, closing those
// no newer generation shares.
func (s *stageShared) release() error {
	if s.lease == nil {
		return nil
	}
	return s.lease.Release()
}

// env returns the environment of one stage.
func (s *stageShared) env(e Env) *Env {
	e.Resources = s.lease
	e.Metrics = &StageMetrics{set: s.set}
	e.ctx = s.ctx
	return &e
}

// Context returns a context that is cancelled when the stage's generation
// closes, after its last request: the parent of the stage's own workers.
// Requests have their own contexts; do not use this one for them.
func (e *Env) Context() context.Context {
	if e.ctx == nil {
		return context.Background()
	}
	return e.ctx
}

// Resource returns the value under key in the server's resource pool,
// constructing it with newFn when the pool has none, and holds it for the
// stage's generation: the value lives as long as some generation asking for
// the same key does, and is closed (if it implements io.Closer) when the
// last of them closes. So a limiter, cache, queue, index or client asked for
// under a key built from its settings (respool.Key(kind, settings)) keeps
// its state across every reload that leaves its settings unchanged, and a
// changed setting gets a new value while the old one serves the old
// generation until it retires.
//
// The value is shared by generations and their requests: it must be safe
// for concurrent use, and must not keep anything of one generation (its
// logger, context or metrics are the first generation's). Include in the
// key everything newFn reads. newFn's error is returned, not kept.
func Resource[T any](env *Env, key string, newFn func() (T, error)) (T, error) {
	if env.Resources == nil {
		// An Env not made by Build (a stage's unit test): nothing to share
		// with, and nothing closes the value.
		return newFn()
	}
	v, err := respool.Get(env.Resources, key, newFn)
	if err != nil {
		return v, fmt.Errorf("resource %q: %w", key, err)
	}
	return v, nil
}

// StageMetrics registers a stage's series in the server's metric set, at
// Provision. Registration is get-or-create: the same name asked for by
// successive generations (or by several routes using the stage) returns the
// same series, so counters keep counting across reloads. A name must be a
// valid Prometheus series name with optional labels (for instance
// switchyard_cache_hits_total{route="support"}); label values must be
// bounded (routes, models, kinds; never keys, users or prompts). The
// gateway's own families are not a stage's to register. A bad name, or a
// name registered before as another type, is reported as the stage's
// provisioning error, and the handle returned then is a working one that
// is not exported.
type StageMetrics struct {
	set *metrics.Set
	mu  sync.Mutex
	err error
}

// stageHelp holds the help texts of the families stages register, by
// family name (string to string), for /metrics.
var stageHelp sync.Map

// stageHelpOf returns the help text a stage gave family name, or "".
func stageHelpOf(name []byte) string {
	if h, ok := stageHelp.Load(string(name)); ok {
		return h.(string)
	}
	return ""
}

// Counter returns the counter series name, with help the help text of its
// family.
func (m *StageMetrics) Counter(name, help string) *metrics.Counter {
	var c *metrics.Counter
	if !m.register(name, help, func(s *metrics.Set) { c = s.GetOrCreateCounter(name) }) {
		c = new(metrics.Counter)
	}
	return c
}

// Gauge returns the gauge series name, whose value the stage sets (Set,
// Inc, Dec, Add). Successive generations share it; a gauge of a shared
// resource (a queue's depth) is best set by the resource itself.
func (m *StageMetrics) Gauge(name, help string) *metrics.Gauge {
	var g *metrics.Gauge
	if !m.register(name, help, func(s *metrics.Set) { g = s.GetOrCreateGauge(name, nil) }) {
		g = new(metrics.Gauge)
	}
	return g
}

// Histogram returns the histogram series name, with Prometheus buckets
// (le labels); nil buckets are the gateway's latency buckets (100us to 60s,
// in seconds). A histogram registered before keeps its first buckets.
func (m *StageMetrics) Histogram(name, help string, buckets []float64) *metrics.PrometheusHistogram {
	if buckets == nil {
		buckets = latencyBuckets
	}
	var h *metrics.PrometheusHistogram
	if !m.register(name, help, func(s *metrics.Set) { h = s.GetOrCreatePrometheusHistogramExt(name, buckets) }) {
		h = metrics.NewSet().NewPrometheusHistogramExt("detached", buckets)
	}
	return h
}

// Err returns the first registration error, for the registry to report
// after Provision.
func (m *StageMetrics) Err() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// register runs create, recording its panic (the library panics on bad
// names and type clashes) as the stage's error. It reports success.
func (m *StageMetrics) register(name, help string, create func(*metrics.Set)) (ok bool) {
	if m == nil || m.set == nil { // an Env not made by Build: nothing exports
		return false
	}
	fam, _, _ := strings.Cut(name, "{")
	if _, ours := families[fam]; ours {
		m.fail(fmt.Errorf("metric %q: %s is a gateway family, not a stage's", name, fam))
		return false
	}
	if err := metrics.ValidateMetric(name); err != nil {
		m.fail(fmt.Errorf("metric %q: %w", name, err))
		return false
	}
	defer func() {
		if r := recover(); r != nil {
			m.fail(fmt.Errorf("metric %q: %v", name, r))
			ok = false
		}
	}()
	create(m.set)
	if help != "" {
		stageHelp.Store(fam, help)
	}
	return true
}

func (m *StageMetrics) fail(err error) {
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.mu.Unlock()
}
