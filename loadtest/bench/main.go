// Command bench is Switchyard's benchmark harness. It builds the switchyard
// binary, starts the GPU-server simulator, the gateway with a pass-through
// config, the same with a stage on (admission, the cache, the guard,
// retrieval) and (when installed) nginx as separate processes on loopback,
// drives them with the load generator in process, and writes BENCHMARKS.md:
// latency added over the direct path at several rates, closed-loop
// throughput, CPU per request and resident memory, checked against
// DESIGN.md's budget, each stage on vs off, and
// the pool strategies compared on a heterogeneous pool of simulators with
// the multi-tenant shared-prefix load (the Routing section), and the
// dynamic batcher off and on for embeddings and KServe v2 inference (the
// Batching section).
//
//	go run ./loadtest/bench             # full run, about 25 minutes
//	go run ./loadtest/bench --quick     # smoke run, well under 2 minutes, stdout only
//	go run ./loadtest/bench --routing   # the Routing section alone, about 6 minutes, in place
//	go run ./loadtest/bench --batching  # the Batching section alone, about 3 minutes, in place
//
// See loadtest/bench/README.md.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/loadtest"
)

// options are the harness's flags.
type options struct {
	quick          bool
	micro          bool // run the stages' Go benchmarks after the load
	addMicro       bool // with render: run them now, into the results file
	rates          []float64
	duration       time.Duration
	warmup         time.Duration
	closedDuration time.Duration
	repeats        int
	concurrency    int
	streams        int
	streamITL      time.Duration
	streamTokens   int
	out            string
	jsonOut        string
	bin            string
	render         string
	nginx          string
	pin            bool
	keep           bool
	// routing runs the routing comparison alone (--routing); withRouting
	// includes it in the full run.
	routing      bool
	withRouting  bool
	routingSetup RoutingSetup
	// batching runs the batching comparison alone (--batching);
	// withBatching includes it in the full run.
	batching      bool
	withBatching  bool
	batchingSetup BatchingSetup
}

