package loadtest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's idle-connection cleaner exits on its own once its
		// HostClient has no connections left; Run closes them all.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		// The test servers' worker-pool cleaners sleep out their period after Shutdown.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// Process-wide fasthttp helpers (DNS cache cleaner, Date header clock).
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

// ms converts a duration to the report's unit.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// checkRange fails if got is outside [lo, hi] (milliseconds).
func checkRange(t *testing.T, what string, got float64, lo, hi time.Duration) {
	t.Helper()
	if got < ms(lo) || got > ms(hi) {
		t.Errorf("%s = %.2fms, want within [%v, %v]", what, got, lo, hi)
	}
}

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	if cfg.Model == "" {
		cfg.Model = "test-model"
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("requests=%d ok=%d errors=%v latency=%+v ttft=%+v", rep.Requests, rep.Successes, rep.Errors, rep.Latency, rep.TTFT)
	return rep
}

// Tolerances for timed checks. These are unit tests on shared, noisy
// machines, so only bounds that load cannot break are tight: the fixed
// server delay is a hard lower bound (a percentile below it means the
// generator mismeasures; load only makes requests slower), and so is the
// length of a duration-bound run. Upper bounds are sanity bounds, not
// performance checks: a loaded 2-core machine under -race has stretched a
// 70 ms run to 334 ms, and with the cores twice oversubscribed an open
// loop falls so far behind its schedule that p99, timed from the intended
// send, passed 1 s for a 20 ms server. So slack only catches a gross
// mismeasure (a unit error: 20 ms read as 20 s), and hangBound only a run
// that does not stop. The generator's own overhead (about 1-2 ms at p50,
// under 5 ms at p99 on an idle machine) is for the benchmarks to show, not
// for these tests to assert.
const (
	serverDelay = 20 * time.Millisecond
	slack       = 5 * time.Second
	hangBound   = 5 * time.Second
)

func TestPercentilesWithFixedDelay(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(s *testServer) { s.delay = serverDelay })
	tests := []struct {
		name string
		cfg  Config
		want int64
	}{
		{"open", Config{Mode: ModeOpen, Rate: 200, Requests: 100}, 100},
		{"closed", Config{Mode: ModeClosed, Concurrency: 4, Requests: 100}, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.URL = srv.URL
			rep := run(t, cfg)
			if rep.Requests != tc.want || rep.Successes != tc.want {
				t.Fatalf("requests=%d successes=%d errors=%v, want %d each", rep.Requests, rep.Successes, rep.Errors, tc.want)
			}
			l := rep.Latency
			checkRange(t, "min", l.Min, serverDelay, serverDelay+slack)
			checkRange(t, "p50", l.P50, serverDelay, serverDelay+slack)
			checkRange(t, "p90", l.P90, serverDelay, serverDelay+slack)
			checkRange(t, "p99", l.P99, serverDelay, serverDelay+slack)
			if !(l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
				t.Errorf("percentiles not ordered: %+v", l)
			}
			if rep.Tokens.Prompt != 10*tc.want || rep.Tokens.Completion != 4*tc.want {
				t.Errorf("tokens = %+v, want prompt %d completion %d", rep.Tokens, 10*tc.want, 4*tc.want)
			}
			if rep.Tokens.Cached != 4*tc.want || rep.Tokens.CachedShare != 0.4 {
				t.Errorf("cached tokens = %d (share %g), want %d (0.4)", rep.Tokens.Cached, rep.Tokens.CachedShare, 4*tc.want)
			}
		})
	}
}

// TestOpenLoopKeepsScheduleThroughStall stalls the server for 300 ms in the
// middle of an open-loop run. The generator must keep sending on schedule,
// and requests that arrived during the stall must carry the time they
// waited, measured from their intended send time.
func TestOpenLoopKeepsScheduleThroughStall(t *testing.T) {
	t.Parallel()
	const (
		rate  = 200
		dur   = 1500 * time.Millisecond
		stall = 300 * time.Millisecond
	)
	srv := newTestServer(t, func(s *testServer) {
		s.delay = serverDelay
		s.stallAfter = 100 // half a second in
		s.stallFor = stall
	})
	rep := run(t, Config{URL: srv.URL, Mode: ModeOpen, Rate: rate, Duration: dur})
	want := int64(rate * dur.Seconds())
	if rep.Requests != want || srv.received.Load() != want {
		t.Fatalf("sent %d (server got %d), want rate*duration = %d", rep.Requests, srv.received.Load(), want)
	}
	if rep.Successes != want {
		t.Fatalf("successes = %d, errors %v", rep.Successes, rep.Errors)
	}
	// Throughput counts completions within the window, so a loaded machine
	// lowers it (late answers fall out): the lower bound is loose. Above
	// the rate it cannot go, since no more was sent.
	if rep.Throughput < rate*0.5 || rep.Throughput > rate*1.02 || rep.WindowSeconds != dur.Seconds() {
		t.Errorf("throughput = %.1f over %.2fs, want about %d over %v", rep.Throughput, rep.WindowSeconds, rate, dur)
	}
	// The send rate comes from the schedule (requests over the due times
	// of the first and last), not from when requests went out.
	if rep.SendRate < rate*0.95 || rep.SendRate > rate*1.05 {
		t.Errorf("send rate = %.1f, want %d within 5%%", rep.SendRate, rate)
	}
	l := rep.Latency
	// About 60 of 300 requests arrive during the stall and wait 0-300 ms
	// for it to end: the slowest waited the whole stall.
	checkRange(t, "max", l.Max, stall, stall+serverDelay+slack)
	checkRange(t, "p50", l.P50, serverDelay, serverDelay+slack)
	// The top 10% are all stalled requests, waiting at least half the stall
	// (about 175 ms on an idle machine).
	checkRange(t, "p90", l.P90, stall/2, stall+slack)
}

