package retrieve

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"switchyard/internal/embed"
)

// The benchmark corpus: documents of 10 paragraphs of about 110 words
// drawn from a Zipf distribution over 30,000 made-up words, so that each
// paragraph is one chunk of about 200 estimated tokens (at the default
// max_tokens 256) and posting lists have a natural spread of lengths.
const (
	benchVocab     = 30000
	benchParas     = 10
	benchParaWords = 110
)

var benchWords = func() []string {
	r := rand.New(rand.NewPCG(1, 2))
	syl := strings.Fields("ka ri to me sa nu lo pe di va zo fu ge hi ja ko ly mi ne or an el is um")
	seen := map[string]bool{}
	var out []string
	for len(out) < benchVocab {
		var b strings.Builder
		for range 2 + r.IntN(3) {
			b.WriteString(syl[r.IntN(len(syl))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}()

type benchGen struct {
	r *rand.Rand
	z *rand.Zipf
}

func newBenchGen(seed uint64) *benchGen {
	r := rand.New(rand.NewPCG(seed, 7))
	return &benchGen{r: r, z: rand.NewZipf(r, 1.1, 2, benchVocab-1)}
}

func (g *benchGen) word() string { return benchWords[g.z.Uint64()] }

// doc returns document i: ten paragraphs, metadata bucket = i%10 (for a
// 10% filter) and rare = i%200 (0.5%); with classes > 1 it is visible to
// group g<i%classes> only, else to everyone.
func (g *benchGen) doc(i, classes int) Document {
	var b strings.Builder
	fmt.Fprintf(&b, "# Document %d\n\n", i)
	for p := range benchParas {
		if p > 0 {
			b.WriteString("\n\n")
		}
		for w := range benchParaWords {
			if w > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(g.word())
		}
		b.WriteByte('.')
	}
	d := Document{
		ID: fmt.Sprintf("doc-%06d", i), Format: Markdown, Content: []byte(b.String()),
		Metadata: map[string]any{"bucket": i % 10, "rare": i % 200},
	}
	if classes > 1 {
		d.ACL = ACL{Groups: []string{fmt.Sprintf("g%d", i%classes)}}
	}
	return d
}

// query returns 2 to 5 words, mostly of middling frequency.
func (g *benchGen) query() string {
	n := 2 + g.r.IntN(4)
	var q []string
	for range n {
		q = append(q, benchWords[20+g.r.IntN(3000)])
	}
	if g.r.IntN(2) == 0 {
		q = append(q, g.word()) // often a common one
	}
	return strings.Join(q, " ")
}

type benchColl struct {
	c       *Collection
	chunks  int
	heap    uint64 // bytes of heap the collection holds
	build   time.Duration
	queries []string
	vectors [][]float32
}

var (
	benchMu    sync.Mutex
	benchColls = map[string]*benchColl{}
)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// getBenchColl builds (once per process) a collection of about chunks
// chunks in classes ACL classes with the builtin 512-d embedder.
func getBenchColl(b *testing.B, chunks, classes int) *benchColl {
	key := fmt.Sprintf("%d/%d", chunks, classes)
	benchMu.Lock()
	defer benchMu.Unlock()
	if bc := benchColls[key]; bc != nil {
		return bc
	}
	ctx := context.Background()
	emb := embed.NewBuiltin(0)
	before := heapInUse()
	start := time.Now()
	c, err := New(ctx, Options{Embedder: emb})
	if err != nil {
		b.Fatal(err)
	}
	g := newBenchGen(uint64(chunks))
	// Embedding is parallel in a real ingest; here adds run on two
	// goroutines so both cores work, as an ingest of many files would.
	docs := make(chan Document, 16)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for d := range docs {
				if _, err := c.Add(ctx, d); err != nil {
					panic(err)
				}
			}
		})
	}
	for i := 0; i < chunks/benchParas; i++ {
		docs <- g.doc(i, classes)
	}
	close(docs)
	wg.Wait()
	bc := &benchColl{c: c, build: time.Since(start)}
	bc.chunks = c.Stats().Chunks
	bc.heap = heapInUse() - before
	for range 1000 {
		q := g.query()
		v, _ := emb.Embed(ctx, []string{q})
		bc.queries = append(bc.queries, q)
		bc.vectors = append(bc.vectors, v[0])
	}
	benchColls[key] = bc
	b.Logf("built %d chunks in %d classes in %v (%.0f chunks/s), heap %d B/chunk",
		bc.chunks, classes, bc.build.Round(time.Millisecond), float64(bc.chunks)/bc.build.Seconds(), bc.heap/uint64(bc.chunks))
	return bc
}

var sinkHits []Hit

// BenchmarkSearch reports p50 and p99 of Search per mode, with the query
// embedding precomputed (Query.Vector), so the figures exclude it.
//
//	go test -run '^$' -bench Search -benchtime 2000x ./internal/retrieve
func BenchmarkSearch(b *testing.B) {
	type variant struct {
		name    string
		classes int
		p       Principal
		filter  *Filter
	}
	variants := []variant{
		{"all", 1, Principal{}, nil},
		{"filter10pct", 1, Principal{}, &Filter{Type: Eq, Key: "bucket", Value: 3.0}},
		{"filter0.5pct", 1, Principal{}, &Filter{Type: Eq, Key: "rare", Value: 7.0}},
		{"acl4of16", 16, Principal{Groups: []string{"g0", "g1", "g2", "g3"}}, nil},
	}
	for _, n := range []int{10_000, 100_000} {
		for _, v := range variants {
			for _, m := range []Mode{ModeHybrid, ModeVector, ModeKeyword} {
				b.Run(fmt.Sprintf("n=%d/%s/%s", n, v.name, m), func(b *testing.B) {
					bc := getBenchColl(b, n, v.classes)
					p := v.p
					runSearch(b, bc, m, p, v.filter)
				})
			}
		}
	}
}

func runSearch(b *testing.B, bc *benchColl, m Mode, p Principal, f *Filter) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q := Query{Text: bc.queries[i%len(bc.queries)], Vector: bc.vectors[i%len(bc.vectors)], Mode: m, TopK: 10, Principal: p, Filter: f}
		t0 := time.Now()
		hits, err := bc.c.Search(ctx, q)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		sinkHits = hits
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(bc.heap)/float64(bc.chunks), "B/chunk")
}