const benchModel = "bench-model"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	if o.render != "" {
		render := rerender
		switch {
		case o.routing:
			render = rerenderRouting
		case o.batching:
			render = rerenderBatching
		}
		if err := render(o, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.routing {
		if err := benchRouting(ctx, o, args, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		return 0
	}
	if o.batching {
		if err := benchBatching(ctx, o, args, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		return 0
	}
	if err := bench(ctx, o, args, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.quick, "quick", false, "smoke run: rates 500 and 2000, 1 s points, 1 repeat; prints to stdout and writes no BENCHMARKS.md unless --out is given")
	rates := fs.String("rates", "500,1000,2000", "open-loop rates in req/s, comma-separated")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "measured time of each open-loop point")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "warm-up before each point (not measured)")
	fs.DurationVar(&o.closedDuration, "closed-duration", 2*time.Second, "measured time of each closed-loop point")
	fs.IntVar(&o.repeats, "repeats", 7, "times each point is measured; medians are reported")
	fs.IntVar(&o.concurrency, "concurrency", 64, "connections of the closed-loop throughput runs")
	fs.IntVar(&o.streams, "streams", 1000, "concurrent streams for the memory point (0: skip)")
	fs.DurationVar(&o.streamITL, "stream-itl", 50*time.Millisecond, "simulated inter-token latency of the memory point's streams")
	fs.IntVar(&o.streamTokens, "stream-tokens", 100, "tokens per stream of the memory point")
	fs.StringVar(&o.out, "out", "", "markdown output file (default: BENCHMARKS.md at the module root; none with --quick)")
	fs.StringVar(&o.jsonOut, "json", "", "also write the raw results as JSON to this file")
	fs.StringVar(&o.render, "render", "", "only re-render the markdown from a results file written by --json (no run); with --routing or --batching, only that section")
	fs.BoolVar(&o.micro, "micro", true, "also run the stages' Go benchmarks (go test -bench; about 3 minutes)")
	fs.BoolVar(&o.addMicro, "add-micro", false, "with --render: run the stages' Go benchmarks now and add them to the results file before rendering")
	fs.StringVar(&o.bin, "bin", "", "use this switchyard binary instead of building one")
	fs.StringVar(&o.nginx, "nginx", "nginx", "nginx binary; empty or not found: skip the nginx path")
	fs.BoolVar(&o.pin, "pin", true, "pin processes to CPUs with taskset when it exists and there are 2+ CPUs")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir (configs and logs) and print its path")
	rs := defaultRoutingSetup()
	fs.BoolVar(&o.routing, "routing", false, "run only the routing comparison and re-render the Routing section of --out (default BENCHMARKS.md) in place, and its plot")
	fs.BoolVar(&o.withRouting, "with-routing", true, "the full run also runs the routing comparison (about 6 minutes)")
	strategies := fs.String("routing-strategies", strings.Join(rs.Strategies, ","), "routing: the pool strategies compared, comma-separated")
	routingRates := fs.String("routing-rates", joinRates(rs.Rates), "routing: rates of the shared-prefix load, req/s")
	controlRates := fs.String("routing-control-rates", joinRates(rs.ControlRates), "routing: rates of the control load (random prompts); empty: none")
	fs.DurationVar(&rs.Duration, "routing-duration", rs.Duration, "routing: measured time of each point")
	fs.DurationVar(&rs.Warmup, "routing-warmup", rs.Warmup, "routing: warm-up of each point, in the same run (it fills the prefix caches)")
	fs.IntVar(&rs.Repeats, "routing-repeats", rs.Repeats, "routing: times each point is measured; medians are reported")
	fs.Float64Var(&rs.TimeScale, "routing-time-scale", rs.TimeScale, "routing: multiplies the simulators' speeds (simulated time passes this much faster)")
	fs.IntVar(&rs.Tenants, "routing-tenants", rs.Tenants, "routing: tenants of the shared-prefix load")
	fs.IntVar(&rs.ContextWords, "routing-context-words", rs.ContextWords, "routing: words of each tenant's context (about 1.5 simulator tokens each)")
	fs.IntVar(&rs.KVBlocks, "routing-kv-blocks", rs.KVBlocks, "routing: KV cache blocks of each simulator (16 tokens each)")
	fs.DurationVar(&rs.Scrape, "routing-scrape", rs.Scrape, "routing: how often each gateway scrapes its simulators' /metrics (0: not at all)")
	fs.StringVar(&rs.PoolYAML, "routing-pool-yaml", "", "routing: YAML added to every strategy's pool, e.g. 'routing: {weights: {prefix: 5}}' (strategies ignore what they do not read)")
	fs.IntVar(&rs.OutputTokens, "routing-output-tokens", rs.OutputTokens, "routing: output tokens of every request")
	fs.IntVar(&rs.MaxNumSeqs, "routing-max-num-seqs", rs.MaxNumSeqs, "routing: sequences running at once on each simulator")
	bs := defaultBatchingSetup()
	fs.BoolVar(&o.batching, "batching", false, "run only the batching comparison and re-render the Batching section of --out (default BENCHMARKS.md) in place, and its plot")
	fs.BoolVar(&o.withBatching, "with-batching", true, "the full run also runs the batching comparison (about 3 minutes)")
	workloads := fs.String("batching-workloads", strings.Join(bs.Workloads, ","), "batching: the workloads, comma-separated (embeddings, classifier)")
	clients := fs.String("batching-clients", joinIntsComma(bs.Clients), "batching: concurrent closed-loop clients of each point, comma-separated")
	delays := fs.String("batching-delays", joinDurations(bs.Delays), "batching: max_queue_delay of each batching-on gateway, comma-separated (batching off is always run); empty: off only")
	fs.IntVar(&bs.MaxBatchSize, "batching-max-batch-size", bs.MaxBatchSize, "batching: max_batch_size of the batching-on gateways")
	fs.DurationVar(&bs.Duration, "batching-duration", bs.Duration, "batching: measured time of each point")
	fs.DurationVar(&bs.Warmup, "batching-warmup", bs.Warmup, "batching: warm-up of each point, before its measured window")
	fs.IntVar(&bs.Repeats, "batching-repeats", bs.Repeats, "batching: times each point is measured; medians are reported")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("rates", func() { *rates = "500,2000" })
		def("duration", func() { o.duration = time.Second })
		def("warmup", func() { o.warmup = 300 * time.Millisecond })
		def("closed-duration", func() { o.closedDuration = time.Second })
		def("repeats", func() { o.repeats = 1 })
		def("stream-tokens", func() { o.streamTokens = 40 })
	}
	var err error
	if o.rates, err = parseRates(*rates); err != nil {
		return o, err
	}
	if o.routing && o.quick {
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("routing-repeats", func() { rs.Repeats = 1 })
		def("routing-duration", func() { rs.Duration = 2 * time.Second })
		def("routing-warmup", func() { rs.Warmup = time.Second })
	}
	if o.batching && o.quick {
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("batching-repeats", func() { bs.Repeats = 1 })
		def("batching-duration", func() { bs.Duration = time.Second })
		def("batching-warmup", func() { bs.Warmup = 300 * time.Millisecond })
	}
	if o.routing && o.batching {
		return o, errors.New("--routing and --batching: one comparison at a time")
	}
	if err := parseBatchingLists(&bs, *workloads, *clients, *delays); err != nil {
		return o, err
	}
	if err := bs.validate(); err != nil {
		return o, err
	}
	o.batchingSetup = bs
	rs.Strategies = nil
	for st := range strings.SplitSeq(*strategies, ",") {
		if st = strings.TrimSpace(st); st != "" {
			rs.Strategies = append(rs.Strategies, st)
		}
	}
	if rs.Rates, err = parseRatesOf("--routing-rates", *routingRates); err != nil {
		return o, err
	}
	rs.ControlRates = nil
	if strings.TrimSpace(*controlRates) != "" {
		if rs.ControlRates, err = parseRatesOf("--routing-control-rates", *controlRates); err != nil {
			return o, err
		}
	}
	if err := rs.validate(); err != nil {
		return o, err
	}
	o.routingSetup = rs
	switch {
	case o.duration <= 0 || o.closedDuration <= 0 || o.warmup < 0:
		return o, errors.New("--duration and --closed-duration must be positive, --warmup not negative")
	case o.repeats < 1 || o.repeats > 20:
		return o, fmt.Errorf("--repeats %d: want 1 to 20", o.repeats)
	case o.concurrency < 1 || o.concurrency > 4096:
		return o, fmt.Errorf("--concurrency %d: want 1 to 4096", o.concurrency)
	case o.streams < 0 || o.streams > 10000:
		return o, fmt.Errorf("--streams %d: want 0 to 10000", o.streams)
	case o.streamTokens < 1 || o.streamITL <= 0:
		return o, errors.New("--stream-tokens and --stream-itl must be positive")
	}
	return o, nil
}

// parseRates parses "500,1000,2000" (--rates).
func parseRates(s string) ([]float64, error) { return parseRatesOf("--rates", s) }

// parseRatesOf parses the rates of the flag named flag.
func parseRatesOf(flag, s string) ([]float64, error) {
	var rates []float64
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		r, err := strconv.ParseFloat(part, 64)
		if err != nil || !(r > 0) || r > 1e6 {
			return nil, fmt.Errorf("%s: %q is not a rate in (0, 1e6] req/s", flag, part)
		}
		rates = append(rates, r)
	}
	if len(rates) == 0 {
		return nil, fmt.Errorf("%s: none given", flag)
	}
	return rates, nil
}

