package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The batching comparison (--batching, and part of the full run): one
// gateway per batching setting (off, and on with each max_queue_delay),
// each with one embedded simulator serving an embeddings model and a KServe
// v2 classifier whose calls cost a fixed overhead plus a little per item,
// a few calls at once; closed-loop clients at several concurrencies send
// one item per request and check every answer; settings interleaved,
// medians of the repeats. See loadtest/bench/README.md, "Batching".

// Batching workloads.
const (
	BatchEmbeddings = "embeddings" // POST /v1/embeddings, one input per request
	BatchClassifier = "classifier" // POST /v2/models/{name}/infer, one row per request
)

// The pools' public names, also the simulator's models.
const (
	batchEmbedModel      = "sim-embed"
	batchClassifierModel = "sim-classifier"
	batchChatModel       = "sim-chat" // the simulator's chat model, unused
)

// batchWorkloads lists the workloads in their order in the section.
var batchWorkloads = []string{BatchEmbeddings, BatchClassifier}

// BatchingSetup is everything that shapes the batching comparison. Its
// defaults make the effect clear on a 2-core machine (README, "Batching").
type BatchingSetup struct {
	Workloads []string `json:"workloads"`
	// Clients are the closed-loop concurrencies, one point each.
	Clients []int `json:"clients"`
	// Delays are the max_queue_delay of each batching-on gateway; batching
	// off is always measured too.
	Delays       []time.Duration `json:"delays"`
	MaxBatchSize int             `json:"max_batch_size"`
	// The simulator's embeddings: a call costs EmbedCallOverhead +
	// inputs × EmbedPerItem, EmbedConcurrency calls at once; vectors of
	// EmbedDim numbers.
	EmbedCallOverhead time.Duration `json:"embed_call_overhead"`
	EmbedPerItem      time.Duration `json:"embed_per_item"`
	EmbedConcurrency  int           `json:"embed_concurrency"`
	EmbedDim          int           `json:"embed_dim"`
	// The simulator's classifier: a call of N rows costs
	// ClassifierCallOverhead + N × ClassifierPerItem, ClassifierConcurrency
	// calls at once; rows of ClassifierFeatures into ClassifierClasses.
	ClassifierCallOverhead time.Duration `json:"classifier_call_overhead"`
	ClassifierPerItem      time.Duration `json:"classifier_per_item"`
	ClassifierConcurrency  int           `json:"classifier_concurrency"`
	ClassifierFeatures     int           `json:"classifier_features"`
	ClassifierClasses      int           `json:"classifier_classes"`
	// EmbedWords is the words of each embeddings input.
	EmbedWords int           `json:"embed_words"`
	Duration   time.Duration `json:"duration"`
	Warmup     time.Duration `json:"warmup"`
	Repeats    int           `json:"repeats"`
}

// defaultBatchingSetup is the tuned setup.
func defaultBatchingSetup() BatchingSetup {
	return BatchingSetup{
		Workloads:              slices.Clone(batchWorkloads),
		Clients:                []int{1, 16, 64, 256},
		Delays:                 []time.Duration{0, 2 * time.Millisecond},
		MaxBatchSize:           64,
		EmbedCallOverhead:      5 * time.Millisecond,
		EmbedPerItem:           100 * time.Microsecond,
		EmbedConcurrency:       4,
		EmbedDim:               64,
		ClassifierCallOverhead: 5 * time.Millisecond,
		ClassifierPerItem:      20 * time.Microsecond,
		ClassifierConcurrency:  4,
		ClassifierFeatures:     16,
		ClassifierClasses:      4,
		EmbedWords:             8,
		Duration:               2 * time.Second,
		Warmup:                 500 * time.Millisecond,
		Repeats:                3,
	}
}

