package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/backends/sim"
	"switchyard/gateway/config"
)

// fixtureBatching is the fixed result set of testdata/batching.json: both
// workloads at 1, 16, 64 and 256 clients, off, on and on with a 2ms delay,
// two samples each.
func fixtureBatching(t *testing.T) *BatchingResults {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "batching.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r BatchingResults
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// fixtureBatchingSmall is the fixture cut to the embeddings, 16 and 64
// clients and batching on without a delay: no 1-client point, no 256.
func fixtureBatchingSmall(t *testing.T) *BatchingResults {
	r := fixtureBatching(t)
	r.Setup.Workloads, r.Setup.Clients, r.Setup.Delays = []string{BatchEmbeddings}, []int{16, 64}, []time.Duration{0}
	r.Points = slices.DeleteFunc(r.Points, func(p *BatchingPoint) bool {
		return p.Workload != BatchEmbeddings || (p.Clients != 16 && p.Clients != 64) || p.Mode.Delay != 0
	})
	r.Notes = nil
	return r
}

func TestBatchingConfigValid(t *testing.T) {
	s := defaultBatchingSetup()
	for _, m := range s.modes() {
		t.Run(m.name(), func(t *testing.T) {
			text := batchingConfig(s, m, "127.0.0.1:18080")
			cfg, err := config.Parse([]byte(text), "batching.yaml")
			if err != nil {
				t.Fatalf("gateway rejects the generated config: %v\n%s", err, text)
			}
			if len(cfg.Backends) != 1 || cfg.Backends[0].Kind != config.KindSim || len(cfg.Models) != 2 {
				t.Fatalf("%d backends and %d pools, want one sim backend and 2 pools:\n%s", len(cfg.Backends), len(cfg.Models), text)
			}
			if _, err := sim.OptionsFromMap(cfg.Backends[0].Sim); err != nil {
				t.Errorf("the simulator rejects its options: %v", err)
			}
			for k, want := range map[string]string{
				"embed-model": batchEmbedModel, "embed-call-overhead": "5ms", "embed-per-item": "100us", "embed-concurrency": "4",
				"embed-dim": "64", "classifier-model": batchClassifierModel, "classifier-features": "16", "classifier-concurrency": "4",
			} {
				if got := cfg.Backends[0].Sim[k]; got != want {
					t.Errorf("sim %s = %q, want %q", k, got, want)
				}
			}
			for i, name := range []string{batchEmbedModel, batchClassifierModel} {
				p := cfg.Models[i]
				if p.Name != name || len(p.Targets) != 1 || p.Retry.Attempts != 1 {
					t.Errorf("pool %d: %+v, want %s with one target and one attempt", i, p, name)
				}
				switch {
				case !m.On && p.Batching != nil:
					t.Errorf("pool %s: batching %+v with batching off", name, p.Batching)
				case m.On && p.Batching == nil:
					t.Errorf("pool %s: no batching with batching on", name)
				case m.On:
					bt := p.Batching
					if bt.MaxBatchSize != 64 || time.Duration(bt.MaxQueueDelay) != m.Delay || bt.MaxInFlight != 4 {
						t.Errorf("pool %s: batching %+v, want max batch 64, delay %v, 4 in flight", name, bt, m.Delay)
					}
				}
			}
		})
	}
}

func TestBatchingSetupValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(s *BatchingSetup)
		wantErr string
	}{
		{"ok", func(s *BatchingSetup) {}, ""},
		{"ok off only", func(s *BatchingSetup) { s.Delays = nil }, ""},
		{"ok one workload", func(s *BatchingSetup) { s.Workloads = []string{BatchClassifier} }, ""},
		{"no workloads", func(s *BatchingSetup) { s.Workloads = nil }, "at least one of"},
		{"unknown workload", func(s *BatchingSetup) { s.Workloads = []string{"chat"} }, `unknown workload "chat"`},
		{"workload twice", func(s *BatchingSetup) { s.Workloads = []string{BatchEmbeddings, BatchEmbeddings} }, "named twice"},
		{"no clients", func(s *BatchingSetup) { s.Clients = nil }, "--batching-clients: at least one"},
		{"zero clients", func(s *BatchingSetup) { s.Clients = []int{0} }, "--batching-clients: 0"},
		{"clients twice", func(s *BatchingSetup) { s.Clients = []int{16, 16} }, "concurrency is named twice"},
		{"negative delay", func(s *BatchingSetup) { s.Delays = []time.Duration{-time.Millisecond} }, "--batching-delays: -1ms"},
		{"delay twice", func(s *BatchingSetup) { s.Delays = []time.Duration{0, 0} }, "delay is named twice"},
		{"batch size", func(s *BatchingSetup) { s.MaxBatchSize = 0 }, "--batching-max-batch-size 0"},
		{"costs", func(s *BatchingSetup) { s.EmbedPerItem = -1 }, "negative simulator costs"},
		{"slots", func(s *BatchingSetup) { s.ClassifierConcurrency = 0 }, "concurrency must be positive"},
		{"classes", func(s *BatchingSetup) { s.ClassifierClasses = 1 }, "classes 1"},
		{"duration", func(s *BatchingSetup) { s.Duration = 0 }, "--batching-duration 0s"},
		{"repeats", func(s *BatchingSetup) { s.Repeats = 21 }, "--batching-repeats 21"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := defaultBatchingSetup()
			tc.mod(&s)
			err := s.validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("validate error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseBatchingFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags(nil, &stderr)
	bs := o.batchingSetup
	if err != nil || o.batching || !o.withBatching || !slices.Equal(bs.Workloads, []string{BatchEmbeddings, BatchClassifier}) ||
		!slices.Equal(bs.Clients, []int{1, 16, 64, 256}) || !slices.Equal(bs.Delays, []time.Duration{0, 2 * time.Millisecond}) ||
		bs.Repeats != 3 || bs.Duration != 2*time.Second || bs.Warmup != 500*time.Millisecond || bs.MaxBatchSize != 64 {
		t.Errorf("defaults: batching %v, with-batching %v, %+v, %v", o.batching, o.withBatching, bs, err)
	}
	o, err = parseFlags([]string{"--batching", "--batching-workloads", " classifier ", "--batching-clients", "8, 32", "--batching-delays", "0,1ms, 5ms",
		"--batching-max-batch-size", "32", "--batching-duration", "3s", "--batching-warmup", "0s", "--batching-repeats", "5"}, &stderr)
	bs = o.batchingSetup
	if err != nil || !o.batching || !slices.Equal(bs.Workloads, []string{BatchClassifier}) || !slices.Equal(bs.Clients, []int{8, 32}) ||
		!slices.Equal(bs.Delays, []time.Duration{0, time.Millisecond, 5 * time.Millisecond}) || bs.MaxBatchSize != 32 ||
		bs.Duration != 3*time.Second || bs.Warmup != 0 || bs.Repeats != 5 {
		t.Errorf("parsed %+v, %v", bs, err)
	}
	o, err = parseFlags([]string{"--batching", "--batching-delays", ""}, &stderr)
	if err != nil || len(o.batchingSetup.Delays) != 0 || len(o.batchingSetup.modes()) != 1 {
		t.Errorf("--batching-delays '': %+v, %v", o.batchingSetup, err)
	}
	o, err = parseFlags([]string{"--batching", "--quick"}, &stderr)
	if err != nil || o.batchingSetup.Repeats != 1 || o.batchingSetup.Duration != time.Second || o.batchingSetup.Warmup != 300*time.Millisecond {
		t.Errorf("--batching --quick: %+v, %v", o.batchingSetup, err)
	}
	o, err = parseFlags([]string{"--batching", "--quick", "--batching-repeats", "2"}, &stderr)
	if err != nil || o.batchingSetup.Repeats != 2 {
		t.Errorf("--batching --quick with an explicit repeat count: %+v, %v", o.batchingSetup, err)
	}
	if o, err := parseFlags([]string{"--with-batching=false"}, &stderr); err != nil || o.withBatching {
		t.Errorf("--with-batching=false: %v, %v", o.withBatching, err)
	}
	for _, bad := range [][]string{
		{"--batching-clients", "x"}, {"--batching-clients", "0"}, {"--batching-clients", ","}, {"--batching-delays", "2"},
		{"--batching-workloads", "chat"}, {"--batching-repeats", "0"}, {"--batching-max-batch-size", "0"}, {"--routing", "--batching"},
	} {
		if _, err := parseFlags(bad, &stderr); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

func TestBatchingModes(t *testing.T) {
	s := defaultBatchingSetup()
	var names, labels []string
	for _, m := range s.modes() {
		names, labels = append(names, m.name()), append(labels, m.String())
	}
	if !slices.Equal(names, []string{"off", "on", "on-2ms"}) || !slices.Equal(labels, []string{"off", "on", "on, delay 2ms"}) {
		t.Errorf("modes %q, %q", names, labels)
	}
	if d := s.serviceTime(BatchEmbeddings, 1); d != 5100*time.Microsecond {
		t.Errorf("embeddings batch of one: %v, want 5.1ms", d)
	}
	if d := s.serviceTime(BatchClassifier, 64); d != 6280*time.Microsecond {
		t.Errorf("classifier batch of 64: %v, want 6.28ms", d)
	}
	if v := s.bound(BatchEmbeddings, 1); v < 784 || v > 785 {
		t.Errorf("embeddings bound in calls of one: %g, want 4/5.1ms", v)
	}
}

func TestBatchingAgg(t *testing.T) {
	r := fixtureBatching(t)
	a := r.Find(BatchClassifier, 256, BatchingMode{}).Agg()
	if a.N != 2 || a.Throughput != 694.6 || a.TMin != 681 || a.TMax != 708.2 || a.P50 != 367.7885 || a.Requests != 2778 || a.Errors != 3 || a.ErrorKinds["timeout"] != 3 {
		t.Errorf("agg %+v", a)
	}
	if p := r.Find(BatchEmbeddings, 256, BatchingMode{On: true, Delay: time.Millisecond}); p != nil {
		t.Errorf("found a point of a delay not run: %+v", p)
	}
}

func TestRenderBatchingGolden(t *testing.T) {
	for name, r := range map[string]*BatchingResults{
		"batching.golden.md":       fixtureBatching(t),
		"batching-small.golden.md": fixtureBatchingSmall(t),
	} {
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			renderBatching(&b, r)
			golden(t, name, []byte(b.String()))
		})
	}
	// Batching off alone has nothing to compare.
	r := fixtureBatchingSmall(t)
	r.Setup.Delays = nil
	var b strings.Builder
	renderBatching(&b, r)
	if !strings.Contains(b.String(), "Batching on was not run") {
		t.Errorf("off only:\n%s", b.String())
	}
}

// The plot is well-formed XML with one line per workload and setting.
func TestBatchingSVG(t *testing.T) {
	svg := BatchingSVG(fixtureBatching(t))
	golden(t, "batching.golden.svg", []byte(svg))
	d := xml.NewDecoder(strings.NewReader(svg))
	lines := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 6 {
		t.Errorf("%d polylines, want one per workload and setting (6)", lines)
	}
	if empty := BatchingSVG(&BatchingResults{Setup: defaultBatchingSetup()}); !strings.HasSuffix(empty, "</svg>\n") {
		t.Errorf("empty plot: %s", empty)
	}
	if got := batchingASCII(&BatchingResults{Setup: defaultBatchingSetup()}); got != "(no points)\n" {
		t.Errorf("empty text plot: %q", got)
	}
}

func TestLogDecades(t *testing.T) {
	f := func(vs []float64, lo, hi float64, ok bool) {
		t.Helper()
		l, h, k := logDecades(vs)
		if l != lo || h != hi || k != ok {
			t.Errorf("logDecades(%v) = %g, %g, %v; want %g, %g, %v", vs, l, h, k, lo, hi, ok)
		}
	}
	f([]float64{173, 4637}, 2, 4, true)
	f([]float64{100}, 2, 3, true)
	f([]float64{0, -1}, 0, 0, false)
	f(nil, 0, 0, false)
}

func TestSpliceBatching(t *testing.T) {
	section := batchingBegin + "\n## Batching\n\nnew\n" + batchingEnd + "\n"
	routing := routingBegin + "\n## Routing\n\nr\n" + routingEnd + "\n"
	tests := []struct {
		name, doc, want string
	}{
		{"replaces between the markers",
			"# B\n\n" + batchingBegin + "\n## Batching\n\nold\nold\n" + batchingEnd + "\n\n## Budget\n\nb\n",
			"# B\n\n" + section + "\n## Budget\n\nb\n"},
		{"inserts before Budget, after Routing", "# B\n\n" + routing + "\n## Budget\n\nb\n", "# B\n\n" + routing + "\n" + section + "\n## Budget\n\nb\n"},
		{"appends", "# B\n\nx", "# B\n\nx\n\n" + section},
		{"begin without end", "# B\n" + batchingBegin + "\nx\n", ""},
		{"end without begin", "# B\n" + batchingEnd + "\nx\n", ""},
		{"end before begin", "# B\n" + batchingEnd + "\nx\n" + batchingBegin + "\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := spliceBatching([]byte(tc.doc), section)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), "not both there") {
					t.Fatalf("spliceBatching(%q) = %q, %v; want an error about the markers", tc.doc, got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("spliceBatching:\n%q, %v\nwant:\n%q", got, err, tc.want)
			}
			if again, err := spliceBatching(got, section); err != nil || !bytes.Equal(again, got) {
				t.Errorf("splicing twice changed the document: %v\n%q", err, again)
			}
		})
	}
}

// The full run's file (output with the batching results) is the plain
// render with the section spliced in, which is what --batching splices
// into it again; its results file renders the same through --render, and
// --batching --render renders the section from it and from the
// comparison's own file.
func TestBatchingFullRun(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "BENCHMARKS.md")
	res := fixtureResults(true)
	res.Routing = fixtureRouting(true)
	br := fixtureBatching(t)
	if err := output(res, br, out, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	if err := RenderMarkdown(&plain, res); err != nil {
		t.Fatal(err)
	}
	var sec strings.Builder
	renderBatching(&sec, br)
	if want := mustSpliceBatching(t, plain.Bytes(), sec.String()); !bytes.Equal(full, want) {
		t.Errorf("the full run's file is not the plain render with the section spliced in:\n%s", full)
	}
	if i, j := bytes.Index(full, []byte(routingEnd)), bytes.Index(full, []byte(batchingBegin)); i < 0 || j < i {
		t.Error("the Batching section does not follow the Routing section")
	}
	if !bytes.HasSuffix(full, plain.Bytes()[bytes.Index(plain.Bytes(), []byte("\n## Budget")):]) {
		t.Error("the sections after Batching changed")
	}
	for _, svg := range []string{routingSVGPath, batchingSVGPath} {
		if _, err := os.Stat(filepath.Join(dir, svg)); err != nil {
			t.Errorf("plot: %v", err)
		}
	}

	// --render of the full run's results file.
	data, err := json.Marshal(fullResults{res, br})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "full.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(dir, "again.md")
	var stderr bytes.Buffer
	if code := run([]string{"--render", path, "--out", out2}, io.Discard, &stderr); code != 0 {
		t.Fatalf("--render: exit %d: %s", code, stderr.String())
	}
	if again, _ := os.ReadFile(out2); !bytes.Equal(again, full) {
		t.Errorf("--render of the full results differs:\n%s", again)
	}

	// --batching --render of the full run's file and of the comparison's
	// own: the section in place, the rest byte for byte.
	own, err := json.Marshal(br)
	if err != nil {
		t.Fatal(err)
	}
	ownPath := filepath.Join(dir, "own.json")
	if err := os.WriteFile(ownPath, own, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, ownPath} {
		var stdout bytes.Buffer
		if code := run([]string{"--batching", "--render", p, "--out", out2}, &stdout, &stderr); code != 0 {
			t.Fatalf("--batching --render %s: exit %d: %s", p, code, stderr.String())
		}
		if stdout.String() != sec.String() {
			t.Errorf("--batching --render %s printed:\n%s", p, stdout.String())
		}
		if again, _ := os.ReadFile(out2); !bytes.Equal(again, full) {
			t.Errorf("--batching --render %s changed the file:\n%s", p, again)
		}
	}
	// A results file without batching points is an error.
	routingOnly, _ := json.Marshal(fixtureRouting(true))
	for name, data := range map[string][]byte{"routing.json": routingOnly, "empty.json": []byte(`{"points": []}`)} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		stderr.Reset()
		if code := run([]string{"--batching", "--render", p, "--out", out2}, io.Discard, &stderr); code == 0 || !strings.Contains(stderr.String(), "no batching points") {
			t.Errorf("%s: exit %d, %s", name, code, stderr.String())
		}
	}
}