// moduleRoot returns the directory of the main module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("running go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module: run the harness from the switchyard repository")
	}
	return filepath.Dir(gomod), nil
}

// shellQuote quotes args for a POSIX shell where needed.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,@") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// gatewayConfig is the pass-through config: one openai backend at upstream,
// one model, nothing else on the path.
func gatewayConfig(listen, upstream string) string {
	return fmt.Sprintf(`# Generated by loadtest/bench: Switchyard as a plain pass-through proxy.
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
    kind: openai
    url: http://%s
    health:
      failure_threshold: 0
models:
  - name: %s
    targets:
      - backend: sim
`, listen, upstream, benchModel)
}

// benchKey is the admission path's API key (its sha256 is in the config).
const benchKey = "sk-bench-admission"

// admissionConfig is gatewayConfig with admission on: one tenant and one
// key with limits on the key, the tenant and the pool, all far above the
// load, so every request is decided by the local limiter and admitted.
func admissionConfig(listen, upstream string) string {
	sum := sha256.Sum256([]byte(benchKey))
	cfg := strings.Replace(gatewayConfig(listen, upstream), "Switchyard as a plain pass-through proxy.",
		"Switchyard with admission on (key, tenant and pool limits).", 1)
	cfg = strings.Replace(cfg, "      - backend: sim\n", "      - backend: sim\n    limits: {rpm: 100000000, tpm: 10000000000, concurrency: 100000}\n", 1)
	return cfg + fmt.Sprintf(`tenants:
  - name: bench
    limits: {rpm: 100000000, tpm: 10000000000}
keys:
  - id: bench
    sha256: %s
    tenant: bench
    limits: {rpm: 100000000, tpm: 10000000000, concurrency: 100000}
`, hex.EncodeToString(sum[:]))
}

// cacheConfig is gatewayConfig with the cache stage (exact only; every
// request cached, deterministic or not).
func cacheConfig(listen, upstream string) string {
	cfg := strings.Replace(gatewayConfig(listen, upstream), "Switchyard as a plain pass-through proxy.",
		"Switchyard with the exact cache.", 1)
	return cfg + `routes:
  - name: default
    match: {model: "*"}
    chain:
      - cache: {nondeterministic: true, allow_truncated: true}
`
}

// guardConfig is gatewayConfig with the guard stage on the default policy
// library in dir (requests and answers checked; streams through the output
// window).
func guardConfig(dir string) func(listen, upstream string) string {
	return func(listen, upstream string) string {
		cfg := strings.Replace(gatewayConfig(listen, upstream), "Switchyard as a plain pass-through proxy.",
			"Switchyard with the guard stage (the default policy library).", 1)
		return cfg + fmt.Sprintf(`routes:
  - name: default
    match: {model: "*"}
    chain:
      - guard: {policies: %q}
`, dir)
	}
}

// retrievalCorpus is the retrieval path's collection's source, relative
// to the module root: 188 Markdown files of Go documentation, the labelled
// set of internal/retrieve/eval, so that a search has some 1,000 chunks
// to rank.
const retrievalCorpus = "internal/retrieve/eval/testdata/corpus"

// retrievalConfig is gatewayConfig with the retrieval stage (hybrid search,
// top 4) on a collection docs filled from the directory corpus at start,
// stored in dataDir. The log level is info, so that the gateway logs the
// sync of the sources (the files and chunks ingested); it logs nothing per
// request (request logs stay off).
func retrievalConfig(corpus, dataDir string) func(listen, upstream string) string {
	return func(listen, upstream string) string {
		cfg := strings.Replace(gatewayConfig(listen, upstream), "Switchyard as a plain pass-through proxy.",
			"Switchyard with the retrieval stage on a collection ingested at start.", 1)
		cfg = strings.Replace(cfg, "log:\n  level: warn\n", "log:\n  level: info\n", 1)
		return cfg + fmt.Sprintf(`data_dir: %q
collections:
  - name: docs
    sources:
      - path: %q
routes:
  - name: default
    match: {model: "*"}
    chain:
      - retrieval: {collection: docs, top_k: 4}
`, dataDir, corpus)
	}
}

// retrievalReady reads what the retrieval gateway p logged at start (the
// sync of its sources) and checks that a chat request through url gets
// sources (x-switchyard-sources), so that the path measures a stage that
// finds something; the load's prompts are words of the same vocabulary.
func retrievalReady(ctx context.Context, p *proc, url string) (*RetrievalCorpus, error) {
	body := fmt.Sprintf(`{"model":%q,"max_tokens":8,"messages":[{"role":"user","content":"the value of a memory model in the language"}]}`, benchModel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	cl := &http.Client{Timeout: 10 * time.Second}
	defer cl.CloseIdleConnections()
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: probing the retrieval stage: %w", p.name, err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Switchyard-Sources") == "" {
		return nil, fmt.Errorf("%s: a chat request got %s without x-switchyard-sources (the retrieval stage found nothing): %s; log %s:\n%s",
			p.name, resp.Status, oneLine(string(b), 300), p.logPath, p.logTail())
	}
	log, err := p.markLog()
	if err != nil {
		return nil, err
	}
	c := parseSourcesSynced(log)
	c.Source = retrievalCorpus
	return c, nil
}

// parseSourcesSynced finds the gateway's "collection sources synced" line
// (JSON) in log: the files added and their chunks; zeros when not there.
func parseSourcesSynced(log []byte) *RetrievalCorpus {
	c := &RetrievalCorpus{}
	for line := range bytes.SplitSeq(log, []byte("\n")) {
		var l struct {
			Msg    string `json:"msg"`
			Added  int    `json:"added"`
			Chunks int    `json:"chunks"`
			Took   string `json:"took"`
		}
		if json.Unmarshal(line, &l) != nil || l.Msg != "collection sources synced" {
			continue
		}
		c.Files, c.Chunks = l.Added, l.Chunks
		c.Took, _ = time.ParseDuration(l.Took)
	}
	return c
}

