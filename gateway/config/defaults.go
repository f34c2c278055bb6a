package config

import (
	"strings"
	"time"
)

// Defaults. A key given in the file keeps its value, even zero; a key left
// out gets the default.
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultMaxBodySize       = Size(4 << 20)
	DefaultReadTimeout       = Duration(60 * time.Second)
	DefaultIdleTimeout       = Duration(90 * time.Second)
	DefaultDrainTimeout      = Duration(30 * time.Second)
	DefaultWatchInterval     = Duration(2 * time.Second)
	DefaultCompressMinSize   = Size(1 << 10)
	DefaultMaxHeaderSize     = Size(8 << 10)
	DefaultLogLevel          = "info"
	DefaultBackendMaxConns   = 1024
	DefaultConnectTimeout    = Duration(2 * time.Second)
	DefaultFirstByteTimeout  = Duration(60 * time.Second)
	DefaultIdleStreamTimeout = Duration(60 * time.Second)
	DefaultTotalTimeout      = Duration(10 * time.Minute)
	DefaultFailureThreshold  = 3
	DefaultCooldown          = Duration(10 * time.Second)
	DefaultMaxCooldown       = Duration(5 * time.Minute)
	DefaultMaxEjectedPercent = 50
	DefaultHalfOpenRequests  = 1
	DefaultLatencyMin        = Duration(100 * time.Millisecond)
	DefaultLatencyMinSamples = 5
	DefaultHealthPath        = "/health"
	DefaultKServeHealthPath  = "/v2/health/ready" // kind kserve
	DefaultHealthInterval    = Duration(5 * time.Second)
	DefaultHealthTimeout     = Duration(2 * time.Second)
	DefaultMetricsPath       = "/metrics"
	DefaultMetricsInterval   = Duration(100 * time.Millisecond)
	DefaultMetricsTimeoutMax = Duration(time.Second) // the default timeout is the interval, at most this
	MinMetricsInterval       = Duration(10 * time.Millisecond)
	DefaultRetryAttempts     = 2
	DefaultRetryBudget       = 0.2
	DefaultRetryMinPerSecond = 5
	DefaultRouteName         = "default"

	// inference_aware and consistent_hash (Routing).
	DefaultWeightQueue    = 2.0
	DefaultWeightKV       = 2.0
	DefaultWeightPrefix   = 3.0
	DefaultSaturatedQueue = 128.0
	DefaultSaturatedKV    = 0.95
	DefaultReplicas       = 100
)

// given says whether the key at path was set: present in the parsed file,
// or, for a Config built in Go, non-zero.
func (c *Config) given(path string, zero bool) bool {
	if !zero {
		return true
	}
	_, ok := c.pos[path]
	return ok
}

