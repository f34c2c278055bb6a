package main

import (
	"strings"
	"testing"
)

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkLocalAdmit-2           	    2000	       887.2 ns/op	       0 B/op	       0 allocs/op
BenchmarkSemanticLookup/entries=10000-2         	    2000	    154426 ns/op	      4638 bytes/entry	    139025 p50-ns	    322776 p99-ns	    2480 B/op	       2 allocs/op
--- BENCH: BenchmarkSemanticLookup/entries=10000-2
    semantic_bench_test.go:53: built 10000 entries
PASS
ok  	switchyard/plugins/cache	3.2s
`
	ms := parseBench("p", out)
	if len(ms) != 2 {
		t.Fatalf("%d benchmarks: %+v", len(ms), ms)
	}
	if ms[0].Name != "LocalAdmit" || ms[0].Metrics["ns/op"] != 887.2 || ms[0].Metrics["allocs/op"] != 0 {
		t.Errorf("first: %+v", ms[0])
	}
	if ms[1].Name != "SemanticLookup/entries=10000" || ms[1].Metrics["p99-ns"] != 322776 || ms[1].Metrics["bytes/entry"] != 4638 {
		t.Errorf("second: %+v", ms[1])
	}
	var b strings.Builder
	renderMicro(&b, ms)
	if !strings.Contains(b.String(), "| p | SemanticLookup/entries=10000 | 154426 | 139025 | 322776 | 2480 | 2 | 4638 |") {
		t.Errorf("table:\n%s", b.String())
	}
}

func FuzzParseBench(f *testing.F) {
	f.Add("BenchmarkX-2 10 5 ns/op 1 B/op")
	f.Add("Benchmark 1 x y")
	f.Fuzz(func(t *testing.T, s string) {
		for _, m := range parseBench("p", s) {
			if !strings.HasPrefix(s, "") || m.Metrics == nil {
				t.Fatal("no metrics map")
			}
		}
	})
}