// retrievalCounters are the retrieval stage's series on a /metrics.
type retrievalCounters struct {
	hits, empty, errors float64
	sum, count          float64 // switchyard_retrieval_seconds
}

// scrapeRetrieval reads the retrieval stage's request counts and search
// time from the gateway's /metrics at url (summed over routes and
// collections; the bench gateway has one of each).
func scrapeRetrieval(url string) (retrievalCounters, error) {
	var c retrievalCounters
	status, body, err := fasthttp.GetTimeout(nil, url, 30*time.Second)
	if err != nil {
		return c, fmt.Errorf("GET %s: %w", url, err)
	}
	if status != fasthttp.StatusOK {
		return c, fmt.Errorf("GET %s: status %d", url, status)
	}
	var found bool
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		var dst *float64
		switch {
		case bytes.HasPrefix(line, []byte("switchyard_retrieval_requests_total{")):
			switch {
			case bytes.Contains(line, []byte(`result="hit"`)):
				dst = &c.hits
			case bytes.Contains(line, []byte(`result="empty"`)):
				dst = &c.empty
			case bytes.Contains(line, []byte(`result="error"`)):
				dst = &c.errors
			}
		case bytes.HasPrefix(line, []byte("switchyard_retrieval_seconds_sum{")):
			dst = &c.sum
		case bytes.HasPrefix(line, []byte("switchyard_retrieval_seconds_count{")):
			dst = &c.count
			found = true
		}
		if dst == nil {
			continue
		}
		i := bytes.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(string(line[i+1:]), 64)
		if err != nil {
			return c, fmt.Errorf("GET %s: %q: %w", url, line, err)
		}
		*dst += v
	}
	if !found {
		return c, fmt.Errorf("GET %s: no switchyard_retrieval_seconds", url)
	}
	return c, nil
}

// since is the run between an earlier scrape and c.
func (c retrievalCounters) since(c0 retrievalCounters) *RetrievalSample {
	s := &RetrievalSample{
		Hits: int64(c.hits - c0.hits), Empty: int64(c.empty - c0.empty), Errors: int64(c.errors - c0.errors),
	}
	if n := c.count - c0.count; n > 0 {
		s.SearchUS = (c.sum - c0.sum) / n * 1e6
	}
	return s
}

// pin pins the processes (when e.o.pin, taskset exists and there are 2+
// CPUs): the proxy under test alone on CPU 0; the simulator and this
// process (the load generator) share CPU 1. It returns how, for the report.
func (e *env) pin() (string, error) {
	if ts, err := exec.LookPath("taskset"); err == nil && e.o.pin && runtime.NumCPU() >= 2 {
		if err := pinSelf(ts, "1"); err != nil {
			return "", err
		}
		runtime.GOMAXPROCS(1)
		e.ps.taskset, e.proxyCPU, e.loadCPU = ts, "0", "1"
		return "taskset: the proxy (switchyard or nginx) alone on CPU 0; the simulator and the load generator (this harness, GOMAXPROCS=1) on CPU 1; the direct path leaves CPU 0 idle", nil
	} else if !e.o.pin {
		return "none (--pin=false)", nil
	} else if runtime.NumCPU() < 2 {
		return "none (a single CPU)", nil
	}
	return "none (taskset not found)", nil
}

// build builds switchyard into e.dir, or takes --bin.
func (e *env) build(ctx context.Context, root string) error {
	if e.o.bin != "" {
		e.bin = e.o.bin
		return nil
	}
	e.bin = filepath.Join(e.dir, "switchyard")
	fmt.Fprintf(e.log, "bench: building %s\n", e.bin)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", e.bin, "./cmd/switchyard")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building switchyard: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// env holds what a run needs: the binary, the temp dir and the processes.
type env struct {
	o        options
	bin      string
	dir      string
	ps       *procs
	proxyCPU string // "" without pinning
	loadCPU  string
	hz       float64
	log      io.Writer
}

// stack is one set of servers: the simulator, the gateway, maybe nginx.
type stack struct {
	sim, gw, ng *proc
	adm         *proc // the gateway with admission on
	cache       *proc // the gateway with the cache stage
	guard       *proc // the gateway with the guard stage
	retr        *proc // the gateway with the retrieval stage
	ngPIDs      []int // nginx master and worker
	urls        map[string]string
}

func (e *env) startSim(ctx context.Context, name string, extra ...string) (*proc, string, error) {
	addr, err := freePort()
	if err != nil {
		return nil, "", err
	}
	argv := append([]string{e.bin, "sim", "--listen", addr, "--model", benchModel, "--profile", "fast"}, extra...)
	p, err := e.ps.start(name, e.loadCPU, filepath.Join(e.dir, name+".log"), argv)
	if err != nil {
		return nil, "", err
	}
	return p, addr, waitReady(ctx, p, "http://"+addr+"/v1/models")
}

func (e *env) startGateway(ctx context.Context, name, upstream string) (*proc, string, error) {
	return e.startGatewayWith(ctx, name, upstream, gatewayConfig)
}

// withDataDir gives the gateway config text its own data_dir, dir, unless
// it has one. The gateways of a run run at once from one temp dir, and a
// data_dir is one process's (the gateway locks the stores in it, e.g. the
// Files API's), so they must not share the default, ./data beside the
// configs.
func withDataDir(text, dir string) string {
	if strings.HasPrefix(text, "data_dir:") || strings.Contains(text, "\ndata_dir:") {
		return text
	}
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return text + fmt.Sprintf("data_dir: %q\n", dir)
}

func (e *env) startGatewayWith(ctx context.Context, name, upstream string, config func(listen, upstream string) string) (*proc, string, error) {
	addr, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cfgPath := filepath.Join(e.dir, name+".yaml")
	text := withDataDir(config(addr, upstream), filepath.Join(e.dir, name+"-data"))
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		return nil, "", fmt.Errorf("writing gateway config: %w", err)
	}
	p, err := e.ps.start(name, e.proxyCPU, filepath.Join(e.dir, name+".log"), []string{e.bin, "serve", "--config", cfgPath})
	if err != nil {
		return nil, "", err
	}
	return p, addr, waitReady(ctx, p, "http://"+addr+"/readyz") // /v1/models may need a key
}