// validate checks s.
func (s BatchingSetup) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(s.Workloads) == 0 {
		bad("--batching-workloads: at least one of %s", strings.Join(batchWorkloads, ", "))
	}
	for _, w := range s.Workloads {
		if !slices.Contains(batchWorkloads, w) {
			bad("--batching-workloads: unknown workload %q (want %s)", w, strings.Join(batchWorkloads, " or "))
		}
	}
	if seen := slices.Compact(slices.Sorted(slices.Values(s.Workloads))); len(seen) != len(s.Workloads) {
		bad("--batching-workloads: a workload is named twice")
	}
	if len(s.Clients) == 0 {
		bad("--batching-clients: at least one concurrency")
	}
	for _, c := range s.Clients {
		if c < 1 || c > 4096 {
			bad("--batching-clients: %d: want 1 to 4096", c)
		}
	}
	if seen := slices.Compact(slices.Sorted(slices.Values(s.Clients))); len(seen) != len(s.Clients) {
		bad("--batching-clients: a concurrency is named twice")
	}
	for _, d := range s.Delays {
		if d < 0 || d > 10*time.Second {
			bad("--batching-delays: %v: want 0 to 10s", d)
		}
	}
	if seen := slices.Compact(slices.Sorted(slices.Values(s.Delays))); len(seen) != len(s.Delays) {
		bad("--batching-delays: a delay is named twice")
	}
	if s.MaxBatchSize < 1 || s.MaxBatchSize > 65536 {
		bad("--batching-max-batch-size %d: want 1 to 65536", s.MaxBatchSize)
	}
	if s.EmbedCallOverhead < 0 || s.EmbedPerItem < 0 || s.ClassifierCallOverhead < 0 || s.ClassifierPerItem < 0 {
		bad("batching: negative simulator costs")
	}
	if s.EmbedConcurrency < 1 || s.ClassifierConcurrency < 1 {
		bad("batching: the simulator's concurrency must be positive")
	}
	if s.EmbedDim < 1 || s.EmbedWords < 1 || s.ClassifierFeatures < 1 || s.ClassifierClasses < 2 {
		bad("batching: embed dim %d, words %d, classifier features %d and classes %d: want positive (classes at least 2)",
			s.EmbedDim, s.EmbedWords, s.ClassifierFeatures, s.ClassifierClasses)
	}
	if s.Duration <= 0 || s.Warmup < 0 {
		bad("--batching-duration %v must be positive, --batching-warmup %v not negative", s.Duration, s.Warmup)
	}
	if s.Repeats < 1 || s.Repeats > 20 {
		bad("--batching-repeats %d: want 1 to 20", s.Repeats)
	}
	return errors.Join(errs...)
}

// parseBatchingLists parses the batching flags that are lists into s.
func parseBatchingLists(s *BatchingSetup, workloads, clients, delays string) error {
	s.Workloads = nil
	for w := range strings.SplitSeq(workloads, ",") {
		if w = strings.TrimSpace(w); w != "" {
			s.Workloads = append(s.Workloads, w)
		}
	}
	s.Clients = nil
	for c := range strings.SplitSeq(clients, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		n, err := strconv.Atoi(c)
		if err != nil {
			return fmt.Errorf("--batching-clients: %q is not a number of clients", c)
		}
		s.Clients = append(s.Clients, n)
	}
	s.Delays = nil
	for d := range strings.SplitSeq(delays, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		v, err := time.ParseDuration(d)
		if err != nil {
			return fmt.Errorf("--batching-delays: %q is not a duration", d)
		}
		s.Delays = append(s.Delays, v)
	}
	return nil
}

func joinIntsComma(xs []int) string { return strings.ReplaceAll(joinInts(xs), " ", "") }

func joinDurations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ",")
}

// BatchingMode is one gateway's batching: off, or on with a
// max_queue_delay.
type BatchingMode struct {
	On    bool          `json:"on"`
	Delay time.Duration `json:"delay,omitempty"`
}

// modes are the gateways of the comparison: off first, then on with each
// delay.
func (s BatchingSetup) modes() []BatchingMode {
	ms := []BatchingMode{{}}
	for _, d := range s.Delays {
		ms = append(ms, BatchingMode{On: true, Delay: d})
	}
	return ms
}

// String is the mode as the tables name it.
func (m BatchingMode) String() string {
	switch {
	case !m.On:
		return "off"
	case m.Delay == 0:
		return "on"
	default:
		return "on, delay " + m.Delay.String()
	}
}

// name is the mode in the gateway's process name.
func (m BatchingMode) name() string {
	switch {
	case !m.On:
		return "off"
	case m.Delay == 0:
		return "on"
	default:
		return "on-" + simDuration(m.Delay)
	}
}

// cost is a workload's simulated call: its overhead, its cost per item and
// the calls the simulator executes at once.
func (s BatchingSetup) cost(workload string) (overhead, perItem time.Duration, slots int) {
	if workload == BatchClassifier {
		return s.ClassifierCallOverhead, s.ClassifierPerItem, s.ClassifierConcurrency
	}
	return s.EmbedCallOverhead, s.EmbedPerItem, s.EmbedConcurrency
}

