package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// Micro is one Go benchmark of a stage's hot path, run by the harness
// (`go test -bench`) so that its figures land in BENCHMARKS.md with the
// end-to-end ones.
type Micro struct {
	Package string `json:"package"`
	Name    string `json:"name"`
	// Metrics holds the benchmark's figures by unit: ns/op, B/op,
	// allocs/op and the custom ones (p50-ns, p99-ns, bytes/entry).
	Metrics map[string]float64 `json:"metrics"`
}

// microBenches are the stage benchmarks the harness runs: the package, the
// -bench pattern and -benchtime.
var microBenches = []struct{ pkg, pattern, benchtime string }{
	{"./internal/limit", "^Benchmark(LocalAdmit|LocalAdmitParallel|RedisAdmit)$", "20000x"},
	{"./internal/shed", ".", "200000x"},
	{"./internal/spend", ".", "200000x"},
	{"./plugins/cache", "^Benchmark(Key|ExactGet|ExactHit|SemanticLookup)$", "2000x"},
	{"./internal/embed", "^BenchmarkEmbedInto", "20000x"},
	{"./policy", "^BenchmarkDecision1KB$", "1000x"},
	{"./policy/detect", "^BenchmarkDetect$", "2000x"},
	{"./router", "^Benchmark(InferenceAwarePick|PrefixHashes|ReportSuccess)$", "200000x"},
	{"./plugins/guard", "^BenchmarkWindow$", "20x"},
}

// runMicro runs the stage benchmarks in root and returns their figures.
// A package whose benchmark needs a missing service (redis-server) skips
// it; that benchmark is then absent.
func runMicro(ctx context.Context, root string, log io.Writer) ([]Micro, error) {
	var out []Micro
	for _, m := range microBenches {
		fmt.Fprintf(log, "bench: go test -bench %s %s\n", m.pattern, m.pkg)
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", m.pattern, "-benchtime", m.benchtime, "-benchmem", m.pkg)
		cmd.Dir = root
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go test -bench %s: %v\n%s", m.pkg, err, buf.String())
		}
		out = append(out, parseBench(strings.TrimPrefix(m.pkg, "./"), buf.String())...)
	}
	return out, nil
}

// parseBench reads `go test -bench` output lines: a name, the iterations,
// then value-unit pairs.
func parseBench(pkg, text string) []Micro {
	var out []Micro
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		m := Micro{Package: pkg, Name: strings.TrimPrefix(f[0], "Benchmark"), Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			m.Metrics[f[i+1]] = v
		}
		// Drop the -N GOMAXPROCS suffix.
		if j := strings.LastIndexByte(m.Name, '-'); j > 0 {
			if _, err := strconv.Atoi(m.Name[j+1:]); err == nil {
				m.Name = m.Name[:j]
			}
		}
		out = append(out, m)
	}
	return out
}

// renderMicro writes the stage benchmarks' table.
func renderMicro(b *strings.Builder, ms []Micro) {
	if len(ms) == 0 {
		return
	}
	fmt.Fprintf(b, "\n## Stage hot paths (Go benchmarks)\n\n")
	fmt.Fprintf(b, "Run by the harness with `go test -bench` on the same machine, one process at a time:\n")
	fmt.Fprintf(b, "admission's limiter (three buckets, Admit and Settle; Redis: a round trip to a local redis-server),\n")
	fmt.Fprintf(b, "its priority gate and spend ledger, and the cache (key, exact get, an exact hit through\n")
	fmt.Fprintf(b, "Server.Do, a semantic lookup with the builtin embedding in one partition of 10k or 100k entries).\n\n")
	fmt.Fprintf(b, "| package | benchmark | ns/op | p50 ns | p99 ns | B/op | allocs/op | bytes/entry |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	cell := func(m Micro, unit string) string {
		v, ok := m.Metrics[unit]
		if !ok {
			return "–"
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	for _, m := range ms {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", m.Package, m.Name,
			cell(m, "ns/op"), cell(m, "p50-ns"), cell(m, "p99-ns"), cell(m, "B/op"), cell(m, "allocs/op"), cell(m, "bytes/entry"))
	}
}
