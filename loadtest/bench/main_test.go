package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/gateway/config"
)

func TestParseRates(t *testing.T) {
	f := func(in string, want []float64, ok bool) {
		t.Helper()
		got, err := parseRates(in)
		if (err == nil) != ok || !slices.Equal(got, want) {
			t.Errorf("parseRates(%q) = %v, %v; want %v, ok %v", in, got, err, want, ok)
		}
	}
	f("500,1000,2000", []float64{500, 1000, 2000}, true)
	f(" 250 , 1e3 ,", []float64{250, 1000}, true)
	f("", nil, false)
	f("0", nil, false)
	f("-5", nil, false)
	f("fast", nil, false)
	f("NaN", nil, false)
}

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags(nil, &stderr)
	if err != nil || o.repeats != 7 || o.duration != 2*time.Second || !slices.Equal(o.rates, []float64{500, 1000, 2000}) {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"--quick", "--repeats", "2"}, &stderr)
	if err != nil || o.repeats != 2 || o.duration != time.Second || o.warmup != 300*time.Millisecond || !slices.Equal(o.rates, []float64{500, 2000}) {
		t.Errorf("quick with an explicit repeat count: %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"--repeats", "0"}, {"--rates", "x"}, {"--duration", "0s"}, {"extra"}, {"--concurrency", "0"}} {
		if _, err := parseFlags(bad, &stderr); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
	if _, err := parseFlags([]string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"--rates", "500,1000", "--out", "/tmp/a b.md", "it's", ""})
	want := `--rates 500,1000 --out '/tmp/a b.md' 'it'\''s' ''`
	if got != want {
		t.Errorf("shellQuote = %s, want %s", got, want)
	}
}

// The generated pass-through config must be one the gateway accepts.
func TestGatewayConfigValid(t *testing.T) {
	text := gatewayConfig("127.0.0.1:18080", "127.0.0.1:18000")
	cfg, err := config.Parse([]byte(text), "bench.yaml")
	if err != nil {
		t.Fatalf("gateway rejects the generated config: %v\n%s", err, text)
	}
	if cfg.Log.Level != "warn" || cfg.Log.Requests {
		t.Errorf("log settings %+v, want warn without request logs", cfg.Log)
	}
}

func TestProcStartStop(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	ps := &procs{}
	p, err := ps.start("sleeper", "", t.TempDir()+"/sleep.log", []string{sleep, "60"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.alive(); err != nil {
		t.Fatalf("alive right after start: %v", err)
	}
	ps.stopAll()
	if err := p.alive(); err == nil || !strings.Contains(err.Error(), "sleeper exited") {
		t.Errorf("after stopAll: %v", err)
	}
	p.stop() // idempotent

	// waitReady gives up as soon as the process exits.
	f, err := ps.start("false", "", t.TempDir()+"/false.log", []string{"sh", "-c", "echo boom; exit 3"})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	err = waitReady(t.Context(), f, "http://"+addr+"/")
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("waitReady on a dead process: %v", err)
	}
	ps.stopAll()
}

// The retrieval path's config must be one the gateway accepts: the
// collection on the corpus, its data_dir, the stage on every route.
func TestRetrievalConfigValid(t *testing.T) {
	corpus, dataDir := "/repo/"+retrievalCorpus, "/tmp/run/retrieval-data"
	text := retrievalConfig(corpus, dataDir)("127.0.0.1:18080", "127.0.0.1:18000")
	cfg, err := config.Parse([]byte(text), "bench.yaml")
	if err != nil {
		t.Fatalf("gateway rejects the generated config: %v\n%s", err, text)
	}
	if cfg.Log.Level != "info" || cfg.Log.Requests {
		t.Errorf("log settings %+v, want info (the sources' sync) without request logs", cfg.Log)
	}
	if cfg.DataDir != dataDir {
		t.Errorf("data_dir %q, want %q", cfg.DataDir, dataDir)
	}
	c := cfg.Collection("docs")
	if c == nil || len(c.Sources) != 1 || c.Sources[0].Path != corpus || c.Embedder != config.EmbedderBuiltin {
		t.Fatalf("collections %+v, want docs on %s with the builtin embedder", cfg.Collections, corpus)
	}
	if len(cfg.Routes) != 1 || len(cfg.Routes[0].Chain) != 1 || cfg.Routes[0].Chain[0].Kind != "retrieval" {
		t.Fatalf("routes %+v, want one with the retrieval stage alone", cfg.Routes)
	}
	var opts struct {
		Collection string `yaml:"collection"`
		TopK       int    `yaml:"top_k"`
	}
	if err := cfg.Routes[0].Chain[0].Options.Decode(&opts); err != nil || opts.Collection != "docs" || opts.TopK != 4 {
		t.Errorf("retrieval options %+v, %v; want collection docs, top_k 4", opts, err)
	}
	// Everything but the header line, the log level and the additions is the
	// pass-through config.
	plain := gatewayConfig("127.0.0.1:18080", "127.0.0.1:18000")
	_, plainBody, _ := strings.Cut(plain, "\n")
	_, body, _ := strings.Cut(text, "\n")
	if want := strings.Replace(plainBody, "level: warn", "level: info", 1); !strings.HasPrefix(body, want) {
		t.Errorf("the retrieval config is not the pass-through one plus the stage:\n%s", text)
	}
}

// The corpus the retrieval path ingests is in the repository.
func TestRetrievalCorpusPresent(t *testing.T) {
	var n int
	err := filepath.WalkDir(filepath.Join("..", "..", retrievalCorpus), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			n++
		}
		return err
	})
	if err != nil || n < 100 {
		t.Errorf("%s: %d Markdown files, %v; want the labelled set's corpus (188)", retrievalCorpus, n, err)
	}
}