// nginxVersion returns nginx's version line, or an error saying why nginx
// cannot be used.
func nginxVersion(bin string) (path, version string, err error) {
	if bin == "" {
		return "", "", errors.New("disabled with --nginx ''")
	}
	path, err = exec.LookPath(bin)
	if err != nil {
		return "", "", fmt.Errorf("%s not found on PATH", bin)
	}
	out, err := exec.Command(path, "-v").CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("%s -v: %v", path, err)
	}
	v := strings.TrimSpace(string(out))
	v = strings.TrimPrefix(v, "nginx version: ")
	return path, v, nil
}

func (e *env) startNginx(ctx context.Context, path, upstream string) (*proc, string, error) {
	addr, err := freePort()
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(e.dir, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	text, err := NginxConfig{Dir: dir, Listen: addr, Upstream: upstream, Keepalive: 256}.Render()
	if err != nil {
		return nil, "", err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, "", err
	}
	errLog := filepath.Join(dir, "error.log")
	if out, err := exec.CommandContext(ctx, path, "-t", "-p", dir, "-e", errLog, "-c", conf).CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("nginx -t rejected the generated config: %v: %s", err, strings.TrimSpace(string(out)))
	}
	p, err := e.ps.start("nginx", e.proxyCPU, filepath.Join(e.dir, "nginx.log"),
		[]string{path, "-p", dir, "-e", errLog, "-c", conf, "-g", "daemon off;"})
	if err != nil {
		return nil, "", err
	}
	return p, addr, waitReady(ctx, p, "http://"+addr+"/v1/models")
}

// newEnv finds the module root, defaults o.out to its BENCHMARKS.md
// (not with --quick), and makes the run's temp dir and environment;
// cleanup stops the processes started and removes the dir (unless --keep).
func newEnv(o *options, stderr io.Writer) (e *env, root string, cleanup func(), err error) {
	root, err = moduleRoot()
	if err != nil {
		return nil, "", nil, err
	}
	if o.out == "" && !o.quick {
		o.out = filepath.Join(root, "BENCHMARKS.md")
	}
	dir, err := os.MkdirTemp("", "switchyard-bench-")
	if err != nil {
		return nil, "", nil, err
	}
	if o.keep {
		fmt.Fprintf(stderr, "bench: keeping configs and logs in %s\n", dir)
	}
	e = &env{o: *o, dir: dir, ps: &procs{}, hz: ClockTicks(), log: stderr}
	return e, root, func() {
		e.ps.stopAll()
		if !o.keep {
			os.RemoveAll(dir)
		}
	}, nil
}

