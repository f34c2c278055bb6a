package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"switchyard/gateway/config"
)

// fixtureRouting is a fixed routing result set: three strategies (or the
// two without inference_aware), the shared load at two rates and the
// control at one, two samples each.
func fixtureRouting(withAware bool) *RoutingResults {
	s := defaultRoutingSetup()
	s.Rates, s.ControlRates, s.Repeats = []float64{15, 45}, []float64{30}, 2
	if !withAware {
		s.Strategies = []string{"round_robin", "least_outstanding"}
	}
	r := &RoutingResults{
		Date:       time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC),
		Elapsed:    272 * time.Second,
		Command:    "go run ./loadtest/bench --routing",
		NProc:      2,
		Pinning:    "taskset: each gateway (its four simulators embedded) on CPU 0; the load generator (this harness, GOMAXPROCS=1) on CPU 1",
		LoadBefore: "0.50 0.40 0.30",
		LoadAfter:  "1.50 0.90 0.50",
		Setup:      s,
		Notes:      []string{"switchyard-routing-round-robin logged during the run: `warn something`"},
	}
	// p90 by strategy and load; the other figures follow from it.
	p90 := map[string]map[string]float64{
		"round_robin":       {"shared15": 160, "shared45": 2300, "control30": 42},
		"least_outstanding": {"shared15": 158, "shared45": 800, "control30": 40},
		aware:               {"shared15": 6.5, "shared45": 12, "control30": 41},
	}
	for _, st := range s.Strategies {
		for _, l := range []struct {
			sc   string
			rate float64
			key  string
		}{{RoutingShared, 15, "shared15"}, {RoutingShared, 45, "shared45"}, {RoutingControl, 30, "control30"}} {
			v := p90[st][l.key]
			p := r.point(l.sc, st, l.rate)
			for i := range 2 {
				f := 1 + 0.1*float64(i) // two samples: v and 1.1 v
				hits := 0.35
				if st == aware && l.sc == RoutingShared {
					hits = 0.96
				}
				if l.sc == RoutingControl {
					hits = 0
				}
				smp := RoutingSample{
					TTFTP50: v * f / 2, TTFTP90: v * f, TTFTP99: v * f * 1.5,
					OutputTPS: l.rate * 64 * (1 - 0.05*float64(i)), CachedShare: hits,
					Throughput: l.rate, Requests: int64(l.rate * 4),
				}
				if st == "round_robin" && l.key == "shared45" && i == 1 {
					smp.Errors, smp.ErrorKinds = 2, map[string]int64{"timeout": 2}
				}
				p.Samples = append(p.Samples, smp)
			}
		}
	}
	return r
}

func TestRoutingConfigValid(t *testing.T) {
	s := defaultRoutingSetup()
	for _, strategy := range []string{config.StrategyRoundRobin, config.StrategyLeastOutstanding} {
		t.Run(strategy, func(t *testing.T) {
			text := routingConfig(s, strategy, "127.0.0.1:18080")
			cfg, err := config.Parse([]byte(text), "routing.yaml")
			if err != nil {
				t.Fatalf("gateway rejects the generated config: %v\n%s", err, text)
			}
			if len(cfg.Backends) != 4 || len(cfg.Models) != 1 {
				t.Fatalf("%d backends and %d pools, want 4 and 1", len(cfg.Backends), len(cfg.Models))
			}
			m := cfg.Models[0]
			if m.Name != routingModel || m.Strategy != strategy || len(m.Targets) != 4 || m.Retry.Attempts != 1 {
				t.Errorf("pool %+v: want %s, strategy %s, 4 targets, 1 attempt", m, routingModel, strategy)
			}
			wantSpeeds := []string{"2", "2", "1.5", "1"} // 1, 1, 0.75, 0.5 times 2
			for i, b := range cfg.Backends {
				if b.Kind != config.KindSim {
					t.Errorf("backend %d kind %q, want sim", i, b.Kind)
				}
				if b.Metrics == nil || b.Metrics.Path != "/metrics" || time.Duration(b.Metrics.Interval) != 100*time.Millisecond {
					t.Errorf("backend %d metrics %+v, want /metrics scraped every 100ms", i, b.Metrics)
				}
				for k, want := range map[string]string{
					"speed": wantSpeeds[i], "kv-blocks": "1200", "block-size": "16", "prefix-caching": "true",
					"max-num-seqs": "64", "model": routingModel, "prefill-per-token": "50us", "itl": "10ms",
				} {
					if got := b.Sim[k]; got != want {
						t.Errorf("backend %d sim %s = %q, want %q", i, k, got, want)
					}
				}
			}
		})
	}
	// Without scraping there is no metrics block.
	noScrape := s
	noScrape.Scrape = 0
	if cfg, err := config.Parse([]byte(routingConfig(noScrape, config.StrategyRoundRobin, "127.0.0.1:1")), "r.yaml"); err != nil {
		t.Errorf("--routing-scrape 0: %v", err)
	} else if cfg.Backends[0].Metrics != nil {
		t.Errorf("--routing-scrape 0: metrics %+v, want none", cfg.Backends[0].Metrics)
	}
	// Extra pool settings land in the pool, before its targets.
	s.PoolYAML = "fallbacks: []\nlimits: {rpm: 100000}\n"
	text := routingConfig(s, config.StrategyRoundRobin, "127.0.0.1:18080")
	cfg, err := config.Parse([]byte(text), "routing.yaml")
	if err != nil || cfg.Models[0].Limits.RPM != 100000 {
		t.Errorf("pool YAML not applied: %v\n%s", err, text)
	}
	// Not yet known to every validator: only the text is checked.
	if text := routingConfig(s, aware, "127.0.0.1:1"); !strings.Contains(text, "    strategy: inference_aware\n") {
		t.Errorf("inference_aware config lacks its strategy:\n%s", text)
	}
}