func TestParseSourcesSynced(t *testing.T) {
	log := []byte(`{"time":"2026-12-03T17:30:29Z","level":"INFO","msg":"collection opened","collection":"docs","documents":0,"chunks":0,"took":"0s"}
not json
{"time":"2026-12-03T17:30:29Z","level":"INFO","msg":"collection sources synced","collection":"docs","added":188,"chunks":1078,"unchanged":0,"removed":0,"took":"479ms"}
{"time":"2026-12-03T17:30:29Z","level":"INFO","msg":"switchyard listening","addr":"127.0.0.1:1"}
`)
	got := parseSourcesSynced(log)
	if got.Files != 188 || got.Chunks != 1078 || got.Took != 479*time.Millisecond {
		t.Errorf("parseSourcesSynced = %+v, want 188 files, 1078 chunks, 479ms", got)
	}
	if got := parseSourcesSynced([]byte("{}\n")); *got != (RetrievalCorpus{}) {
		t.Errorf("without the line: %+v, want zeros", got)
	}
}

// retrievalMetrics is a /metrics with the retrieval stage's series after
// hits hits, one empty and n searches of sum seconds.
func retrievalMetrics(hits int, sum float64) string {
	return fmt.Sprintf(`# HELP switchyard_retrieval_requests_total Requests the retrieval stage searched for.
# TYPE switchyard_retrieval_requests_total counter
switchyard_retrieval_requests_total{route="default",collection="docs",result="empty"} 1
switchyard_retrieval_requests_total{route="default",collection="docs",result="error"} 0
switchyard_retrieval_requests_total{route="default",collection="docs",result="hit"} %d
switchyard_retrieval_seconds_bucket{route="default",collection="docs",le="0.0005"} %d
switchyard_retrieval_seconds_sum{route="default",collection="docs"} %g
switchyard_retrieval_seconds_count{route="default",collection="docs"} %d
switchyard_requests_total{route="default",code="200"} 5
`, hits, hits+1, sum, hits+1)
}

func TestScrapeRetrieval(t *testing.T) {
	var body atomic.Value
	body.Store(retrievalMetrics(3, 0.001))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, body.Load().(string))
	}))
	defer srv.Close()
	c0, err := scrapeRetrieval(srv.URL + "/metrics")
	if err != nil || c0.hits != 3 || c0.empty != 1 || c0.count != 4 {
		t.Fatalf("scrapeRetrieval = %+v, %v", c0, err)
	}
	body.Store(retrievalMetrics(13, 0.003))
	c1, err := scrapeRetrieval(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	got := c1.since(c0)
	if got.Hits != 10 || got.Empty != 0 || got.Errors != 0 || math.Abs(got.SearchUS-200) > 1e-6 {
		t.Errorf("since = %+v, want 10 hits and 200 µs a search", got)
	}
	if _, err := scrapeRetrieval(srv.URL + "/other"); err == nil {
		t.Error("a 404 was accepted")
	}
	body.Store("switchyard_requests_total 5\n")
	if _, err := scrapeRetrieval(srv.URL + "/metrics"); err == nil || !strings.Contains(err.Error(), "no switchyard_retrieval_seconds") {
		t.Errorf("a /metrics without the stage: %v", err)
	}
}

