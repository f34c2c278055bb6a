package vindex

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// benchSet is a built index with its queries and their exact top 10, cached
// per configuration because building 100k entries takes a while.
type benchSet struct {
	ix      *Index
	queries [][]float32
	truth   [][]Hit
	build   time.Duration
}

var (
	benchMu   sync.Mutex
	benchOnce = map[string]*sync.Once{}
	benchSets = map[string]*benchSet{}
)

func getBenchSet(b *testing.B, kind string, n, dim int, o Options) *benchSet {
	key := fmt.Sprintf("%s/%d/%d/%+v", kind, n, dim, o)
	benchMu.Lock()
	once := benchOnce[key]
	if once == nil {
		once = new(sync.Once)
		benchOnce[key] = once
	}
	benchMu.Unlock()
	once.Do(func() {
		const nq = 2000
		var all [][]float32
		if kind == "random" {
			all = randomData(uint64(n), n+nq, dim)
		} else {
			all = clusteredData(uint64(n), n+nq, dim, max(n/200, 10), 0.6)
		}
		data, queries := all[:n], all[n:]
		start := time.Now()
		ix := build(b, data, o)
		bs := &benchSet{ix: ix, queries: queries, build: time.Since(start)}
		ids := seqIDs(n)
		for _, q := range queries[:200] {
			bs.truth = append(bs.truth, bruteForce(ids, data, q, 10))
		}
		benchMu.Lock()
		benchSets[key] = bs
		benchMu.Unlock()
	})
	benchMu.Lock()
	defer benchMu.Unlock()
	return benchSets[key]
}

// runSearch times single queries and reports the median and 99th
// percentile latency, recall@10 on the first queries and memory per entry.
func runSearch(b *testing.B, bs *benchSet) {
	ix := bs.ix
	lat := make([]time.Duration, 0, 1<<16)
	dst := make([]Hit, 0, 10)
	found, total := 0, 0
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		q := bs.queries[i%len(bs.queries)]
		start := time.Now()
		dst = ix.Search(q, 10, dst)
		lat = append(lat, time.Since(start))
		if i < len(bs.truth) {
			for _, w := range bs.truth[i] {
				if slices.ContainsFunc(dst, func(h Hit) bool { return h.ID == w.ID }) {
					found++
				}
			}
			total += len(bs.truth[i])
		}
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	if total > 0 {
		b.ReportMetric(float64(found)/float64(total), "recall@10")
	}
	b.ReportMetric(float64(ix.Bytes())/float64(ix.Len()), "B/entry")
	b.ReportMetric(bs.build.Seconds(), "build-s")
}

// BenchmarkSearch is the graph search on clustered data (standing in for
// real embeddings) at the default options. Run with -benchtime=2000x to
// time exactly 2000 queries.
func BenchmarkSearch(b *testing.B) {
	for _, c := range []struct {
		kind   string
		n, dim int
	}{
		{"clustered", 10_000, 256},
		{"clustered", 100_000, 256},
		{"clustered", 10_000, 512},
		{"clustered", 100_000, 512},
		{"random", 10_000, 256},
		{"random", 100_000, 256},
	} {
		b.Run(fmt.Sprintf("%s/n=%d/dim=%d", c.kind, c.n, c.dim), func(b *testing.B) {
			runSearch(b, getBenchSet(b, c.kind, c.n, c.dim, Options{}))
		})
	}
}

// BenchmarkCrossover compares the exact scan with the graph around the
// default ExactBelow, to choose it.
func BenchmarkCrossover(b *testing.B) {
	for _, n := range []int{1024, 2048, 4096, 8192} {
		for _, mode := range []struct {
			name string
			o    Options
		}{{"exact", Options{ExactBelow: 1 << 30}}, {"graph", Options{ExactBelow: -1}}} {
			b.Run(fmt.Sprintf("n=%d/%s", n, mode.name), func(b *testing.B) {
				runSearch(b, getBenchSet(b, "clustered", n, 256, mode.o))
			})
		}
	}
}

// BenchmarkAdd inserts clustered 256-d vectors into a growing index.
func BenchmarkAdd(b *testing.B) {
	for _, dim := range []int{256, 512} {
		b.Run(fmt.Sprintf("dim=%d", dim), func(b *testing.B) {
			data := clusteredData(7, 50_000, dim, 250, 0.6)
			ix := New(dim, Options{})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := ix.Add(uint64(i), data[i%len(data)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(ix.Bytes())/float64(ix.Len()), "B/entry")
		})
	}
}