// serviceTime is the simulated time of one call of n items.
func (s BatchingSetup) serviceTime(workload string, n int) time.Duration {
	overhead, perItem, _ := s.cost(workload)
	return overhead + time.Duration(n)*perItem
}

// bound is the most requests per second the simulator can answer with
// calls of n items each (its slots always busy).
func (s BatchingSetup) bound(workload string, n int) float64 {
	_, _, slots := s.cost(workload)
	d := s.serviceTime(workload, n)
	if d <= 0 {
		return 0
	}
	return float64(slots*n) / d.Seconds()
}

// batchPool is the pool (and model) of a workload.
func batchPool(workload string) string {
	if workload == BatchClassifier {
		return batchClassifierModel
	}
	return batchEmbedModel
}

// batchPath is the request path of a workload.
func batchPath(workload string) string {
	if workload == BatchClassifier {
		return "/v2/models/" + batchClassifierModel + "/infer"
	}
	return "/v1/embeddings"
}

// simDuration formats d for the simulator's options (ASCII "us").
func simDuration(d time.Duration) string {
	return strings.ReplaceAll(d.String(), "µ", "u")
}

// batchingSimOptions are the simulator's options (backend kind sim's
// "sim:" map, the flags of switchyard sim without the dashes).
func batchingSimOptions(s BatchingSetup) map[string]string {
	return map[string]string{
		"model":                    batchChatModel,
		"embed-model":              batchEmbedModel,
		"embed-dim":                strconv.Itoa(s.EmbedDim),
		"embed-call-overhead":      simDuration(s.EmbedCallOverhead),
		"embed-per-item":           simDuration(s.EmbedPerItem),
		"embed-concurrency":        strconv.Itoa(s.EmbedConcurrency),
		"embed-max-inputs":         strconv.Itoa(max(s.MaxBatchSize, 2048)),
		"classifier-model":         batchClassifierModel,
		"classifier-features":      strconv.Itoa(s.ClassifierFeatures),
		"classifier-classes":       strconv.Itoa(s.ClassifierClasses),
		"classifier-call-overhead": simDuration(s.ClassifierCallOverhead),
		"classifier-per-item":      simDuration(s.ClassifierPerItem),
		"classifier-concurrency":   strconv.Itoa(s.ClassifierConcurrency),
		"classifier-max-batch":     strconv.Itoa(max(s.MaxBatchSize, 1024)),
	}
}

// batchingConfig is the gateway config of one mode: one simulator embedded
// as the backend, and two pools over it, batched alike (or not at all),
// each with as many batches in flight as the simulator runs calls at once.
func batchingConfig(s BatchingSetup, m BatchingMode, listen string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Generated by loadtest/bench: the batching comparison, batching %s.
listen: %s
log:
  level: warn
  requests: false
server:
  compression:
    enabled: false
  watch_interval: 0
backends:
  - name: sim
    kind: sim
    health:
      failure_threshold: 0
    sim:
`, m, listen)
	opts := batchingSimOptions(s)
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		fmt.Fprintf(&b, "      %s: %q\n", k, opts[k])
	}
	b.WriteString("models:\n")
	for _, pool := range []struct {
		name  string
		slots int
	}{{batchEmbedModel, s.EmbedConcurrency}, {batchClassifierModel, s.ClassifierConcurrency}} {
		fmt.Fprintf(&b, `  - name: %s
    retry:
      attempts: 1
    targets:
      - backend: sim
`, pool.name)
		if m.On {
			fmt.Fprintf(&b, `    batching:
      max_batch_size: %d
      max_queue_delay: %s
      max_in_flight: %d
`, s.MaxBatchSize, m.Delay, pool.slots)
		}
	}
	return b.String()
}

// BatchingResults are the batching comparison's outcome; BENCHMARKS.md's
// Batching section is rendered from them alone.
type BatchingResults struct {
	Date       time.Time        `json:"date"`
	Elapsed    time.Duration    `json:"elapsed"`
	Command    string           `json:"command"`
	NProc      int              `json:"nproc"`
	Pinning    string           `json:"pinning"`
	LoadBefore string           `json:"loadavg_before"`
	LoadAfter  string           `json:"loadavg_after"`
	Setup      BatchingSetup    `json:"setup"`
	Points     []*BatchingPoint `json:"points"`
	Notes      []string         `json:"notes,omitempty"`
}

// BatchingPoint is one (workload, clients, mode) cell and its samples.
type BatchingPoint struct {
	Workload string           `json:"workload"`
	Clients  int              `json:"clients"`
	Mode     BatchingMode     `json:"mode"`
	Samples  []BatchingSample `json:"samples"`
}

// BatchingSample is one measured run. Times are in milliseconds.
type BatchingSample struct {
	// Throughput is the answers (status 200, checked) completed within the
	// measured window per second.
	Throughput float64 `json:"throughput"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	// Requests completed within the window, Errors of them not 200 or not
	// answered.
	Requests   int64            `json:"requests"`
	Errors     int64            `json:"errors"`
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	// BatchItems is the mean items per batch the gateway sent upstream in
	// the window (its switchyard_batch_items histogram); 0 with batching
	// off or when not read.
	BatchItems float64 `json:"batch_items,omitempty"`
	// GatewayBusy is the gateway's CPU time (its simulator's included) over
	// the window, LoadBusy the load generator's (this harness); 1 is one
	// CPU.
	GatewayBusy float64 `json:"gateway_busy,omitempty"`
	LoadBusy    float64 `json:"load_busy,omitempty"`
}