// posOf returns the position of path, or of its nearest ancestor that was
// in the file.
func (c *Config) posOf(path string) pos {
	for path != "" {
		if p, ok := c.pos[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return pos{}
}

func (c *Config) defString(path string, v *string, def string) {
	if !c.given(path, *v == "") {
		*v = def
	}
}

func (c *Config) defInt(path string, v *int, def int) {
	if !c.given(path, *v == 0) {
		*v = def
	}
}

func (c *Config) defFloat(path string, v *float64, def float64) {
	if !c.given(path, *v == 0) {
		*v = def
	}
}

func (c *Config) defDur(path string, v *Duration, def Duration) {
	if !c.given(path, *v == 0) {
		*v = def
	}
}

func (c *Config) defSize(path string, v *Size, def Size) {
	if !c.given(path, *v == 0) {
		*v = def
	}
}

// SetDefaults fills in every key left out. It is idempotent, and Parse and
// Load call it; call it yourself on a Config built in Go, where zero values
// count as left out.
func (c *Config) SetDefaults() {
	c.defString("listen", &c.Listen, DefaultListen)

	s := &c.Server
	c.defSize("server.max_body_size", &s.MaxBodySize, DefaultMaxBodySize)
	c.defDur("server.read_timeout", &s.ReadTimeout, DefaultReadTimeout)
	c.defDur("server.idle_timeout", &s.IdleTimeout, DefaultIdleTimeout)
	c.defDur("server.drain_timeout", &s.DrainTimeout, DefaultDrainTimeout)
	c.defDur("server.watch_interval", &s.WatchInterval, DefaultWatchInterval)
	c.defSize("server.max_header_size", &s.MaxHeaderSize, DefaultMaxHeaderSize)
	if s.PublicMetrics == nil {
		public := len(c.Keys) == 0
		s.PublicMetrics = &public
	}
	if s.Compression.Enabled == nil {
		on := true
		s.Compression.Enabled = &on
	}
	c.defSize("server.compression.min_size", &s.Compression.MinSize, DefaultCompressMinSize)

	c.defString("log.level", &c.Log.Level, DefaultLogLevel)

	for i := range c.Backends {
		b := &c.Backends[i]
		p := indexPath("backends", i)
		c.defString(p+".kind", &b.Kind, KindOpenAI)
		c.defInt(p+".max_conns", &b.MaxConns, DefaultBackendMaxConns)
		t := &b.Timeouts
		c.defDur(p+".timeouts.connect", &t.Connect, DefaultConnectTimeout)
		c.defDur(p+".timeouts.first_byte", &t.FirstByte, DefaultFirstByteTimeout)
		c.defDur(p+".timeouts.idle", &t.Idle, DefaultIdleStreamTimeout)
		c.defDur(p+".timeouts.total", &t.Total, DefaultTotalTimeout)
		h := &b.Health
		c.defInt(p+".health.failure_threshold", &h.FailureThreshold, DefaultFailureThreshold)
		c.defDur(p+".health.cooldown", &h.Cooldown, DefaultCooldown)
		c.defDur(p+".health.max_cooldown", &h.MaxCooldown, max(DefaultMaxCooldown, h.Cooldown))
		c.defInt(p+".health.max_ejected_percent", &h.MaxEjectedPercent, DefaultMaxEjectedPercent)
		c.defInt(p+".health.half_open_requests", &h.HalfOpenRequests, DefaultHalfOpenRequests)
		c.defDur(p+".health.latency_min", &h.LatencyMin, DefaultLatencyMin)
		c.defInt(p+".health.latency_min_samples", &h.LatencyMinSamples, DefaultLatencyMinSamples)
		if a := h.Active; a != nil {
			if b.Kind == KindKServe {
				c.defString(p+".health.active.path", &a.Path, DefaultKServeHealthPath)
			} else {
				c.defString(p+".health.active.path", &a.Path, DefaultHealthPath)
			}
			c.defDur(p+".health.active.interval", &a.Interval, DefaultHealthInterval)
			c.defDur(p+".health.active.timeout", &a.Timeout, DefaultHealthTimeout)
		}
		if m := b.Metrics; m != nil {
			c.defString(p+".metrics.path", &m.Path, DefaultMetricsPath)
			c.defDur(p+".metrics.interval", &m.Interval, DefaultMetricsInterval)
			timeout := DefaultMetricsTimeoutMax
			if m.Interval > 0 {
				timeout = min(m.Interval, timeout)
			}
			c.defDur(p+".metrics.timeout", &m.Timeout, timeout)
			if b.Kind == KindKServe {
				c.defString(p+".metrics.kind", &m.Kind, MetricsKindTriton)
			} else {
				c.defString(p+".metrics.kind", &m.Kind, MetricsKindVLLM)
			}
		}
	}

	for i := range c.Models {
		m := &c.Models[i]
		p := indexPath("models", i)
		c.defString(p+".strategy", &m.Strategy, StrategyRoundRobin)
		// The routing block's defaults apply to the strategies that read
		// it; the others keep it empty (and out of the effective config).
		rt := &m.Routing
		switch m.Strategy {
		case StrategyInferenceAware:
			c.defFloat(p+".routing.weights.queue", &rt.Weights.Queue, DefaultWeightQueue)
			c.defFloat(p+".routing.weights.kv", &rt.Weights.KV, DefaultWeightKV)
			c.defFloat(p+".routing.weights.prefix", &rt.Weights.Prefix, DefaultWeightPrefix)
			c.defFloat(p+".routing.saturation.queue", &rt.Saturation.Queue, DefaultSaturatedQueue)
			c.defFloat(p+".routing.saturation.kv", &rt.Saturation.KV, DefaultSaturatedKV)
		case StrategyConsistentHash:
			c.defInt(p+".routing.replicas", &rt.Replicas, DefaultReplicas)
		}
		if b := m.Batching; b != nil {
			bp := p + ".batching"
			c.defInt(bp+".max_batch_size", &b.MaxBatchSize, DefaultBatchSize)
			c.defInt(bp+".queue_size", &b.QueueSize, DefaultBatchQueueSize)
			c.defInt(bp+".priority_levels", &b.PriorityLevels, 1)
			c.defInt(bp+".default_priority", &b.DefaultPriority, (b.PriorityLevels+1)/2)
			c.defInt(bp+".max_in_flight", &b.MaxInFlight, DefaultBatchInFlight*max(len(m.Targets), 1))
		}
		for j := range m.Targets {
			t := &m.Targets[j]
			tp := indexPath(p+".targets", j)
			c.defString(tp+".model", &t.Model, m.Name)
			c.defInt(tp+".weight", &t.Weight, 1)
		}
		r := &m.Retry
		c.defInt(p+".retry.attempts", &r.Attempts, DefaultRetryAttempts)
		if !c.given(p+".retry.budget", r.Budget == 0) {
			r.Budget = DefaultRetryBudget
		}
		c.defInt(p+".retry.min_per_second", &r.MinPerSecond, DefaultRetryMinPerSecond)
	}

	if len(c.Routes) == 0 {
		c.Routes = []Route{{Name: DefaultRouteName}}
	}

	for i := range c.Keys {
		c.Keys[i].SHA256 = strings.ToLower(c.Keys[i].SHA256)
	}
	for i := range c.Tenants {
		c.defString(indexPath("tenants", i)+".budget.period", &c.Tenants[i].Budget.Period, PeriodMonth)
	}
	for i := range c.Keys {
		c.defString(indexPath("keys", i)+".budget.period", &c.Keys[i].Budget.Period, PeriodMonth)
	}
	c.defString("data_dir", &c.DataDir, DefaultDataDir)
	c.collectionDefaults()
	c.toolDefaults()
	c.defDur("store.key_sync", &c.Store.KeySync, DefaultKeySync)
	r := &c.RateLimit
	c.defString("ratelimit.backend", &r.Backend, RateLimitLocal)
	c.defString("ratelimit.on_redis_error", &r.OnRedisError, DefaultOnRedisError)
	if !c.given("ratelimit.reserve_max_tokens", r.ReserveMaxTokens == 0) {
		r.ReserveMaxTokens = DefaultReserveMaxTokens
	}
	c.defInt("admission.queue", &c.Admission.Queue, DefaultQueueSize)
	c.defDur("admission.wait.critical", &c.Admission.Wait.Critical, DefaultWaitCritical)
	c.defDur("admission.wait.standard", &c.Admission.Wait.Standard, DefaultWaitStandard)
}