func mustSpliceBatching(t *testing.T, doc []byte, section string) []byte {
	t.Helper()
	out, err := spliceBatching(doc, section)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// outputBatching re-renders the section of an existing file in place and
// writes the plot beside it; a missing file is an error naming it.
func TestOutputBatching(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "BENCHMARKS.md")
	doc := "# Benchmarks\n\n## Memory\n\nm\n\n## Budget\n\nb\n"
	if err := os.WriteFile(out, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	r := fixtureBatching(t)
	if err := outputBatching(r, out, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustSpliceBatching(t, []byte(doc), stdout.String()); !bytes.Equal(got, want) {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "docs", "img", "batching-throughput.svg"))
	if err != nil || string(svg) != BatchingSVG(r) {
		t.Errorf("plot: %v", err)
	}
	err = outputBatching(r, filepath.Join(dir, "missing.md"), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "missing.md") {
		t.Errorf("missing file: %v", err)
	}
}

// serve runs h on a loopback listener until the test ends and returns its
// base URL.
func serve(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		// Shutdown returns at once when Serve has not started yet; closing
		// the listener ends Serve then too.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.ShutdownWithContext(ctx)
		_ = ln.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// quickSetup is the default setup without simulated time.
func quickSetup() BatchingSetup {
	s := defaultBatchingSetup()
	s.EmbedCallOverhead, s.EmbedPerItem, s.ClassifierCallOverhead, s.ClassifierPerItem = 0, 0, 0, 0
	return s
}

// The closed loop against the simulator itself: every answer is the
// request's own, so both workloads run without errors.
func TestClosedLoadAgainstSim(t *testing.T) {
	s := quickSetup()
	o, err := sim.OptionsFromMap(batchingSimOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sim.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// A gateway's /metrics in front of the simulator: every request so far
	// in batches of 4.
	var served atomic.Int64
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/metrics" {
			n := served.Load()
			fmt.Fprintf(ctx, "switchyard_batch_items_sum{model=\"other\"} 1\nswitchyard_batch_items_sum{model=%q} %d\nswitchyard_batch_items_count{model=%q} %g\n",
				batchEmbedModel, n, batchEmbedModel, float64(n)/4)
			return
		}
		served.Add(1)
		srv.Handler(ctx)
	})
	for _, w := range batchWorkloads {
		t.Run(w, func(t *testing.T) {
			l := closedLoad{
				url: url, workload: w, clients: 4, setup: s, seed: 1, warmup: 200 * time.Millisecond, duration: time.Second, // long enough for a CI machine busy with other tests
			}
			if w == BatchEmbeddings {
				// The "gateway" is this process, the simulator in it.
				l.metrics, l.pool, l.gatewayPID, l.hz = url+"/metrics", batchEmbedModel, os.Getpid(), ClockTicks()
			}
			smp, err := runClosedLoad(context.Background(), l)
			if err != nil {
				t.Fatal(err)
			}
			if smp.Errors != 0 || smp.Requests < 10 || !(smp.Throughput > 0) || !(smp.P50 > 0) || smp.P99 < smp.P50 {
				t.Errorf("sample %+v", smp)
			}
			if want := map[string]float64{BatchEmbeddings: 4, BatchClassifier: 0}[w]; smp.BatchItems != want {
				t.Errorf("items per batch %g, want %g", smp.BatchItems, want)
			}
			if busy := smp.GatewayBusy > 0 && smp.LoadBusy > 0; busy != (w == BatchEmbeddings) {
				t.Errorf("CPU busy %g and %g, want both read only for embeddings", smp.GatewayBusy, smp.LoadBusy)
			}
		})
	}
}

