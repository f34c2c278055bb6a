package main

import (
	"math"
	"slices"
	"time"
)

// Paths: where the load generator sends its requests.
const (
	PathDirect     = "direct"     // the simulator itself
	PathSwitchyard = "switchyard" // the gateway with a pass-through config
	PathNginx      = "nginx"      // nginx as a plain reverse proxy
	// PathAdmission is the gateway with admission on: a key of a tenant,
	// with request, token and concurrency limits on the key, the tenant and
	// the model pool (the local limiter, three buckets), never reached.
	PathAdmission = "switchyard+admission"
	// PathCacheHit is the gateway with the cache stage (exact), the load
	// repeating one prompt: every request after the first is a hit.
	PathCacheHit = "switchyard+cache-hit"
	// PathGuard is the gateway with the guard stage: the default policy
	// library (policy/rego) on every request and answer, streams through
	// the output window.
	PathGuard = "switchyard+guard"
	// PathRetrieval is the gateway with the retrieval stage: every chat
	// request searched (hybrid, top 4) in a collection ingested at the
	// gateway's start, the sources put in a system message upstream.
	PathRetrieval = "switchyard+retrieval"
)

// Scenarios, as loadtest names them.
const (
	ScenarioChat   = "chat"
	ScenarioStream = "stream"
)

