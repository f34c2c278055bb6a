package main

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	f := func(in []float64, want float64) {
		t.Helper()
		orig := append([]float64(nil), in...)
		got := Median(in)
		if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("Median(%v) = %g, want %g", in, got, want)
		}
		for i := range in {
			if in[i] != orig[i] {
				t.Errorf("Median modified its input: %v, was %v", in, orig)
				break
			}
		}
	}
	f(nil, math.NaN())
	f([]float64{7}, 7)
	f([]float64{3, 1, 2}, 2)
	f([]float64{4, 1, 3, 2}, 2.5)
	f([]float64{5, 5, 1, 100, 5}, 5)
	f([]float64{-1, -3}, -2)
}

func TestAgg(t *testing.T) {
	p := &Point{Samples: []Sample{
		{P50US: 100, P99US: 300, Throughput: 10, Requests: 5, Errors: 1, ErrorKinds: map[string]int64{"timeout": 1}, ProxyCPUUS: 40},
		{P50US: 120, P99US: 900, Throughput: 30, Requests: 5, ProxyCPUUS: 50},
		{P50US: 110, P99US: 500, Throughput: 20, Requests: 5, Errors: 2, ErrorKinds: map[string]int64{"timeout": 1, "http_502": 1}, ProxyCPUUS: 45},
	}}
	a := p.Agg()
	if a.N != 3 || a.P50 != 110 || a.P50Min != 100 || a.P50Max != 120 || a.P99 != 500 || a.P99Min != 300 || a.P99Max != 900 {
		t.Errorf("latency aggregation wrong: %+v", a)
	}
	if a.Throughput != 20 || a.ProxyCPU != 45 || a.CPUMin != 40 || a.CPUMax != 50 {
		t.Errorf("throughput/CPU aggregation wrong: %+v", a)
	}
	if a.Requests != 15 || a.Errors != 3 || a.ErrorKinds["timeout"] != 2 || a.ErrorKinds["http_502"] != 1 {
		t.Errorf("error sums wrong: %+v", a)
	}
	if !math.IsNaN(a.SearchUS) || a.Retrieved != (RetrievalSample{}) {
		t.Errorf("retrieval figures of a point without any: %+v", a)
	}
	r := &Point{Samples: []Sample{
		{PromptTokens: 1300, Retrieval: &RetrievalSample{Hits: 9, Empty: 1, SearchUS: 300}},
		{PromptTokens: 1310, Retrieval: &RetrievalSample{Hits: 10, Errors: 2, SearchUS: 100}},
		{PromptTokens: 1290, Retrieval: &RetrievalSample{Hits: 10, SearchUS: 200}},
	}}
	if a := r.Agg(); a.PromptTokens != 1300 || a.SearchUS != 200 || a.Retrieved != (RetrievalSample{Hits: 29, Empty: 1, Errors: 2}) || a.RetrievalRuns != 3 {
		t.Errorf("retrieval aggregation wrong: prompt %g, search %g, %+v of %d runs", a.PromptTokens, a.SearchUS, a.Retrieved, a.RetrievalRuns)
	}
	r.Samples = append(r.Samples, Sample{PromptTokens: 1305}) // its /metrics did not answer
	if a := r.Agg(); a.SearchUS != 200 || a.Retrieved.Hits != 29 || a.RetrievalRuns != 3 || a.N != 4 {
		t.Errorf("with a sample without the stage's figures: search %g, %+v of %d runs, N %d", a.SearchUS, a.Retrieved, a.RetrievalRuns, a.N)
	}
	if empty := (&Point{}).Agg(); !math.IsNaN(empty.P50) || empty.N != 0 {
		t.Errorf("empty point: %+v", empty)
	}
}