func TestBounds(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(s *testServer) { s.delay = 5 * time.Millisecond })
	tests := []struct {
		name        string
		cfg         Config
		wantReqs    int64         // measured
		wantSent    int64         // by the server, warm-up included; 0: not checked
		wantAtLeast time.Duration // least time the run can take
	}{
		// The last of 70 requests is due at 690 ms and takes 5 ms.
		{"open duration+warmup", Config{Mode: ModeOpen, Rate: 100, Duration: 500 * time.Millisecond, Warmup: 200 * time.Millisecond}, 50, 70, 695 * time.Millisecond},
		// The last of 37 is due at 72 ms and takes 5 ms.
		{"open count", Config{Mode: ModeOpen, Rate: 500, Requests: 37}, 37, 37, 77 * time.Millisecond},
		// 41 requests of 5 ms over 3 users: one user sends 14 in turn.
		{"closed count", Config{Mode: ModeClosed, Concurrency: 3, Requests: 41}, 41, 41, 70 * time.Millisecond},
		// Users send until the duration is over.
		{"closed duration", Config{Mode: ModeClosed, Concurrency: 2, Duration: 300 * time.Millisecond}, -1, 0, 300 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.received.Load()
			cfg := tc.cfg
			cfg.URL = srv.URL
			cfg.Scenario = ScenarioEmbeddings
			begin := time.Now()
			rep := run(t, cfg)
			took := time.Since(begin)
			if tc.wantReqs >= 0 && rep.Requests != tc.wantReqs {
				t.Errorf("measured requests = %d, want %d", rep.Requests, tc.wantReqs)
			}
			if got := srv.received.Load() - before; tc.wantSent > 0 && got != tc.wantSent {
				t.Errorf("server received %d, want %d", got, tc.wantSent)
			}
			if rep.Failures != 0 {
				t.Errorf("failures %d: %v", rep.Failures, rep.Errors)
			}
			// A run cannot end before its bound (the last open-loop request
			// is due one interval before the end, and takes 5 ms): load only
			// makes it longer. How much longer is the machine's business;
			// hangBound only catches a run that does not stop.
			if took < tc.wantAtLeast || took > tc.wantAtLeast+hangBound {
				t.Errorf("run took %v, want at least %v and less than %v more", took, tc.wantAtLeast, hangBound)
			}
		})
	}
}

func TestStreamTTFTAndITL(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(s *testServer) {
		s.delay = 30 * time.Millisecond
		s.itl = 10 * time.Millisecond
		s.chunks = 5
	})
	rep := run(t, Config{URL: srv.URL, Mode: ModeOpen, Rate: 100, Requests: 30, Scenario: ScenarioStream})
	if rep.Successes != 30 {
		t.Fatalf("successes = %d, errors %v", rep.Successes, rep.Errors)
	}
	if rep.TTFT == nil || rep.ITL == nil {
		t.Fatalf("missing TTFT or ITL: %+v", rep.Stats)
	}
	checkRange(t, "ttft p50", rep.TTFT.P50, 30*time.Millisecond, 30*time.Millisecond+slack)
	checkRange(t, "itl p50", rep.ITL.P50, 10*time.Millisecond, 10*time.Millisecond+slack)
	checkRange(t, "latency p50", rep.Latency.P50, 70*time.Millisecond, 70*time.Millisecond+slack)
	if rep.ITL.Count != 30*4 {
		t.Errorf("itl count = %d, want %d", rep.ITL.Count, 30*4)
	}
	if rep.Tokens.Completion != 150 || rep.Tokens.Prompt != 300 {
		t.Errorf("tokens = %+v, want 300 prompt, 150 completion", rep.Tokens)
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		configure func(*testServer)
		cfg       Config
		wantErr   string
		wantCount int64
	}{
		{"429", nil, Config{Scenario: ScenarioChat, APIKeys: []string{"limited"}}, "http_429", 10},
		{"truncated stream", func(s *testServer) { s.truncate = true }, Config{Scenario: ScenarioStream}, ErrStreamTruncated, 10},
		{"error event", func(s *testServer) { s.errEvent = true }, Config{Scenario: ScenarioStream}, ErrStreamError, 10},
		{"not found", nil, Config{Scenario: ScenarioChat, URL: "/nope"}, "http_404", 10},
		{"connect", nil, Config{Scenario: ScenarioChat, URL: "http://127.0.0.1:1"}, ErrConnect, 10},
		// The first 2 requests hold both slots while the other 8 fall due
		// (within 45 ms); the 1 s delay keeps them held however late a
		// loaded machine runs the schedule.
		{"dropped", func(s *testServer) { s.delay = time.Second }, Config{Scenario: ScenarioEmbeddings, MaxInflight: 2}, ErrDropped, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestServer(t, tc.configure)
			cfg := tc.cfg
			switch {
			case cfg.URL == "":
				cfg.URL = srv.URL
			case strings.HasPrefix(cfg.URL, "/"):
				cfg.URL = srv.URL + cfg.URL
			}
			cfg.Mode, cfg.Rate, cfg.Requests, cfg.Timeout = ModeOpen, 200, 10, 5*time.Second
			rep := run(t, cfg)
			if rep.Requests != 10 || rep.Errors[tc.wantErr] != tc.wantCount {
				t.Errorf("requests=%d errors=%v status=%v, want %s=%d", rep.Requests, rep.Errors, rep.Status, tc.wantErr, tc.wantCount)
			}
		})
	}
}