// Sample is one measured run of one point. Latencies are in microseconds.
type Sample struct {
	P50US     float64 `json:"p50_us"`
	P99US     float64 `json:"p99_us"`
	TTFTP50US float64 `json:"ttft_p50_us,omitempty"`
	TTFTP99US float64 `json:"ttft_p99_us,omitempty"`
	// Throughput is successes completed within the measured window per second.
	Throughput float64 `json:"throughput"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	// ErrorKinds counts failures by loadtest's reason.
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	// ProxyCPUUS is the proxy's CPU time (utime+stime, all its processes)
	// over the measured run divided by the requests sent; 0 for direct.
	ProxyCPUUS float64 `json:"proxy_cpu_us_per_req"`
	// UpstreamCPUUS is the same for the simulator.
	UpstreamCPUUS float64 `json:"upstream_cpu_us_per_req"`
	// ProxyBusy is the proxy's CPU time over the measured run's wall time
	// (1 = one CPU fully busy); LoadBusy the same for the simulator plus the
	// load generator, which share one CPU when pinned.
	ProxyBusy float64 `json:"proxy_busy"`
	LoadBusy  float64 `json:"load_busy"`
	// PromptTokens is the prompt tokens per successful request, as the
	// upstream counted them in its usage: longer than the load's own
	// prompts where a stage adds to them (retrieval).
	PromptTokens float64 `json:"prompt_tokens_per_req,omitempty"`
	// Retrieval is what the retrieval stage reported on its /metrics over
	// the measured run (the retrieval path only).
	Retrieval *RetrievalSample `json:"retrieval,omitempty"`
}

// RetrievalSample is the retrieval stage's own count of one measured run:
// the deltas of switchyard_retrieval_requests_total and
// switchyard_retrieval_seconds over it.
type RetrievalSample struct {
	// Hits, Empty and Errors count the requests searched by result.
	Hits   int64 `json:"hits"`
	Empty  int64 `json:"empty"`
	Errors int64 `json:"errors"`
	// SearchUS is the mean time per search in µs (the stage's histogram:
	// wall time around the search, not CPU).
	SearchUS float64 `json:"search_us"`
}

// Point is one (scenario, path, load) cell and its repeated samples.
type Point struct {
	Scenario    string   `json:"scenario"`
	Path        string   `json:"path"`
	Mode        string   `json:"mode"` // open or closed
	Rate        float64  `json:"rate,omitempty"`
	Concurrency int      `json:"concurrency,omitempty"`
	Samples     []Sample `json:"samples"`
}

// Agg is the median over a Point's samples, with the range of the main
// figures and the errors summed over all samples.
type Agg struct {
	N                     int
	P50, P99              float64
	P50Min, P50Max        float64
	P99Min, P99Max        float64
	TTFTP50, TTFTP99      float64
	TTFTMin, TTFTMax      float64 // range of TTFTP50
	Throughput            float64
	ThroughputMin, ThrMax float64
	ProxyCPU, UpstreamCPU float64
	ProxyBusy, LoadBusy   float64
	CPUMin, CPUMax        float64
	Requests, Errors      int64
	ErrorKinds            map[string]int64
	// PromptTokens is the median of the samples' prompt tokens per request.
	PromptTokens float64
	// SearchUS is the median of the retrieval samples' mean search time
	// (NaN without any); Retrieved sums their counts, over RetrievalRuns
	// samples (those with the stage's figures).
	SearchUS      float64
	Retrieved     RetrievalSample
	RetrievalRuns int
}

// Median returns the median of xs (the mean of the two middle values for an
// even count), or NaN for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Agg aggregates the point's samples.
func (p *Point) Agg() Agg {
	a := Agg{N: len(p.Samples)}
	col := func(f func(Sample) float64) (med, lo, hi float64) {
		xs := make([]float64, len(p.Samples))
		for i, s := range p.Samples {
			xs[i] = f(s)
		}
		if len(xs) == 0 {
			return math.NaN(), math.NaN(), math.NaN()
		}
		return Median(xs), slices.Min(xs), slices.Max(xs)
	}
	a.P50, a.P50Min, a.P50Max = col(func(s Sample) float64 { return s.P50US })
	a.P99, a.P99Min, a.P99Max = col(func(s Sample) float64 { return s.P99US })
	a.TTFTP50, a.TTFTMin, a.TTFTMax = col(func(s Sample) float64 { return s.TTFTP50US })
	a.TTFTP99, _, _ = col(func(s Sample) float64 { return s.TTFTP99US })
	a.Throughput, a.ThroughputMin, a.ThrMax = col(func(s Sample) float64 { return s.Throughput })
	a.ProxyCPU, a.CPUMin, a.CPUMax = col(func(s Sample) float64 { return s.ProxyCPUUS })
	a.UpstreamCPU, _, _ = col(func(s Sample) float64 { return s.UpstreamCPUUS })
	a.ProxyBusy, _, _ = col(func(s Sample) float64 { return s.ProxyBusy })
	a.LoadBusy, _, _ = col(func(s Sample) float64 { return s.LoadBusy })
	a.PromptTokens, _, _ = col(func(s Sample) float64 { return s.PromptTokens })
	var search []float64
	for _, s := range p.Samples {
		if rs := s.Retrieval; rs != nil {
			search = append(search, rs.SearchUS)
			a.RetrievalRuns++
			a.Retrieved.Hits += rs.Hits
			a.Retrieved.Empty += rs.Empty
			a.Retrieved.Errors += rs.Errors
		}
	}
	a.SearchUS = Median(search)
	for _, s := range p.Samples {
		a.Requests += s.Requests
		a.Errors += s.Errors
		for k, v := range s.ErrorKinds {
			if a.ErrorKinds == nil {
				a.ErrorKinds = make(map[string]int64)
			}
			a.ErrorKinds[k] += v
		}
	}
	return a
}

// Memory holds the resident-memory figures, in KiB.
type Memory struct {
	// IdleKB is the gateway's VmRSS after start and one readiness request.
	IdleKB uint64 `json:"idle_kb"`
	// PeakKB is the gateway's VmHWM after every open- and closed-loop run.
	PeakKB uint64 `json:"peak_kb"`
	// Streams is the number of concurrent streams opened through a fresh
	// gateway; StreamsIdleKB its VmRSS before them, StreamsRSSKB the largest
	// VmRSS sampled while they were open and StreamsHWMKB its VmHWM after.
	Streams           int              `json:"streams"`
	StreamLen         string           `json:"stream_len"`
	StreamsIdleKB     uint64           `json:"streams_idle_kb"`
	StreamsRSSKB      uint64           `json:"streams_rss_kb"`
	StreamsHWMKB      uint64           `json:"streams_hwm_kb"`
	StreamsOK         int64            `json:"streams_ok"`
	StreamsErrors     int64            `json:"streams_errors"`
	StreamsTTFTMax    float64          `json:"streams_ttft_max_ms"`
	StreamsErrorKinds map[string]int64 `json:"streams_error_kinds,omitempty"`
	// NginxIdleKB and NginxPeakKB are nginx's master plus worker VmRSS
	// before the load and VmHWM after it; 0 without nginx.
	NginxIdleKB uint64 `json:"nginx_idle_kb,omitempty"`
	NginxPeakKB uint64 `json:"nginx_peak_kb,omitempty"`
}

// Settings are the run's parameters.
type Settings struct {
	Rates          []float64     `json:"rates"`
	Duration       time.Duration `json:"duration"`
	Warmup         time.Duration `json:"warmup"`
	ClosedDuration time.Duration `json:"closed_duration"`
	Repeats        int           `json:"repeats"`
	Concurrency    int           `json:"concurrency"`
	PromptTokens   int           `json:"prompt_tokens"`
	OutputTokens   int           `json:"output_tokens"`
	StreamTokens   int           `json:"stream_tokens"`
}

// Results is everything one harness run produced.
type Results struct {
	Date       time.Time     `json:"date"`
	Command    string        `json:"command"`
	NProc      int           `json:"nproc"`
	CPUModel   string        `json:"cpu_model"`
	GoVersion  string        `json:"go_version"`
	Kernel     string        `json:"kernel"`
	Pinning    string        `json:"pinning"`
	LoadBefore string        `json:"loadavg_before"`
	LoadAfter  string        `json:"loadavg_after"`
	Elapsed    time.Duration `json:"elapsed"`
	// Nginx is nginx's version, or empty when it was not run; NginxNote says why.
	Nginx     string `json:"nginx,omitempty"`
	NginxNote string `json:"nginx_note,omitempty"`
	// Admission is set when the admission path was measured.
	Admission bool `json:"admission,omitempty"`
	// CacheHit is set when the cache-hit path was measured.
	CacheHit bool `json:"cache_hit,omitempty"`
	// Guard is set when the guard path was measured.
	Guard bool `json:"guard,omitempty"`
	// Retrieval is set when the retrieval path was measured;
	// RetrievalCorpus says what its collection held.
	Retrieval       bool             `json:"retrieval,omitempty"`
	RetrievalCorpus *RetrievalCorpus `json:"retrieval_corpus,omitempty"`
	Settings        Settings         `json:"settings"`
	Points          []*Point         `json:"points"`
	Memory          Memory           `json:"memory"`
	// Micro holds the stage benchmarks (go test -bench) of the run.
	Micro []Micro `json:"micro,omitempty"`
	// Routing is the routing comparison, when it was run.
	Routing *RoutingResults `json:"routing,omitempty"`
	// Notes are extra remarks printed at the end (gateway errors, noise).
	Notes []string `json:"notes,omitempty"`
}

// RetrievalCorpus is the retrieval path's collection, as its gateway
// logged the sync of its sources at start.
type RetrievalCorpus struct {
	// Source is the sources' path, relative to the module root.
	Source string `json:"source"`
	// Files and Chunks are the documents and chunks ingested; Took how
	// long the sync took (the gateway was ready after it).
	Files  int           `json:"files"`
	Chunks int           `json:"chunks"`
	Took   time.Duration `json:"took"`
}

// Find returns the point with these keys, or nil. rate is ignored for the
// closed loop.
func (r *Results) Find(scenario, path, mode string, rate float64) *Point {
	for _, p := range r.Points {
		if p.Scenario == scenario && p.Path == path && p.Mode == mode && (mode == "closed" || p.Rate == rate) {
			return p
		}
	}
	return nil
}

// point returns the point with these keys, adding it when missing.
func (r *Results) point(scenario, path, mode string, rate float64, conc int) *Point {
	if p := r.Find(scenario, path, mode, rate); p != nil {
		return p
	}
	p := &Point{Scenario: scenario, Path: path, Mode: mode, Rate: rate, Concurrency: conc}
	r.Points = append(r.Points, p)
	return p
}

// Paths returns the paths measured, in display order.
func (r *Results) Paths() []string {
	paths := []string{PathDirect, PathSwitchyard}
	if r.Admission {
		paths = append(paths, PathAdmission)
	}
	if r.CacheHit {
		paths = append(paths, PathCacheHit)
	}
	if r.Guard {
		paths = append(paths, PathGuard)
	}
	if r.Retrieval {
		paths = append(paths, PathRetrieval)
	}
	if r.Nginx != "" {
		paths = append(paths, PathNginx)
	}
	return paths
}
