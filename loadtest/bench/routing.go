package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"switchyard/loadtest"
)

// The routing comparison (--routing, and part of the full run): one gateway
// per strategy, each with the same four embedded simulators of unequal
// speed, prefix caching on and a KV cache too small for every tenant's
// context; the multi-tenant shared-prefix load at several rates and a
// control load of random prompts, strategies interleaved, medians of the
// repeats. See loadtest/bench/README.md, "Routing", for the tuning.

// Routing scenarios.
const (
	RoutingShared  = "shared"  // the multi-tenant shared-prefix scenario
	RoutingControl = "control" // random prompts, nothing shared
)

// routingModel is the pool's public name and the simulators' model.
const routingModel = "sim-chat"

// RoutingSetup is everything that shapes the routing comparison. Its
// defaults are the tuned regime (README, "Routing").
type RoutingSetup struct {
	Strategies []string `json:"strategies"`
	// Speeds are the four simulators' relative speeds; TimeScale multiplies
	// every one of them, so simulated time passes faster while the pool's
	// shape stays the same.
	Speeds    []float64 `json:"speeds"`
	TimeScale float64   `json:"time_scale"`
	// The simulators' flags, the same for all four.
	KVBlocks        int    `json:"kv_blocks"`
	BlockSize       int    `json:"block_size"`
	MaxNumSeqs      int    `json:"max_num_seqs"`
	PrefillPerToken string `json:"prefill_per_token"`
	ITL             string `json:"itl"`
	ITLPerSeq       string `json:"itl_per_seq"`
	// The shared-prefix scenario: tenants, each tenant's context (words,
	// about 1.5 simulator tokens each), users per tenant, the question.
	Tenants        int    `json:"tenants"`
	ContextWords   int    `json:"context_words"`
	Users          int    `json:"users"`
	QuestionTokens string `json:"question_tokens"`
	// ControlPromptTokens is the control scenario's prompt distribution.
	ControlPromptTokens string `json:"control_prompt_tokens"`
	OutputTokens        int    `json:"output_tokens"`
	// Rates of each scenario, requests per second.
	Rates        []float64     `json:"rates"`
	ControlRates []float64     `json:"control_rates"`
	Duration     time.Duration `json:"duration"`
	Warmup       time.Duration `json:"warmup"`
	Repeats      int           `json:"repeats"`
	// Scrape is how often the gateway scrapes each simulator's /metrics
	// (vLLM names), the queues and KV-cache use inference_aware scores on;
	// every strategy's gateway scrapes alike. 0: no scraping.
	Scrape time.Duration `json:"scrape,omitempty"`
	// PoolYAML is added to every strategy's pool as given (flow-style YAML
	// mapping entries, e.g. `routing: {session: {by: user}}`), to tune a
	// strategy; the strategies that do not read a key ignore it. Empty:
	// the defaults.
	PoolYAML string `json:"pool_yaml,omitempty"`
}

// defaultRoutingSetup is the tuned regime.
func defaultRoutingSetup() RoutingSetup {
	return RoutingSetup{
		Strategies:          []string{"round_robin", "least_outstanding", "inference_aware"},
		Speeds:              []float64{1, 1, 0.75, 0.5},
		TimeScale:           2,
		KVBlocks:            1200,
		BlockSize:           16,
		MaxNumSeqs:          64,
		PrefillPerToken:     "50us",
		ITL:                 "10ms",
		ITLPerSeq:           "200us",
		Tenants:             16,
		ContextWords:        2000,
		Users:               4,
		QuestionTokens:      "uniform:32-96",
		ControlPromptTokens: "uniform:200-600",
		OutputTokens:        64,
		Rates:               []float64{15, 30, 45},
		ControlRates:        []float64{30, 45},
		Duration:            4 * time.Second,
		Warmup:              3 * time.Second,
		Repeats:             3,
		Scrape:              100 * time.Millisecond,
	}
}