// retrievalReady passes a gateway whose answer names sources and fails one
// whose does not, with its answer and log; afterwards logTail starts after
// the start-up log it read.
func TestRetrievalReady(t *testing.T) {
	var sources atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sources.Load() {
			w.Header().Set("X-Switchyard-Sources", "corpus%2Fa.md%231")
		}
		io.WriteString(w, `{"object":"chat.completion"}`)
	}))
	defer srv.Close()
	logPath := filepath.Join(t.TempDir(), "gw.log")
	start := `{"level":"INFO","msg":"collection sources synced","collection":"docs","added":2,"chunks":5,"took":"3ms"}` + "\n"
	if err := os.WriteFile(logPath, []byte(start), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: "switchyard-retrieval", logPath: logPath}
	if _, err := retrievalReady(t.Context(), p, srv.URL); err == nil || !strings.Contains(err.Error(), "found nothing") || !strings.Contains(err.Error(), "chat.completion") {
		t.Errorf("without sources: %v", err)
	}
	sources.Store(true)
	c, err := retrievalReady(t.Context(), p, srv.URL)
	if err != nil || c.Files != 2 || c.Chunks != 5 || c.Source != retrievalCorpus {
		t.Fatalf("retrievalReady = %+v, %v", c, err)
	}
	if tail := p.logTail(); tail != "" {
		t.Errorf("logTail after start-up = %q, want nothing", tail)
	}
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "later\n")
	f.Close()
	if tail := p.logTail(); tail != "later" {
		t.Errorf("logTail = %q, want what came after start-up", tail)
	}
}

// Every gateway of a run gets a data_dir of its own unless its config has
// one, and the configs stay valid.
func TestWithDataDir(t *testing.T) {
	plain := withDataDir(gatewayConfig("127.0.0.1:18080", "127.0.0.1:18000"), "/tmp/run/switchyard-data")
	cfg, err := config.Parse([]byte(plain), "bench.yaml")
	if err != nil || cfg.DataDir != "/tmp/run/switchyard-data" {
		t.Errorf("pass-through config with a data_dir: %v, data_dir %q\n%s", err, cfg.DataDir, plain)
	}
	for _, text := range []string{guardConfig("/repo/policy/rego")("127.0.0.1:1", "127.0.0.1:2"), cacheConfig("127.0.0.1:1", "127.0.0.1:2"), admissionConfig("127.0.0.1:1", "127.0.0.1:2")} {
		got := withDataDir(text, "/tmp/run/x-data")
		if cfg, err := config.Parse([]byte(got), "bench.yaml"); err != nil || cfg.DataDir != "/tmp/run/x-data" {
			t.Errorf("with a data_dir: %v, data_dir %q\n%s", err, cfg.DataDir, got)
		}
	}
	own := retrievalConfig("/repo/corpus", "/tmp/run/retrieval-data")("127.0.0.1:1", "127.0.0.1:2")
	if got := withDataDir(own, "/tmp/run/other"); got != own {
		t.Errorf("a config with its own data_dir was changed:\n%s", got)
	}
	if got := withDataDir("listen: x", "/d"); got != "listen: x\ndata_dir: \"/d\"\n" {
		t.Errorf("without a final newline: %q", got)
	}
}

// settle returns at once without processes and soon for an idle one.
func TestSettleIdle(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	var log bytes.Buffer
	e := &env{log: &log}
	e.settle(t.Context(), PathDirect, nil)
	ps := &procs{}
	defer ps.stopAll()
	p, err := ps.start("sleeper", "", t.TempDir()+"/sleep.log", []string{sleep, "60"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.settle(t.Context(), PathSwitchyard, []int{p.pid()})
	if took := time.Since(start); took > 5*time.Second || strings.Contains(log.String(), "still busy") {
		t.Errorf("settle on an idle process took %s; log %q", took, log.String())
	}
}