func bench(ctx context.Context, o options, args []string, stdout, stderr io.Writer) error {
	began := time.Now()
	e, root, cleanup, err := newEnv(&o, stderr)
	if err != nil {
		return err
	}
	defer cleanup()

	res := &Results{
		Date:       began,
		Command:    strings.TrimSpace("go run ./loadtest/bench " + shellQuote(args)),
		NProc:      runtime.NumCPU(),
		CPUModel:   cpuModel(),
		GoVersion:  runtime.Version(),
		Kernel:     kernel(),
		LoadBefore: loadAvg(),
		Settings: Settings{
			Rates: o.rates, Duration: o.duration, Warmup: o.warmup, ClosedDuration: o.closedDuration,
			Repeats: o.repeats, Concurrency: o.concurrency,
			PromptTokens: promptTokens, OutputTokens: outputTokens, StreamTokens: streamTokens,
		},
	}

	if res.Pinning, err = e.pin(); err != nil {
		return err
	}
	if err := e.build(ctx, root); err != nil {
		return err
	}

	// The simulator, the gateway and nginx for the latency and throughput runs.
	st := &stack{urls: map[string]string{}}
	var simAddr string
	if st.sim, simAddr, err = e.startSim(ctx, "sim"); err != nil {
		return err
	}
	st.urls[PathDirect] = "http://" + simAddr
	var gwAddr string
	if st.gw, gwAddr, err = e.startGateway(ctx, "switchyard", simAddr); err != nil {
		return err
	}
	st.urls[PathSwitchyard] = "http://" + gwAddr
	// The second gateway, admission on: on the proxy's CPU too, idle
	// while the others are measured.
	var admAddr string
	if st.adm, admAddr, err = e.startGatewayWith(ctx, "switchyard-admission", simAddr, admissionConfig); err != nil {
		return err
	}
	st.urls[PathAdmission] = "http://" + admAddr
	res.Admission = true
	var cacheAddr string
	if st.cache, cacheAddr, err = e.startGatewayWith(ctx, "switchyard-cache", simAddr, cacheConfig); err != nil {
		return err
	}
	st.urls[PathCacheHit] = "http://" + cacheAddr
	res.CacheHit = true
	var guardAddr string
	if st.guard, guardAddr, err = e.startGatewayWith(ctx, "switchyard-guard", simAddr, guardConfig(filepath.Join(root, "policy", "rego"))); err != nil {
		return err
	}
	st.urls[PathGuard] = "http://" + guardAddr
	res.Guard = true
	var retrAddr string
	if st.retr, retrAddr, err = e.startGatewayWith(ctx, "switchyard-retrieval", simAddr,
		retrievalConfig(filepath.Join(root, retrievalCorpus), filepath.Join(e.dir, "retrieval-data"))); err != nil {
		return err
	}
	if res.RetrievalCorpus, err = retrievalReady(ctx, st.retr, "http://"+retrAddr); err != nil {
		return err
	}
	st.urls[PathRetrieval] = "http://" + retrAddr
	res.Retrieval = true
	if path, v, err := nginxVersion(o.nginx); err != nil {
		res.NginxNote = err.Error()
	} else {
		var ngAddr string
		var kids []int
		st.ng, ngAddr, err = e.startNginx(ctx, path, simAddr)
		if err == nil {
			kids, err = childrenOf(st.ng.pid())
			if err == nil && len(kids) == 0 {
				err = errors.New("no nginx worker process found")
			}
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			res.NginxNote = "nginx failed to start: " + oneLine(err.Error(), 300)
			if st.ng != nil {
				st.ng.stop()
				st.ng = nil
			}
		default:
			res.Nginx = v
			st.urls[PathNginx] = "http://" + ngAddr
			st.ngPIDs = append([]int{st.ng.pid()}, kids...)
		}
	}
	if res.Nginx == "" {
		fmt.Fprintf(stderr, "bench: skipping nginx: %s\n", res.NginxNote)
	}

	idle, err := readMem(st.gw.pid())
	if err != nil {
		return fmt.Errorf("reading switchyard's idle memory: %w", err)
	}
	res.Memory.IdleKB = idle.RSS
	if st.ng != nil {
		m, err := memOf(st.ngPIDs)
		if err != nil {
			return fmt.Errorf("reading nginx's idle memory: %w", err)
		}
		res.Memory.NginxIdleKB = m.RSS
	}

	allPaths := res.Paths()
	for rep := 1; rep <= o.repeats; rep++ {
		// Rotate the order of the paths from one repeat to the next, so that
		// none always follows another.
		paths := append(slices.Clone(allPaths[rep%len(allPaths):]), allPaths[:rep%len(allPaths)]...)
		for _, sc := range []string{ScenarioChat, ScenarioStream} {
			for _, rate := range o.rates {
				for _, path := range paths {
					fmt.Fprintf(stderr, "bench: repeat %d/%d %s %s open %g req/s\n", rep, o.repeats, sc, path, rate)
					s, err := e.measure(ctx, st, path, loadtest.Config{
						Mode: loadtest.ModeOpen, Rate: rate, Scenario: sc, Duration: o.duration,
					})
					if err != nil {
						return err
					}
					p := res.point(sc, path, "open", rate, 0)
					p.Samples = append(p.Samples, s)
				}
			}
		}
		for _, sc := range []string{ScenarioChat, ScenarioStream} {
			for _, path := range paths {
				fmt.Fprintf(stderr, "bench: repeat %d/%d %s %s closed %d conns\n", rep, o.repeats, sc, path, o.concurrency)
				s, err := e.measure(ctx, st, path, loadtest.Config{
					Mode: loadtest.ModeClosed, Concurrency: o.concurrency, Scenario: sc, Duration: o.closedDuration,
				})
				if err != nil {
					return err
				}
				p := res.point(sc, path, "closed", 0, o.concurrency)
				p.Samples = append(p.Samples, s)
			}
		}
	}

	peak, err := readMem(st.gw.pid())
	if err != nil {
		return fmt.Errorf("reading switchyard's peak memory: %w", err)
	}
	res.Memory.PeakKB = peak.HWM
	if st.ng != nil {
		m, err := memOf(st.ngPIDs)
		if err != nil {
			return fmt.Errorf("reading nginx's peak memory: %w", err)
		}
		res.Memory.NginxPeakKB = m.HWM
	}
	for _, p := range []*proc{st.sim, st.gw, st.adm, st.cache, st.guard, st.retr, st.ng} {
		if p == nil {
			continue
		}
		if err := p.alive(); err != nil {
			return err
		}
		if tail := p.logTail(); tail != "" && p != st.sim {
			res.Notes = append(res.Notes, fmt.Sprintf("%s logged during the run: `%s`", p.name, oneLine(tail, 300)))
		}
	}
	if st.ng != nil {
		if b, err := os.ReadFile(filepath.Join(e.dir, "nginx", "error.log")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("nginx's error log: `%s`", oneLine(string(b), 300)))
		}
	}
	for _, p := range []*proc{st.ng, st.retr, st.guard, st.cache, st.adm, st.gw, st.sim} {
		if p != nil {
			p.stop()
		}
	}

	if o.streams > 0 {
		if err := e.measureStreams(ctx, res); err != nil {
			return err
		}
	}
	if o.micro && !o.quick {
		if res.Micro, err = runMicro(ctx, root, stderr); err != nil {
			return err
		}
	}
	if o.withRouting && !o.quick {
		if res.Routing, err = e.runRouting(ctx, o.routingSetup, res.Command); err != nil {
			return err
		}
		res.Routing.Pinning = routingPinning(e, res.Pinning)
	}
	var br *BatchingResults
	if o.withBatching && !o.quick {
		if br, err = e.runBatching(ctx, o.batchingSetup, res.Command); err != nil {
			return err
		}
		br.Pinning = batchingPinning(e, res.Pinning)
	}

	res.LoadAfter = loadAvg()
	res.Elapsed = time.Since(began)
	res.Notes = append(res.Notes, noiseNotes(res)...)

	if err := writeJSON(o.jsonOut, fullResults{res, br}, stderr); err != nil {
		return err
	}
	return output(res, br, o.out, stdout, stderr)
}