// fixtureResults is a fixed result set for the render and budget tests.
func fixtureResults(withNginx bool) *Results {
	r := &Results{
		Date:       time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC),
		Command:    "go run ./loadtest/bench --rates 1000,2000 --repeats 2",
		NProc:      2,
		CPUModel:   "Test CPU @ 2.00GHz",
		GoVersion:  "go1.26.0",
		Kernel:     "6.1.0",
		Pinning:    "taskset: proxy on CPU 0",
		LoadBefore: "0.50 0.40 0.30",
		LoadAfter:  "1.50 0.90 0.50",
		Elapsed:    95 * time.Second,
		Settings: Settings{
			Rates: []float64{1000, 2000}, Duration: 5 * time.Second, Warmup: time.Second,
			ClosedDuration: 4 * time.Second, Repeats: 2, Concurrency: 64,
			PromptTokens: 64, OutputTokens: 32, StreamTokens: 16,
		},
		Memory: Memory{
			IdleKB: 10240, PeakKB: 20480, Streams: 1000, StreamLen: "100 tokens at 50ms",
			StreamsIdleKB: 10000, StreamsRSSKB: 70000, StreamsHWMKB: 71000, StreamsOK: 999, StreamsErrors: 1,
			StreamsErrorKinds: map[string]int64{"timeout": 1}, StreamsTTFTMax: 412,
		},
		Notes:           []string{"A fixed note."},
		Retrieval:       true,
		RetrievalCorpus: &RetrievalCorpus{Source: retrievalCorpus, Files: 188, Chunks: 1078, Took: 479 * time.Millisecond},
	}
	paths := []string{PathDirect, PathSwitchyard, PathRetrieval}
	if withNginx {
		r.Nginx = "nginx/1.22.1"
		r.Memory.NginxIdleKB, r.Memory.NginxPeakKB = 14000, 15000
		paths = append(paths, PathNginx)
	} else {
		r.NginxNote = "nginx not found on PATH"
	}
	// Added latency per path: switchyard +60/+200 µs, nginx +40/+300 µs,
	// retrieval +900/+3000 µs with a prompt 12x longer upstream (and one
	// repeat at 1000 req/s that fell behind the load).
	add := map[string][2]float64{PathDirect: {0, 0}, PathSwitchyard: {60, 200}, PathNginx: {40, 300}, PathRetrieval: {900, 3000}}
	cpu := map[string]float64{PathDirect: 0, PathSwitchyard: 90, PathNginx: 50, PathRetrieval: 600}
	upstream := map[string]float64{PathDirect: 20, PathSwitchyard: 20, PathNginx: 20, PathRetrieval: 220}
	prompt := map[string]float64{PathDirect: 102, PathSwitchyard: 102, PathNginx: 102, PathRetrieval: 1305}
	retrieved := func(path string, n int64, j float64) *RetrievalSample {
		if path != PathRetrieval {
			return nil
		}
		return &RetrievalSample{Hits: n - 1, Empty: 1, SearchUS: 250 + j}
	}
	for _, sc := range []string{ScenarioChat, ScenarioStream} {
		for _, rate := range r.Settings.Rates {
			for _, path := range paths {
				p := r.point(sc, path, "open", rate, 0)
				for i := range 2 {
					j := float64(i) * 15
					s := Sample{
						P50US: 500 + add[path][0] + j, P99US: 1500 + add[path][1] + j,
						Throughput: rate, Requests: int64(rate) * 5, ProxyCPUUS: cpu[path] + j, UpstreamCPUUS: upstream[path],
						PromptTokens: prompt[path], Retrieval: retrieved(path, int64(rate)*5, j),
					}
					if sc == ScenarioStream {
						s.TTFTP50US, s.TTFTP99US = s.P50US-20, s.P99US-20
					}
					if path == PathRetrieval && sc == ScenarioChat && rate == 1000 && i == 1 {
						s.Throughput, s.P50US = 700, 250000 // fell behind the load
					}
					if path == PathSwitchyard && i == 1 {
						s.Errors, s.ErrorKinds = 2, map[string]int64{"http_502": 2}
					}
					p.Samples = append(p.Samples, s)
				}
			}
		}
		thr := map[string]float64{PathDirect: 25000, PathSwitchyard: 15000, PathNginx: 14000, PathRetrieval: 1900}
		for _, path := range paths {
			p := r.point(sc, path, "closed", 0, 64)
			for i := range 2 {
				p.Samples = append(p.Samples, Sample{
					P50US: 2000, P99US: 6000, Throughput: thr[path] + float64(i)*100, Requests: 60000,
					ProxyCPUUS: cpu[path] / 2, UpstreamCPUUS: upstream[path], ProxyBusy: 0.6, LoadBusy: 0.95,
					PromptTokens: prompt[path], Retrieval: retrieved(path, 60000, float64(i)*100),
				})
				if sc == ScenarioStream && i == 1 {
					p.Samples[i].Retrieval = nil // its /metrics did not answer
				}
			}
		}
	}
	return r
}

func TestFindAndPaths(t *testing.T) {
	r := fixtureResults(true)
	if p := r.Find(ScenarioChat, PathNginx, "open", 2000); p == nil || p.Rate != 2000 {
		t.Errorf("Find open = %+v", p)
	}
	if p := r.Find(ScenarioStream, PathSwitchyard, "closed", 12345); p == nil || p.Concurrency != 64 {
		t.Errorf("Find closed = %+v", p)
	}
	if p := r.Find(ScenarioChat, PathNginx, "open", 3000); p != nil {
		t.Errorf("Find of a missing rate = %+v", p)
	}
	if got := fixtureResults(false).Paths(); !slices.Equal(got, []string{PathDirect, PathSwitchyard, PathRetrieval}) {
		t.Errorf("paths without nginx = %q, want direct, switchyard, retrieval", got)
	}
	all := &Results{Admission: true, CacheHit: true, Guard: true, Retrieval: true, Nginx: "nginx/1"}
	want := []string{PathDirect, PathSwitchyard, PathAdmission, PathCacheHit, PathGuard, PathRetrieval, PathNginx}
	if got := all.Paths(); !slices.Equal(got, want) {
		t.Errorf("every path: %q, want %q", got, want)
	}
}