// The tuned regime: all the tenants' contexts do not fit in one simulator's
// KV cache but do in the pool's, with room for the running sequences.
func TestRoutingSetupRegime(t *testing.T) {
	s := defaultRoutingSetup()
	if err := s.validate(); err != nil {
		t.Fatalf("default setup: %v", err)
	}
	ctxBlocks := int(math.Ceil(float64(s.ContextWords) * approxTokensPerWord / float64(s.BlockSize)))
	all := s.Tenants * ctxBlocks
	if all <= s.KVBlocks {
		t.Errorf("all contexts (%d blocks) fit in one simulator's %d", all, s.KVBlocks)
	}
	perBackend := (s.Tenants + len(s.Speeds) - 1) / len(s.Speeds) * ctxBlocks
	if perBackend >= s.KVBlocks*3/4 {
		t.Errorf("a quarter of the tenants (%d blocks) leaves too little of a simulator's %d blocks for running sequences", perBackend, s.KVBlocks)
	}
}

func TestRoutingSetupValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(s *RoutingSetup)
		wantErr string
	}{
		{"ok", func(s *RoutingSetup) {}, ""},
		{"ok without control", func(s *RoutingSetup) { s.ControlRates = nil }, ""},
		{"no strategies", func(s *RoutingSetup) { s.Strategies = nil }, "at least one strategy"},
		{"bad strategy", func(s *RoutingSetup) { s.Strategies = []string{"round robin"} }, `"round robin" is not a strategy name`},
		{"twice", func(s *RoutingSetup) { s.Strategies = []string{"round_robin", "round_robin"} }, "named twice"},
		{"speed", func(s *RoutingSetup) { s.Speeds = []float64{1, 0} }, "speed 0 must be positive"},
		{"time scale", func(s *RoutingSetup) { s.TimeScale = 0 }, "--routing-time-scale 0"},
		{"kv", func(s *RoutingSetup) { s.KVBlocks = 0 }, "--routing-kv-blocks 0"},
		{"tenants", func(s *RoutingSetup) { s.Tenants = 0 }, "--routing-tenants 0"},
		{"duration", func(s *RoutingSetup) { s.Duration = 0 }, "--routing-duration 0s"},
		{"repeats", func(s *RoutingSetup) { s.Repeats = 0 }, "--routing-repeats 0"},
		{"no rates", func(s *RoutingSetup) { s.Rates = nil }, "--routing-rates"},
		{"bad question", func(s *RoutingSetup) { s.QuestionTokens = "zipf:1" }, "routing shared load"},
		{"scrape", func(s *RoutingSetup) { s.Scrape = time.Millisecond }, "--routing-scrape 1ms"},
		{"ok no scrape", func(s *RoutingSetup) { s.Scrape = 0 }, ""},
		{"huge contexts", func(s *RoutingSetup) { s.Tenants = 5000; s.ContextWords = 5000 }, "tokens of contexts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := defaultRoutingSetup()
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

// Each point's load is the scenario it names, streamed, seeded.
func TestRoutingLoadConfig(t *testing.T) {
	s := defaultRoutingSetup()
	shared, err := s.loadConfig("http://127.0.0.1:1", RoutingShared, 30, 7)
	if err != nil {
		t.Fatal(err)
	}
	if shared.Scenario != "stream" || shared.PrefixTenants != s.Tenants || shared.PrefixTokens != s.ContextWords ||
		shared.Rate != 30 || shared.Seed != 7 || shared.Warmup != s.Warmup || shared.Duration != s.Duration || !shared.IgnoreEOS {
		t.Errorf("shared load %+v", shared)
	}
	control, err := s.loadConfig("http://127.0.0.1:1", RoutingControl, 45, 7)
	if err != nil {
		t.Fatal(err)
	}
	if control.PrefixTenants != 0 || control.SharedPrefixRatio != 0 || control.PromptTokens.String() != s.ControlPromptTokens {
		t.Errorf("control load shares prefixes: %+v", control)
	}
	if _, err := s.loadConfig("http://127.0.0.1:1", "other", 1, 1); err == nil {
		t.Error("unknown scenario accepted")
	}
}

func TestParseRoutingFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags([]string{"--routing", "--routing-strategies", " round_robin, least_outstanding ", "--routing-rates", "10,20",
		"--routing-control-rates", "", "--routing-tenants", "8", "--routing-time-scale", "3"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	rs := o.routingSetup
	if !o.routing || !slices.Equal(rs.Strategies, []string{"round_robin", "least_outstanding"}) || !slices.Equal(rs.Rates, []float64{10, 20}) ||
		rs.ControlRates != nil || rs.Tenants != 8 || rs.TimeScale != 3 || rs.Repeats != 3 {
		t.Errorf("parsed %+v", rs)
	}
	o, err = parseFlags([]string{"--routing", "--quick"}, &stderr)
	if err != nil || o.routingSetup.Repeats != 1 || o.routingSetup.Duration != 2*time.Second {
		t.Errorf("--routing --quick: %+v, %v", o.routingSetup, err)
	}
	o, err = parseFlags(nil, &stderr)
	if err != nil || o.routing || !o.withRouting || !slices.Equal(o.routingSetup.Strategies, []string{"round_robin", "least_outstanding", aware}) {
		t.Errorf("defaults: routing %v, with-routing %v, %+v, %v", o.routing, o.withRouting, o.routingSetup, err)
	}
	for _, bad := range [][]string{
		{"--routing-rates", "x"}, {"--routing-control-rates", "-1"}, {"--routing-strategies", ","}, {"--routing-repeats", "0"}, {"--routing-kv-blocks", "0"},
	} {
		if _, err := parseFlags(bad, &stderr); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

func TestRoutingAgg(t *testing.T) {
	p := fixtureRouting(true).Find(RoutingShared, "round_robin", 45)
	a := p.Agg()
	if a.N != 2 || a.TTFTP90 != 2415 || a.P90Min != 2300 || math.Abs(a.P90Max-2530) > 1e-9 || a.Errors != 2 || a.ErrorKinds["timeout"] != 2 || a.Requests != 360 {
		t.Errorf("agg %+v", a)
	}
}

func TestRenderRoutingGolden(t *testing.T) {
	for name, withAware := range map[string]bool{"routing.golden.md": true, "routing-no-aware.golden.md": false} {
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			renderRouting(&b, fixtureRouting(withAware))
			golden(t, name, []byte(b.String()))
		})
	}
}

// The plot is well-formed XML with one line per strategy.
func TestRoutingSVG(t *testing.T) {
	svg := RoutingSVG(fixtureRouting(true))
	golden(t, "routing.golden.svg", []byte(svg))
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
	if lines != 3 {
		t.Errorf("%d polylines, want one per strategy (3)", lines)
	}
	// Empty results still draw.
	if empty := RoutingSVG(&RoutingResults{Setup: defaultRoutingSetup()}); !strings.HasSuffix(empty, "</svg>\n") {
		t.Errorf("empty plot: %s", empty)
	}
}

func TestSpliceRouting(t *testing.T) {
	section := routingBegin + "\n## Routing\n\nnew\n" + routingEnd + "\n"
	tests := []struct {
		name, doc, want string
	}{
		{"replaces between the markers",
			"# B\n\n## Memory\n\nm\n\n" + routingBegin + "\n## Routing\n\nold\nold\n" + routingEnd + "\n\n## Budget\n\nb\n",
			"# B\n\n## Memory\n\nm\n\n" + section + "\n## Budget\n\nb\n"},
		{"inserts before Budget", "# B\n\n## Memory\n\nm\n\n## Budget\n\nb\n", "# B\n\n## Memory\n\nm\n\n" + section + "\n## Budget\n\nb\n"},
		{"appends", "# B\n\nx", "# B\n\nx\n\n" + section},
		{"begin without end", "# B\n" + routingBegin + "\nx\n", ""},
		{"end without begin", "# B\n" + routingEnd + "\nx\n", ""},
		{"end before begin", "# B\n" + routingEnd + "\nx\n" + routingBegin + "\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := spliceRouting([]byte(tc.doc), section)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), "not both there") {
					t.Fatalf("spliceRouting(%q) = %q, %v; want an error about the markers", tc.doc, got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("spliceRouting:\n%q, %v\nwant:\n%q", got, err, tc.want)
			}
			if again, err := spliceRouting(got, section); err != nil || !bytes.Equal(again, got) {
				t.Errorf("splicing twice changed the document: %v\n%q", err, again)
			}
		})
	}
}

func mustSplice(t *testing.T, doc []byte, section string) []byte {
	t.Helper()
	out, err := spliceRouting(doc, section)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// --routing's splice into a document rendered without the comparison gives
// exactly what the full run renders with it, and replacing the section
// again leaves the other sections byte for byte.
func TestRoutingSpliceMatchesFullRender(t *testing.T) {
	without := fixtureResults(true)
	var plain bytes.Buffer
	if err := RenderMarkdown(&plain, without); err != nil {
		t.Fatal(err)
	}
	with := fixtureResults(true)
	with.Routing = fixtureRouting(true)
	var full bytes.Buffer
	if err := RenderMarkdown(&full, with); err != nil {
		t.Fatal(err)
	}
	var sec strings.Builder
	renderRouting(&sec, with.Routing)
	if got := mustSplice(t, plain.Bytes(), sec.String()); !bytes.Equal(got, full.Bytes()) {
		t.Errorf("splice into the plain render differs from the full render:\n%s", got)
	}
	var other strings.Builder
	renderRouting(&other, fixtureRouting(false))
	replaced := mustSplice(t, full.Bytes(), other.String())
	if back := mustSplice(t, replaced, sec.String()); !bytes.Equal(back, full.Bytes()) {
		t.Error("replacing the section and putting it back did not restore the document")
	}
	if !bytes.HasPrefix(replaced, plain.Bytes()[:bytes.Index(plain.Bytes(), []byte("\n## Budget"))]) {
		t.Error("the sections before Routing changed")
	}
}

// outputRouting re-renders the section of an existing file in place and
// writes the plot beside it; a missing file is an error naming it.
func TestOutputRouting(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "BENCHMARKS.md")
	doc := "# Benchmarks\n\n## Memory\n\nm\n\n## Budget\n\nb\n"
	if err := os.WriteFile(out, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	r := fixtureRouting(false)
	if err := outputRouting(r, out, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustSplice(t, []byte(doc), stdout.String()); !bytes.Equal(got, want) {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "docs", "img", "routing-ttft.svg"))
	if err != nil || string(svg) != RoutingSVG(r) {
		t.Errorf("plot: %v", err)
	}
	err = outputRouting(r, filepath.Join(dir, "missing.md"), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "missing.md") {
		t.Errorf("missing file: %v", err)
	}
}

// The results file round-trips with the routing comparison (--render).
func TestRoutingJSONRoundTrip(t *testing.T) {
	r := fixtureResults(true)
	r.Routing = fixtureRouting(true)
	var want bytes.Buffer
	if err := RenderMarkdown(&want, r); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := RenderMarkdown(&got, &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("re-rendered markdown differs:\n%s", got.String())
	}
}

// --routing --render re-renders the section from the comparison's own
// results file and from a full run's, without running anything.
func TestRerenderRouting(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "B.md")
	r := fixtureRouting(true)
	var want strings.Builder
	renderRouting(&want, r)
	own, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	full, err := json.Marshal(&Results{Routing: r})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"own": own, "full": full, "empty": []byte(`{"points": []}`)} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(out, []byte("# B\n\n## Budget\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, name+".json")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run([]string{"--routing", "--render", path, "--out", out}, &stdout, &stderr)
			if name == "empty" {
				if code == 0 || !strings.Contains(stderr.String(), "no routing points") {
					t.Errorf("empty results: exit %d, %s", code, stderr.String())
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if stdout.String() != want.String() {
				t.Errorf("section differs:\n%s", stdout.String())
			}
			got, _ := os.ReadFile(out)
			if !strings.Contains(string(got), want.String()+"\n## Budget") {
				t.Errorf("file:\n%s", got)
			}
		})
	}
}