// fullResults is the full run's results file: the Results and, beside
// them, the batching comparison (under "batching").
type fullResults struct {
	*Results
	Batching *BatchingResults `json:"batching,omitempty"`
}

// writeJSON writes v, indented, to path (--json); nothing when path is
// empty.
func writeJSON(path string, v any, stderr io.Writer) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	fmt.Fprintf(stderr, "bench: wrote %s\n", path)
	return nil
}

// output writes the markdown, with br's Batching section when br is not
// nil, to stdout and, when out is set, to out, and the plots next to it.
func output(res *Results, br *BatchingResults, out string, stdout, stderr io.Writer) error {
	var doc bytes.Buffer
	if err := RenderMarkdown(&doc, res); err != nil {
		return err
	}
	md := doc.Bytes()
	if br != nil {
		var sec strings.Builder
		renderBatching(&sec, br)
		var err error
		if md, err = spliceBatching(md, sec.String()); err != nil {
			return err
		}
	}
	if _, err := stdout.Write(md); err != nil {
		return err
	}
	if out == "" {
		return nil
	}
	if err := os.WriteFile(out, md, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	fmt.Fprintf(stderr, "bench: wrote %s\n", out)
	if res.Routing != nil {
		if err := writeRoutingSVG(res.Routing, out, stderr); err != nil {
			return err
		}
	}
	if br != nil {
		return writeBatchingSVG(br, out, stderr)
	}
	return nil
}

// rerender renders the markdown again from a --json results file.
func rerender(o options, stdout, stderr io.Writer) error {
	b, err := os.ReadFile(o.render)
	if err != nil {
		return err
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("reading results %s: %w", o.render, err)
	}
	br, err := readBatching(b)
	if err != nil {
		return fmt.Errorf("reading results %s: %w", o.render, err)
	}
	if o.addMicro {
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		if res.Micro, err = runMicro(context.Background(), root, stderr); err != nil {
			return err
		}
		b, err := json.MarshalIndent(fullResults{&res, br}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.render, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", o.render, err)
		}
	}
	return output(&res, br, o.out, stdout, stderr)
}

// Request shapes of the latency and throughput runs: short prompts and
// outputs, so that the proxy's per-request cost dominates.
const (
	promptTokens = 64
	outputTokens = 32
	streamTokens = 16
)

// measure runs one point against path: a warm-up run, then the measured run
// with the CPU time of the proxy and of the simulator read around it.
func (e *env) measure(ctx context.Context, st *stack, path string, cfg loadtest.Config) (Sample, error) {
	cfg.URL = st.urls[path]
	cfg.Model = benchModel
	cfg.PromptTokens = loadtest.Fixed(promptTokens)
	cfg.OutputTokens = loadtest.Fixed(outputTokens)
	if cfg.Scenario == ScenarioStream {
		cfg.OutputTokens = loadtest.Fixed(streamTokens)
	}
	cfg.Timeout = 10 * time.Second
	if e.o.warmup > 0 {
		w := cfg
		w.Duration = e.o.warmup
		if _, err := loadtest.Run(ctx, w); err != nil {
			return Sample{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return Sample{}, err
	}
	var proxyPIDs []int
	var metrics string // the retrieval stage's counts, read around the run
	switch path {
	case PathSwitchyard:
		proxyPIDs = []int{st.gw.pid()}
	case PathAdmission:
		proxyPIDs = []int{st.adm.pid()}
		cfg.APIKeys = []string{benchKey}
	case PathCacheHit:
		proxyPIDs = []int{st.cache.pid()}
		cfg.RepeatRatio = 1 // one prompt: after the first, every request is a hit
	case PathGuard:
		proxyPIDs = []int{st.guard.pid()}
	case PathRetrieval:
		proxyPIDs = []int{st.retr.pid()}
		metrics = cfg.URL + "/metrics"
	case PathNginx:
		proxyPIDs = st.ngPIDs
	}
	simPIDs := []int{st.sim.pid()}
	loadPIDs := []int{st.sim.pid(), os.Getpid()}
	read := func() (proxy, sim, load uint64, err error) {
		if proxy, err = cpuOf(proxyPIDs); err != nil {
			return
		}
		if sim, err = cpuOf(simPIDs); err != nil {
			return
		}
		load, err = cpuOf(loadPIDs)
		return
	}
	// The stage's counts are read outside the CPU window. A gateway still
	// busy with an overloaded point's backlog may answer its /metrics
	// late or not at all: the sample then goes without them (the section
	// says how many runs it has them of) rather than the run failing.
	var m0 retrievalCounters
	var m0err error
	if metrics != "" {
		if m0, m0err = scrapeRetrieval(metrics); m0err != nil {
			fmt.Fprintf(e.log, "bench: %s: no retrieval figures for this run: %v\n", path, m0err)
		}
	}
	p0, s0, l0, err := read()
	if err != nil {
		return Sample{}, err
	}
	t0 := time.Now()
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return Sample{}, err
	}
	wall := time.Since(t0).Seconds()
	p1, s1, l1, err := read()
	if err != nil {
		return Sample{}, err
	}
	// An overloaded point leaves its gateway working through a backlog
	// after the load ends (answers nobody waits for any more); let it
	// finish, so that it does not take the CPU from the next point's
	// proxy, and before the stage's counts are read.
	e.settle(ctx, path, proxyPIDs)
	var retr *RetrievalSample
	if metrics != "" && m0err == nil {
		if m1, err := scrapeRetrieval(metrics); err != nil {
			fmt.Fprintf(e.log, "bench: %s: no retrieval figures for this run: %v\n", path, err)
		} else {
			retr = m1.since(m0)
		}
	}
	if err := ctx.Err(); err != nil {
		return Sample{}, err
	}
	perReq := func(ticks uint64) float64 {
		if rep.Requests == 0 {
			return 0
		}
		return float64(ticks) / e.hz / float64(rep.Requests) * 1e6
	}
	busy := func(ticks uint64) float64 { return float64(ticks) / e.hz / wall }
	s := Sample{
		P50US: rep.Latency.P50 * 1000, P99US: rep.Latency.P99 * 1000,
		Throughput: rep.Throughput, Requests: rep.Requests, Errors: rep.Failures,
		ProxyCPUUS: perReq(p1 - p0), UpstreamCPUUS: perReq(s1 - s0),
		ProxyBusy: busy(p1 - p0), LoadBusy: busy(l1 - l0),
		Retrieval: retr,
	}
	if rep.Successes > 0 {
		s.PromptTokens = float64(rep.Tokens.Prompt) / float64(rep.Successes)
	}
	if rep.TTFT != nil {
		s.TTFTP50US, s.TTFTP99US = rep.TTFT.P50*1000, rep.TTFT.P99*1000
	}
	if len(rep.Errors) > 0 {
		s.ErrorKinds = rep.Errors
	}
	return s, nil
}

// settle waits until pids are idle: their CPU time grows by at most one
// tick in settleEvery; at most settleMax, then it says so and returns.
func (e *env) settle(ctx context.Context, path string, pids []int) {
	if len(pids) == 0 {
		return
	}
	prev, err := cpuOf(pids)
	if err != nil {
		return
	}
	t := time.NewTicker(settleEvery)
	defer t.Stop()
	for start := time.Now(); time.Since(start) < settleMax; {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur, err := cpuOf(pids)
		if err != nil || cur-prev <= 1 {
			if waited := time.Since(start); waited > 5*settleEvery {
				fmt.Fprintf(e.log, "bench: %s was busy for %s after the load\n", path, waited.Round(10*time.Millisecond))
			}
			return
		}
		prev = cur
	}
	fmt.Fprintf(e.log, "bench: %s still busy %s after the load; going on\n", path, settleMax)
}

// How often and how long settle looks.
const (
	settleEvery = 100 * time.Millisecond
	settleMax   = 30 * time.Second
)

// measureStreams opens o.streams long streams at once through a fresh
// gateway in front of a slow simulator and samples the gateway's memory
// while they are open.
func (e *env) measureStreams(ctx context.Context, res *Results) error {
	o := e.o
	fmt.Fprintf(e.log, "bench: %d concurrent streams through a fresh gateway\n", o.streams)
	sim, simAddr, err := e.startSim(ctx, "sim-slow", "--itl", o.streamITL.String(), "--itl-per-seq", "0")
	if err != nil {
		return err
	}
	defer sim.stop()
	gw, gwAddr, err := e.startGateway(ctx, "switchyard-streams", simAddr)
	if err != nil {
		return err
	}
	defer gw.stop()
	idle, err := readMem(gw.pid())
	if err != nil {
		return err
	}
	m := &res.Memory
	m.Streams = o.streams
	m.StreamsIdleKB = idle.RSS
	m.StreamLen = fmt.Sprintf("%d tokens at %s", o.streamTokens, o.streamITL)
	smp := sampleMem([]int{gw.pid()}, 50*time.Millisecond)
	rep, err := loadtest.Run(ctx, loadtest.Config{
		URL: "http://" + gwAddr, Model: benchModel, Scenario: ScenarioStream,
		Mode: loadtest.ModeClosed, Concurrency: o.streams, Requests: o.streams,
		PromptTokens: loadtest.Fixed(promptTokens), OutputTokens: loadtest.Fixed(o.streamTokens),
		Timeout: time.Minute,
	})
	mx, serr := smp.Stop()
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("sampling the gateway's memory: %w", serr)
	}
	if err := gw.alive(); err != nil {
		return err
	}
	after, err := readMem(gw.pid())
	if err != nil {
		return err
	}
	m.StreamsRSSKB = mx.RSS
	m.StreamsHWMKB = after.HWM
	m.StreamsOK, m.StreamsErrors = rep.Successes, rep.Failures
	if len(rep.Errors) > 0 {
		m.StreamsErrorKinds = rep.Errors
	}
	if rep.TTFT != nil {
		m.StreamsTTFTMax = rep.TTFT.Max
	}
	return nil
}

// noiseNotes says how noisy the run was: the load average and the widest
// spread of the repeated p50s.
func noiseNotes(r *Results) []string {
	notes := []string{fmt.Sprintf("The machine is shared (other engineers build and test on the same %d CPUs), so the figures are noisy: the load average was %s before the run and %s after it.", r.NProc, r.LoadBefore, r.LoadAfter)}
	var worst float64
	var worstAt string
	for _, p := range r.Points {
		a := p.Agg()
		if a.N < 2 || !(a.P50 > 0) {
			continue
		}
		if spread := (a.P50Max - a.P50Min) / a.P50; spread > worst {
			worst = spread
			worstAt = fmt.Sprintf("%s via %s, %s", p.Scenario, p.Path, loadLabel(p))
		}
	}
	if worstAt != "" {
		notes = append(notes, fmt.Sprintf("The widest spread of a p50 over the %d repeats was %.0f%% of its median (%s); compare the ranges in brackets before reading much into differences of a few µs.", r.Settings.Repeats, worst*100, worstAt))
	}
	return notes
}

func loadLabel(p *Point) string {
	if p.Mode == "closed" {
		return fmt.Sprintf("closed loop, %d conns", p.Concurrency)
	}
	return fmt.Sprintf("%g req/s", p.Rate)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "`", "'")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