// validate checks s.
func (s RoutingSetup) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(s.Strategies) == 0 {
		bad("--routing-strategies: at least one strategy")
	}
	for _, st := range s.Strategies {
		if st == "" || strings.Trim(st, "abcdefghijklmnopqrstuvwxyz_") != "" {
			bad("--routing-strategies: %q is not a strategy name", st)
		}
	}
	if seen := slices.Compact(slices.Sorted(slices.Values(s.Strategies))); len(seen) != len(s.Strategies) {
		bad("--routing-strategies: a strategy is named twice")
	}
	if len(s.Speeds) == 0 {
		bad("routing: no simulators")
	}
	for _, v := range s.Speeds {
		if !(v > 0) {
			bad("routing: speed %g must be positive", v)
		}
	}
	if !(s.TimeScale > 0 && s.TimeScale <= 100) {
		bad("--routing-time-scale %g: want (0, 100]", s.TimeScale)
	}
	if s.KVBlocks < 1 || s.BlockSize < 1 || s.MaxNumSeqs < 1 {
		bad("--routing-kv-blocks %d, block size %d, max-num-seqs %d: must be positive", s.KVBlocks, s.BlockSize, s.MaxNumSeqs)
	}
	if s.Tenants < 1 || s.ContextWords < 1 || s.Users < 1 || s.OutputTokens < 1 {
		bad("--routing-tenants %d, --routing-context-words %d, users %d, output tokens %d: must be positive", s.Tenants, s.ContextWords, s.Users, s.OutputTokens)
	}
	if s.Duration <= 0 || s.Warmup < 0 {
		bad("--routing-duration %v must be positive, --routing-warmup %v not negative", s.Duration, s.Warmup)
	}
	if s.Scrape < 0 || (s.Scrape > 0 && s.Scrape < 10*time.Millisecond) {
		bad("--routing-scrape %v: 0 (off) or at least 10ms", s.Scrape)
	}
	if s.Repeats < 1 || s.Repeats > 20 {
		bad("--routing-repeats %d: want 1 to 20", s.Repeats)
	}
	if len(s.Rates) == 0 {
		bad("--routing-rates: at least one rate")
	}
	// The load configs must be valid; checked on a sample of each scenario.
	for _, sc := range []string{RoutingShared, RoutingControl} {
		rates := s.Rates
		if sc == RoutingControl {
			rates = s.ControlRates
		}
		if len(rates) == 0 {
			continue
		}
		cfg, err := s.loadConfig("http://127.0.0.1:1", sc, rates[0], 1)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			bad("routing %s load: %v", sc, err)
		}
	}
	return errors.Join(errs...)
}

// loadConfig is the load of one point: streamed chat (so TTFT is measured)
// at rate, open loop, with the warm-up in the same run so that it warms the
// caches with the very contexts that are then measured.
func (s RoutingSetup) loadConfig(url, scenario string, rate float64, seed int64) (loadtest.Config, error) {
	cfg := loadtest.Config{
		URL: url, Model: routingModel, Scenario: loadtest.ScenarioStream,
		Mode: loadtest.ModeOpen, Rate: rate, Duration: s.Duration, Warmup: s.Warmup,
		OutputTokens: loadtest.Fixed(s.OutputTokens), IgnoreEOS: true,
		Seed: seed, Timeout: 30 * time.Second, MaxInflight: 4096,
	}
	var err error
	switch scenario {
	case RoutingShared:
		cfg.PrefixTenants, cfg.PrefixTokens, cfg.PrefixUsers = s.Tenants, s.ContextWords, s.Users
		cfg.PromptTokens, err = loadtest.ParseDist(s.QuestionTokens)
	case RoutingControl:
		cfg.PromptTokens, err = loadtest.ParseDist(s.ControlPromptTokens)
	default:
		err = fmt.Errorf("unknown routing scenario %q", scenario)
	}
	return cfg, err
}