func TestMixKeysAndCache(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(s *testServer) { s.delay = time.Millisecond; s.itl = time.Millisecond })
	rep := run(t, Config{
		URL: srv.URL, Mode: ModeClosed, Concurrency: 4, Requests: 300,
		Scenario: ScenarioMix, Mix: map[string]float64{"chat": 1, "stream": 1, "completions": 1, "embeddings": 1},
		APIKeys: []string{"a", "b", "c"},
	})
	if rep.Successes != 300 {
		t.Fatalf("successes = %d, errors %v", rep.Successes, rep.Errors)
	}
	for _, name := range []string{"chat", "stream", "completions", "embeddings"} {
		s := rep.Scenarios[name]
		if s == nil || s.Requests < 40 {
			t.Errorf("scenario %s: %+v, want about 75 requests", name, s)
		}
	}
	keys := srv.keyCounts()
	for _, k := range []string{"Bearer a", "Bearer b", "Bearer c"} {
		if keys[k] != 100 {
			t.Errorf("key %q used %d times, want 100 (round robin); all: %v", k, keys[k], keys)
		}
	}
	if rep.Cache["miss"] != 300 {
		t.Errorf("cache = %v, want miss=300", rep.Cache)
	}
	if rep.TTFT == nil || rep.Scenarios["chat"].TTFT != nil {
		t.Errorf("TTFT should be reported for streams only")
	}
	var sb strings.Builder
	if err := rep.WriteTable(&sb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"closed loop, 4 users", "latency", "ttft", "itl", "stream latency", "cache", "miss=300"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, sb.String())
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"throughput", "latency_ms", "ttft_ms", "itl_ms", "scenarios", "tokens", "status", "errors"} {
		if _, ok := back[key]; !ok {
			t.Errorf("JSON lacks %q: %s", key, b)
		}
	}
}

func TestCancelStopsRun(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(s *testServer) {
		s.delay = time.Millisecond
		s.itl = 100 * time.Millisecond
		s.chunks = 100 // 10 s per stream
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := Config{URL: srv.URL, Model: "m", Mode: ModeOpen, Rate: 50, Duration: time.Minute, Scenario: ScenarioStream}
	// Cancel once the server has seen some streams start.
	canceled := make(chan time.Time, 1)
	go func() {
		deadline := time.Now().Add(5 * time.Second)
		for srv.received.Load() < 10 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		canceled <- time.Now()
		cancel()
	}()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Timed from the cancel, not from the start of the run; the streams
	// would run 10 s, so "at once" only has to beat that, by a wide margin.
	if took := time.Since(<-canceled); took > 3*time.Second {
		t.Errorf("Run returned %v after cancel, want < 3s (streams last 10s)", took)
	}
	if rep.Errors[ErrCanceled] == 0 {
		t.Errorf("errors = %v, want canceled streams", rep.Errors)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	_, err := Run(context.Background(), Config{URL: "ftp://x", Mode: "sideways"})
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"url", "mode", "model", "duration or requests"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestClientURIs(t *testing.T) {
	t.Parallel()
	tests := []struct{ base, want string }{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/chat/completions"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1/chat/completions"},
		{"http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1/chat/completions"},
		{"http://h/proxy/v1/", "http://h/proxy/v1/chat/completions"},
		{"https://h", "https://h/v1/chat/completions"},
	}
	for _, tc := range tests {
		c, err := newClient(Config{URL: tc.base}.withDefaults())
		if err != nil {
			t.Fatalf("%s: %v", tc.base, err)
		}
		if got := c.uris[kindChat]; got != tc.want {
			t.Errorf("%s: chat URI %q, want %q", tc.base, got, tc.want)
		}
		if wantTLS := strings.HasPrefix(tc.base, "https"); c.hc.IsTLS != wantTLS || !strings.Contains(c.hc.Addr, ":") {
			t.Errorf("%s: addr %q tls %v", tc.base, c.hc.Addr, c.hc.IsTLS)
		}
	}
}