// BenchmarkIngest reports the rate of Add with the builtin embedder into a
// collection that grows from empty, one goroutine.
func BenchmarkIngest(b *testing.B) {
	ctx := context.Background()
	c, err := New(ctx, Options{Embedder: embed.NewBuiltin(0)})
	if err != nil {
		b.Fatal(err)
	}
	g := newBenchGen(5)
	docs := make([]Document, b.N)
	var bytes int64
	for i := range docs {
		docs[i] = g.doc(i, 1)
		bytes += int64(len(docs[i].Content))
	}
	b.ReportAllocs()
	b.SetBytes(bytes / int64(b.N))
	b.ResetTimer()
	chunks := 0
	for i := 0; i < b.N; i++ {
		n, err := c.Add(ctx, docs[i])
		if err != nil {
			b.Fatal(err)
		}
		chunks += n
	}
	b.ReportMetric(float64(chunks)/b.Elapsed().Seconds(), "chunks/s")
}

// BenchmarkPostingsRebuild measures what a load spends rebuilding the
// keyword index from stored chunks (tokenizing and appending postings),
// per 100k chunks: the reason postings are not stored.
func BenchmarkPostingsRebuild(b *testing.B) {
	g := newBenchGen(9)
	const n = 100_000
	texts := make([]string, n)
	for i := range texts {
		var sb strings.Builder
		for w := range benchParaWords {
			if w > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(g.word())
		}
		texts[i] = sb.String()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		post := map[string][]posting{}
		for i, t := range texts {
			tf, _ := chunkTerms(t)
			for _, x := range tf {
				l, ok := post[x.term]
				key := x.term
				if !ok {
					key = strings.Clone(key)
				}
				post[key] = append(l, posting{uint32(i), x.tf})
			}
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1000, "ms/100k-chunks")
}

// BenchmarkReopen measures New on a DirStore of 10k chunks: reading and
// checking the files, rebuilding postings and the vector graph.
func BenchmarkReopen(b *testing.B) {
	ctx := context.Background()
	st, err := OpenDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	emb := embed.NewBuiltin(0)
	c, err := New(ctx, Options{Embedder: emb, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	g := newBenchGen(11)
	for i := range 1000 {
		if _, err := c.Add(ctx, g.doc(i, 1)); err != nil {
			b.Fatal(err)
		}
	}
	chunks := c.Stats().Chunks
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c2, err := New(ctx, Options{Embedder: emb, Store: st})
		if err != nil {
			b.Fatal(err)
		}
		if c2.Stats().Chunks != chunks {
			b.Fatal("lost chunks")
		}
	}
	b.ReportMetric(float64(chunks)*float64(b.N)/b.Elapsed().Seconds(), "chunks/s")
}