// routingConfig is the gateway config of one strategy: the four simulators
// embedded as backends and one pool over them.
func routingConfig(s RoutingSetup, strategy, listen string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Generated by loadtest/bench: the routing comparison, strategy %s.
listen: %s
log:
  level: warn
  requests: false
server:
  compression:
    enabled: false
  watch_interval: 0
backends:
`, strategy, listen)
	for i, speed := range s.Speeds {
		fmt.Fprintf(&b, `  - name: sim-%d
    kind: sim
    health:
      failure_threshold: 0
    sim:
      model: %s
      speed: %q
      kv-blocks: %q
      block-size: %q
      prefix-caching: "true"
      max-num-seqs: %q
      max-waiting: "4096"
      max-model-len: "32768"
      prefill-per-token: %s
      itl: %s
      itl-per-seq: %s
      seed: %q
%s`, i, routingModel, strconv.FormatFloat(speed*s.TimeScale, 'g', -1, 64), strconv.Itoa(s.KVBlocks), strconv.Itoa(s.BlockSize),
			strconv.Itoa(s.MaxNumSeqs), s.PrefillPerToken, s.ITL, s.ITLPerSeq, strconv.Itoa(i+1), scrapeYAML(s.Scrape))
	}
	fmt.Fprintf(&b, `models:
  - name: %s
    strategy: %s
    retry:
      attempts: 1
`, routingModel, strategy)
	for line := range strings.SplitSeq(strings.TrimSpace(s.PoolYAML), "\n") {
		if line = strings.TrimRight(line, " \t"); line != "" {
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	fmt.Fprintf(&b, "    targets:\n")
	for i := range s.Speeds {
		fmt.Fprintf(&b, "      - backend: sim-%d\n", i)
	}
	return b.String()
}

// scrapeYAML is a backend's metrics block, or nothing.
func scrapeYAML(every time.Duration) string {
	if every <= 0 {
		return ""
	}
	return fmt.Sprintf("    metrics:\n      path: /metrics\n      interval: %s\n      kind: vllm\n", every)
}

// RoutingResults are the routing comparison's outcome; BENCHMARKS.md's
// Routing section is rendered from them alone.
type RoutingResults struct {
	Date       time.Time       `json:"date"`
	Elapsed    time.Duration   `json:"elapsed"`
	Command    string          `json:"command"`
	NProc      int             `json:"nproc"`
	Pinning    string          `json:"pinning"`
	LoadBefore string          `json:"loadavg_before"`
	LoadAfter  string          `json:"loadavg_after"`
	Setup      RoutingSetup    `json:"setup"`
	Points     []*RoutingPoint `json:"points"`
	Notes      []string        `json:"notes,omitempty"`
}

// RoutingPoint is one (scenario, strategy, rate) cell and its samples.
type RoutingPoint struct {
	Scenario string          `json:"scenario"`
	Strategy string          `json:"strategy"`
	Rate     float64         `json:"rate"`
	Samples  []RoutingSample `json:"samples"`
}

// RoutingSample is one measured run. Times are in milliseconds.
type RoutingSample struct {
	TTFTP50 float64 `json:"ttft_p50_ms"`
	TTFTP90 float64 `json:"ttft_p90_ms"`
	TTFTP99 float64 `json:"ttft_p99_ms"`
	// OutputTPS is completion tokens completed within the window per second.
	OutputTPS float64 `json:"output_tokens_per_s"`
	// CachedShare is the prompt tokens the simulators served from their
	// prefix caches (usage cached_tokens) over all prompt tokens.
	CachedShare float64          `json:"cached_share"`
	Throughput  float64          `json:"throughput"`
	Requests    int64            `json:"requests"`
	Errors      int64            `json:"errors"`
	ErrorKinds  map[string]int64 `json:"error_kinds,omitempty"`
}

// RoutingAgg is the median of each figure over a point's samples.
type RoutingAgg struct {
	N                         int
	TTFTP50, TTFTP90, TTFTP99 float64
	P90Min, P90Max            float64
	OutputTPS, CachedShare    float64
	Requests, Errors          int64
	ErrorKinds                map[string]int64
}

// Agg aggregates p's samples.
func (p *RoutingPoint) Agg() RoutingAgg {
	a := RoutingAgg{N: len(p.Samples)}
	col := func(f func(RoutingSample) float64) float64 {
		xs := make([]float64, len(p.Samples))
		for i, s := range p.Samples {
			xs[i] = f(s)
		}
		return Median(xs)
	}
	a.TTFTP50 = col(func(s RoutingSample) float64 { return s.TTFTP50 })
	a.TTFTP90 = col(func(s RoutingSample) float64 { return s.TTFTP90 })
	a.TTFTP99 = col(func(s RoutingSample) float64 { return s.TTFTP99 })
	a.OutputTPS = col(func(s RoutingSample) float64 { return s.OutputTPS })
	a.CachedShare = col(func(s RoutingSample) float64 { return s.CachedShare })
	for i, s := range p.Samples {
		if i == 0 || s.TTFTP90 < a.P90Min {
			a.P90Min = s.TTFTP90
		}
		if i == 0 || s.TTFTP90 > a.P90Max {
			a.P90Max = s.TTFTP90
		}
		a.Requests += s.Requests
		a.Errors += s.Errors
		for k, n := range s.ErrorKinds {
			if a.ErrorKinds == nil {
				a.ErrorKinds = map[string]int64{}
			}
			a.ErrorKinds[k] += n
		}
	}
	return a
}

// Find returns the point with these keys, or nil.
func (r *RoutingResults) Find(scenario, strategy string, rate float64) *RoutingPoint {
	for _, p := range r.Points {
		if p.Scenario == scenario && p.Strategy == strategy && p.Rate == rate {
			return p
		}
	}
	return nil
}

func (r *RoutingResults) point(scenario, strategy string, rate float64) *RoutingPoint {
	if p := r.Find(scenario, strategy, rate); p != nil {
		return p
	}
	p := &RoutingPoint{Scenario: scenario, Strategy: strategy, Rate: rate}
	r.Points = append(r.Points, p)
	return p
}

// runRouting runs the routing comparison with e's binary and processes.
func (e *env) runRouting(ctx context.Context, s RoutingSetup, command string) (*RoutingResults, error) {
	began := time.Now()
	res := &RoutingResults{
		Date: began, Command: command, NProc: runtime.NumCPU(), LoadBefore: loadAvg(), Setup: s,
	}
	urls := map[string]string{}
	gws := map[string]*proc{}
	for _, st := range s.Strategies {
		name := "switchyard-routing-" + strings.ReplaceAll(st, "_", "-")
		p, addr, err := e.startGatewayWith(ctx, name, "", func(listen, _ string) string { return routingConfig(s, st, listen) })
		if err != nil {
			return nil, fmt.Errorf("starting the gateway for strategy %s: %w", st, err)
		}
		defer p.stop()
		gws[st], urls[st] = p, "http://"+addr
	}
	type load struct {
		scenario string
		rate     float64
		index    int
	}
	var loads []load
	for i, r := range s.Rates {
		loads = append(loads, load{RoutingShared, r, i})
	}
	for i, r := range s.ControlRates {
		loads = append(loads, load{RoutingControl, r, 100 + i})
	}
	for rep := 1; rep <= s.Repeats; rep++ {
		// Rotate the strategies from one repeat to the next, as the paths.
		order := append(slices.Clone(s.Strategies[rep%len(s.Strategies):]), s.Strategies[:rep%len(s.Strategies)]...)
		for _, l := range loads {
			// The same requests (seed) for every strategy of a repeat; other
			// contexts and questions in the next repeat.
			seed := int64(rep*1000 + l.index + 1)
			for _, st := range order {
				fmt.Fprintf(e.log, "bench: routing repeat %d/%d %s %s %g req/s\n", rep, s.Repeats, l.scenario, st, l.rate)
				cfg, err := s.loadConfig(urls[st], l.scenario, l.rate, seed)
				if err != nil {
					return nil, err
				}
				report, err := loadtest.Run(ctx, cfg)
				if err != nil {
					return nil, fmt.Errorf("routing load %s via %s at %g req/s: %w", l.scenario, st, l.rate, err)
				}
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				if err := gws[st].alive(); err != nil {
					return nil, err
				}
				p := res.point(l.scenario, st, l.rate)
				p.Samples = append(p.Samples, routingSample(report))
			}
		}
	}
	for _, st := range s.Strategies {
		if tail := gws[st].logTail(); tail != "" {
			res.Notes = append(res.Notes, fmt.Sprintf("%s logged during the run: `%s`", gws[st].name, oneLine(tail, 300)))
		}
	}
	res.LoadAfter = loadAvg()
	res.Elapsed = time.Since(began)
	return res, nil
}

// routingPinning says how the routing runs were pinned.
func routingPinning(e *env, pinning string) string {
	if e.proxyCPU == "" {
		return pinning
	}
	return "taskset: each gateway (its four simulators embedded) on CPU " + e.proxyCPU + "; the load generator (this harness, GOMAXPROCS=1) on CPU " + e.loadCPU
}

func routingSample(rep *loadtest.Report) RoutingSample {
	s := RoutingSample{
		OutputTPS: rep.Tokens.OutputPerSecond, CachedShare: rep.Tokens.CachedShare,
		Throughput: rep.Throughput, Requests: rep.Requests, Errors: rep.Failures,
	}
	if rep.TTFT != nil {
		s.TTFTP50, s.TTFTP90, s.TTFTP99 = rep.TTFT.P50, rep.TTFT.P90, rep.TTFT.P99
	}
	if len(rep.Errors) > 0 {
		s.ErrorKinds = rep.Errors
	}
	return s
}

// benchRouting is --routing: the routing comparison alone, its section
// re-rendered in place in o.out (BENCHMARKS.md by default) and its plot
// written next to it.
func benchRouting(ctx context.Context, o options, args []string, stdout, stderr io.Writer) error {
	e, root, cleanup, err := newEnv(&o, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	pinning, err := e.pin()
	if err != nil {
		return err
	}
	if err := e.build(ctx, root); err != nil {
		return err
	}
	rr, err := e.runRouting(ctx, o.routingSetup, strings.TrimSpace("go run ./loadtest/bench "+shellQuote(args)))
	if err != nil {
		return err
	}
	rr.Pinning = routingPinning(e, pinning)
	if err := writeJSON(o.jsonOut, rr, stderr); err != nil {
		return err
	}
	return outputRouting(rr, o.out, stdout, stderr)
}

// rerenderRouting is --routing --render FILE: the Routing section again
// from a results file, the comparison's own (--routing --json) or a full
// run's (its "routing"), without running anything.
func rerenderRouting(o options, stdout, stderr io.Writer) error {
	b, err := os.ReadFile(o.render)
	if err != nil {
		return err
	}
	var wrap struct {
		Routing *RoutingResults `json:"routing"`
	}
	if err := json.Unmarshal(b, &wrap); err != nil {
		return fmt.Errorf("reading results %s: %w", o.render, err)
	}
	rr := wrap.Routing
	if rr == nil {
		rr = new(RoutingResults)
		if err := json.Unmarshal(b, rr); err != nil {
			return fmt.Errorf("reading results %s: %w", o.render, err)
		}
	}
	if len(rr.Points) == 0 {
		return fmt.Errorf("results %s: no routing points", o.render)
	}
	if o.out == "" && !o.quick {
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		o.out = filepath.Join(root, "BENCHMARKS.md")
	}
	return outputRouting(rr, o.out, stdout, stderr)
}

// outputRouting prints rr's section, splices it into out (which must exist:
// the rest of the file comes from the full run) and writes the plot.
func outputRouting(rr *RoutingResults, out string, stdout, stderr io.Writer) error {
	var b strings.Builder
	renderRouting(&b, rr)
	return outputSection(section{name: "Routing", begin: routingBegin, end: routingEnd, svgPath: routingSVGPath, plot: "routing"},
		b.String(), func() string { return RoutingSVG(rr) }, out, stdout, stderr)
}

// writeRoutingSVG writes the plot where BENCHMARKS.md's image link points,
// relative to the markdown file out.
func writeRoutingSVG(rr *RoutingResults, out string, stderr io.Writer) error {
	return writeSVG(routingSVGPath, "routing", RoutingSVG(rr), out, stderr)
}