// BatchingAgg is the median of each figure over a point's samples.
type BatchingAgg struct {
	N                      int
	Throughput, TMin, TMax float64
	P50, P99               float64
	BatchItems             float64
	GatewayBusy, LoadBusy  float64
	Requests, Errors       int64
	ErrorKinds             map[string]int64
}

// Agg aggregates p's samples.
func (p *BatchingPoint) Agg() BatchingAgg {
	a := BatchingAgg{N: len(p.Samples)}
	col := func(f func(BatchingSample) float64) []float64 {
		xs := make([]float64, len(p.Samples))
		for i, s := range p.Samples {
			xs[i] = f(s)
		}
		return xs
	}
	tp := col(func(s BatchingSample) float64 { return s.Throughput })
	a.Throughput = Median(tp)
	if len(tp) > 0 {
		a.TMin, a.TMax = slices.Min(tp), slices.Max(tp)
	}
	a.P50 = Median(col(func(s BatchingSample) float64 { return s.P50 }))
	a.P99 = Median(col(func(s BatchingSample) float64 { return s.P99 }))
	a.BatchItems = Median(col(func(s BatchingSample) float64 { return s.BatchItems }))
	a.GatewayBusy = Median(col(func(s BatchingSample) float64 { return s.GatewayBusy }))
	a.LoadBusy = Median(col(func(s BatchingSample) float64 { return s.LoadBusy }))
	for _, s := range p.Samples {
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
func (r *BatchingResults) Find(workload string, clients int, m BatchingMode) *BatchingPoint {
	for _, p := range r.Points {
		if p.Workload == workload && p.Clients == clients && p.Mode == m {
			return p
		}
	}
	return nil
}

func (r *BatchingResults) point(workload string, clients int, m BatchingMode) *BatchingPoint {
	if p := r.Find(workload, clients, m); p != nil {
		return p
	}
	p := &BatchingPoint{Workload: workload, Clients: clients, Mode: m}
	r.Points = append(r.Points, p)
	return p
}

// runBatching runs the batching comparison with e's binary and processes.
func (e *env) runBatching(ctx context.Context, s BatchingSetup, command string) (*BatchingResults, error) {
	began := time.Now()
	res := &BatchingResults{
		Date: began, Command: command, NProc: runtime.NumCPU(), LoadBefore: loadAvg(), Setup: s,
	}
	modes := s.modes()
	urls := map[BatchingMode]string{}
	gws := map[BatchingMode]*proc{}
	metrics := map[BatchingMode]string{}
	for _, m := range modes {
		p, addr, err := e.startGatewayWith(ctx, "switchyard-batching-"+m.name(), "", func(listen, _ string) string { return batchingConfig(s, m, listen) })
		if err != nil {
			return nil, fmt.Errorf("starting the gateway with batching %s: %w", m, err)
		}
		defer p.stop()
		gws[m], urls[m] = p, "http://"+addr
		if m.On {
			metrics[m] = "http://" + addr + "/metrics"
		}
	}
	for rep := 1; rep <= s.Repeats; rep++ {
		// Rotate the modes from one repeat to the next, as the paths.
		order := append(slices.Clone(modes[rep%len(modes):]), modes[:rep%len(modes)]...)
		for wi, w := range s.Workloads {
			for _, c := range s.Clients {
				// The same requests (seed) for every mode of a repeat.
				seed := uint64(rep)<<32 | uint64(wi)<<16 | uint64(c)
				for _, m := range order {
					fmt.Fprintf(e.log, "bench: batching repeat %d/%d %s batching %s %d clients\n", rep, s.Repeats, w, m, c)
					smp, err := runClosedLoad(ctx, closedLoad{
						url: urls[m], workload: w, clients: c, setup: s, seed: seed,
						warmup: s.Warmup, duration: s.Duration, metrics: metrics[m], pool: batchPool(w),
						gatewayPID: gws[m].pid(), hz: e.hz,
					})
					if err != nil {
						return nil, fmt.Errorf("batching %s, %s, %d clients: %w", m, w, c, err)
					}
					if err := gws[m].alive(); err != nil {
						return nil, err
					}
					p := res.point(w, c, m)
					p.Samples = append(p.Samples, smp)
				}
			}
		}
	}
	for _, m := range modes {
		if tail := gws[m].logTail(); tail != "" {
			res.Notes = append(res.Notes, fmt.Sprintf("%s logged during the run: `%s`", gws[m].name, oneLine(tail, 300)))
		}
	}
	res.LoadAfter = loadAvg()
	res.Elapsed = time.Since(began)
	return res, nil
}

// batchingPinning says how the batching runs were pinned.
func batchingPinning(e *env, pinning string) string {
	if e.proxyCPU == "" {
		return pinning
	}
	return "taskset: each gateway (its simulator embedded) on CPU " + e.proxyCPU + "; the load generator (this harness, GOMAXPROCS=1) on CPU " + e.loadCPU
}

// benchBatching is --batching: the batching comparison alone, its section
// re-rendered in place in o.out (BENCHMARKS.md by default) and its plot
// written next to it.
func benchBatching(ctx context.Context, o options, args []string, stdout, stderr io.Writer) error {
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
	br, err := e.runBatching(ctx, o.batchingSetup, strings.TrimSpace("go run ./loadtest/bench "+shellQuote(args)))
	if err != nil {
		return err
	}
	br.Pinning = batchingPinning(e, pinning)
	if err := writeJSON(o.jsonOut, br, stderr); err != nil {
		return err
	}
	return outputBatching(br, o.out, stdout, stderr)
}

// rerenderBatching is --batching --render FILE: the Batching section again
// from a results file, the comparison's own (--batching --json) or a full
// run's (its "batching"), without running anything.
func rerenderBatching(o options, stdout, stderr io.Writer) error {
	b, err := os.ReadFile(o.render)
	if err != nil {
		return err
	}
	br, err := readBatching(b)
	if err != nil {
		return fmt.Errorf("reading results %s: %w", o.render, err)
	}
	if br == nil || len(br.Points) == 0 {
		return fmt.Errorf("results %s: no batching points", o.render)
	}
	if o.out == "" && !o.quick {
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		o.out = filepath.Join(root, "BENCHMARKS.md")
	}
	return outputBatching(br, o.out, stdout, stderr)
}

// readBatching reads the batching results of a results file: a full run's
// "batching", or the comparison's own file. It is nil when there are none.
func readBatching(b []byte) (*BatchingResults, error) {
	var wrap struct {
		Batching *BatchingResults `json:"batching"`
		Setup    json.RawMessage  `json:"setup"`
	}
	if err := json.Unmarshal(b, &wrap); err != nil {
		return nil, err
	}
	if wrap.Batching != nil || wrap.Setup == nil {
		return wrap.Batching, nil
	}
	br := new(BatchingResults)
	if err := json.Unmarshal(b, br); err != nil {
		return nil, err
	}
	for _, p := range br.Points {
		if p.Workload == "" || p.Clients < 1 {
			return nil, nil // another comparison's file (--routing --json)
		}
	}
	return br, nil
}

// outputBatching prints br's section, splices it into out (which must
// exist: the rest of the file comes from the full run) and writes the plot.
func outputBatching(br *BatchingResults, out string, stdout, stderr io.Writer) error {
	var b strings.Builder
	renderBatching(&b, br)
	return outputSection(section{name: "Batching", begin: batchingBegin, end: batchingEnd, svgPath: batchingSVGPath, plot: "batching"},
		b.String(), func() string { return BatchingSVG(br) }, out, stdout, stderr)
}

// writeBatchingSVG writes the plot where BENCHMARKS.md's image link points,
// relative to the markdown file out.
func writeBatchingSVG(br *BatchingResults, out string, stderr io.Writer) error {
	return writeSVG(batchingSVGPath, "batching", BatchingSVG(br), out, stderr)
}