func TestScrapeBatchItems(t *testing.T) {
	body := "# TYPE switchyard_batch_items histogram\n" +
		"switchyard_batch_items_bucket{model=\"sim-embed\",le=\"1\"} 3\n" +
		"switchyard_batch_items_sum{model=\"sim-embed\"} 120\n" +
		"switchyard_batch_items_count{model=\"sim-embed\"} 4\n" +
		"switchyard_batch_items_sum{model=\"sim-classifier\"} 7\n"
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) != "/metrics" {
			ctx.SetStatusCode(404)
			return
		}
		ctx.SetBodyString(body)
	})
	sum, count, err := scrapeBatchItems(url+"/metrics", batchEmbedModel)
	if err != nil || sum != 120 || count != 4 {
		t.Errorf("scrape = %g, %g, %v; want 120, 4", sum, count, err)
	}
	if _, _, err := scrapeBatchItems(url+"/metrics", batchClassifierModel); err == nil || !strings.Contains(err.Error(), "no switchyard_batch_items sum and count") {
		t.Errorf("a pool without its count: %v", err)
	}
	if _, _, err := scrapeBatchItems(url+"/nothing", batchEmbedModel); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Errorf("404: %v", err)
	}
}

// A server that answers with someone else's row, or with two embeddings
// for one input, fails the run; one that answers nothing but errors says
// which path it lacks.
func TestClosedLoadChecksAnswers(t *testing.T) {
	s := quickSetup()
	clf := sim.NewClassifier(batchClassifierModel, s.ClassifierFeatures, s.ClassifierClasses)
	other := make([]float32, s.ClassifierFeatures) // the zero row's answer, for every row
	probs := make([]float32, s.ClassifierClasses)
	label := clf.Classify(probs, other)
	wrongRow, err := json.Marshal(map[string]any{"outputs": []map[string]any{
		{"name": "probabilities", "datatype": "FP32", "shape": []int{1, len(probs)}, "data": probs},
		{"name": "label", "datatype": "INT64", "shape": []int{1}, "data": []int64{label}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	twoEmbeddings := []byte(`{"data":[{"index":0,"embedding":[0.5]},{"index":1,"embedding":[0.5]}]}`)
	tests := []struct {
		name, workload string
		status         int
		body           []byte
		wantErr        string
	}{
		{"another row's answer", BatchClassifier, 200, wrongRow, "not their request's own; the first: row ["},
		{"two embeddings", BatchEmbeddings, 200, twoEmbeddings, "2 embeddings for one input"},
		{"not JSON", BatchEmbeddings, 200, []byte("ok"), "does not parse"},
		{"no label", BatchClassifier, 200, []byte(`{"outputs":[]}`), "lacks probabilities or label"},
		{"404", BatchClassifier, 404, []byte(`{"error":"not found"}`), "no request succeeded in the measured window"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := serve(t, func(ctx *fasthttp.RequestCtx) {
				ctx.SetStatusCode(tc.status)
				ctx.SetBody(tc.body)
			})
			smp, err := runClosedLoad(context.Background(), closedLoad{
				url: url, workload: tc.workload, clients: 2, setup: s, seed: 1, duration: 50 * time.Millisecond,
			})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("runClosedLoad = %+v, %v; want an error with %q", smp, err, tc.wantErr)
			}
			if tc.status == 404 && (smp.ErrorKinds["http_404"] == 0 || !strings.Contains(err.Error(), batchPath(BatchClassifier))) {
				t.Errorf("404s: %+v, %v", smp, err)
			}
		})
	}
	if _, err := runClosedLoad(context.Background(), closedLoad{url: "ftp://x", workload: BatchEmbeddings, clients: 1, setup: s, duration: time.Millisecond}); err == nil {
		t.Error("an ftp URL was accepted")
	}
}

// The load stops at once when its context ends.
func TestClosedLoadCanceled(t *testing.T) {
	url := serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(500) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := runClosedLoad(ctx, closedLoad{url: url, workload: BatchEmbeddings, clients: 2, setup: quickSetup(), duration: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled run: %v", err)
	}
}

func TestQuantile(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if q := quantile(xs, 0.5); q != 5 {
		t.Errorf("p50 %g, want 5", q)
	}
	if q := quantile(xs, 0.99); q != 10 {
		t.Errorf("p99 %g, want 10", q)
	}
	if q := quantile(xs[:1], 0.5); q != 1 {
		t.Errorf("p50 of one %g", q)
	}
}
