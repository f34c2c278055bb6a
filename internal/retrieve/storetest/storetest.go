// Package storetest is the conformance suite of retrieve.Store and
// retrieve.ChangeFeed: DirStore, pgstore and Mem run the same tests, and
// so must any other backend (pgvector, a vector database). Run checks a
// Store alone and under a Collection; RunFeed checks replicas kept in step
// through a ChangeFeed by retrieve.Follow.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"switchyard/internal/embed"
	"switchyard/internal/retrieve"
)

// Backend opens the stores of one implementation for Run.
type Backend struct {
	// New returns an empty store, and a function that opens the same
	// store again: a restart, or for a shared store another replica.
	New func(t *testing.T) (s retrieve.Store, reopen func(t *testing.T) retrieve.Store)
	// Corrupt damages what s keeps of document id, so that reading it
	// must fail.
	Corrupt func(t *testing.T, s retrieve.Store, id string)
}

// Run runs the Store tests against b.
func Run(t *testing.T, b Backend) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, b) })
	t.Run("ReplaceDelete", func(t *testing.T) { testReplaceDelete(t, b) })
	t.Run("Seq", func(t *testing.T) { testSeq(t, b) })
	t.Run("Atomic", func(t *testing.T) { testAtomic(t, b) })
	t.Run("Corrupt", func(t *testing.T) { testCorrupt(t, b) })
	t.Run("Collection", func(t *testing.T) { testCollection(t, b) })
}

// Doc returns a stored document with every field set, and vectors whose
// bits are easy to lose: -0, the smallest subnormal, the largest float32,
// a third.
func Doc(id string, v int) *retrieve.StoredDoc {
	return &retrieve.StoredDoc{
		ID: id, Title: "Title of " + id, URL: "https://example.com/" + id, Format: retrieve.Markdown,
		Metadata: map[string]any{"team": "hr", "n": float64(v), "big": 1e300, "frac": 0.1, "even": v%2 == 0, "ü": "ß"},
		ACL:      retrieve.ACL{Tenants: []string{"acme"}, Groups: []string{"g1", "g2"}, Keys: []string{"k"}},
		Version:  fmt.Sprintf("sha256:%064d", v),
		Embedder: "test-embedder", Dim: 4,
		Chunks: []retrieve.Chunk{
			{Pos: 0, Start: 0, End: 10, Heading: []string{"H1", "H2 ünïcödé"}, Text: "text of " + id, Tokens: 3},
			{Pos: 1, Start: 10, End: 24, Text: "a record\n\"quoted\"", Tokens: 4, Record: "r1", URL: "https://r/1",
				Metadata: map[string]any{"lang": "en", "w": 2.5}},
		},
		Vectors: [][]float32{
			{0, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, math.MaxFloat32},
			{-1, 0.1, float32(v), 1.0 / 3},
		},
	}
}

// bare is a document with nothing optional.
func bare(id string) *retrieve.StoredDoc {
	return &retrieve.StoredDoc{
		ID: id, Format: retrieve.Text, Embedder: "test-embedder", Dim: 4,
		Chunks:  []retrieve.Chunk{{Pos: 0, End: 4, Text: "bare", Tokens: 1}},
		Vectors: [][]float32{{0.5, 0.5, 0.5, 0.5}},
	}
}

func clone(d *retrieve.StoredDoc) *retrieve.StoredDoc {
	c := *d
	c.Vectors = make([][]float32, len(d.Vectors))
	for i, v := range d.Vectors {
		c.Vectors[i] = append([]float32(nil), v...)
	}
	return &c
}

// Equal reports how got differs from want, "" when it does not: every
// field, vectors bit for bit.
func Equal(got, want *retrieve.StoredDoc) string {
	g, w := *got, *want
	g.Vectors, w.Vectors = nil, nil
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("got %+v\nwant %+v", g, w)
	}
	if len(got.Vectors) != len(want.Vectors) {
		return fmt.Sprintf("%d vectors, want %d", len(got.Vectors), len(want.Vectors))
	}
	for i := range got.Vectors {
		if len(got.Vectors[i]) != len(want.Vectors[i]) {
			return fmt.Sprintf("vector %d has %d components, want %d", i, len(got.Vectors[i]), len(want.Vectors[i]))
		}
		for j := range got.Vectors[i] {
			if a, b := math.Float32bits(got.Vectors[i][j]), math.Float32bits(want.Vectors[i][j]); a != b {
				return fmt.Sprintf("vector %d component %d: bits %08x, want %08x", i, j, a, b)
			}
		}
	}
	return ""
}

func scan(t *testing.T, s retrieve.Store) map[string]*retrieve.StoredDoc {
	t.Helper()
	out := map[string]*retrieve.StoredDoc{}
	err := s.Scan(context.Background(), func(d *retrieve.StoredDoc) error {
		if out[d.ID] != nil {
			return fmt.Errorf("document %q yielded twice", d.ID)
		}
		out[d.ID] = d
		return nil
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return out
}

// putter numbers Puts as a Collection does and checks that the numbers
// the store leaves increase.
type putter struct {
	t    *testing.T
	s    retrieve.Store
	last uint64
}

func (p *putter) put(d *retrieve.StoredDoc) *retrieve.StoredDoc {
	p.t.Helper()
	in := clone(d)
	in.Seq = p.last + 1
	if err := p.s.Put(context.Background(), in); err != nil {
		p.t.Fatalf("Put(%q): %v", d.ID, err)
	}
	if in.Seq <= p.last {
		p.t.Fatalf("Put(%q) left seq %d after %d", d.ID, in.Seq, p.last)
	}
	p.last = in.Seq
	want := clone(d)
	want.Seq = in.Seq
	return want
}

func (p *putter) del(id string) uint64 {
	p.t.Helper()
	seq, err := p.s.Delete(context.Background(), id)
	if err != nil {
		p.t.Fatalf("Delete(%q): %v", id, err)
	}
	if seq != 0 {
		if seq <= p.last {
			p.t.Fatalf("Delete(%q) numbered %d after %d", id, seq, p.last)
		}
		p.last = seq
	}
	return seq
}

func check(t *testing.T, got map[string]*retrieve.StoredDoc, want ...*retrieve.StoredDoc) {
	t.Helper()
	if len(got) != len(want) {
		var ids []string
		for id := range got {
			ids = append(ids, id)
		}
		t.Errorf("store holds %d documents %q, want %d", len(got), ids, len(want))
	}
	for _, w := range want {
		g := got[w.ID]
		if g == nil {
			t.Errorf("document %q missing", w.ID)
			continue
		}
		if diff := Equal(g, w); diff != "" {
			t.Errorf("document %q: %s", w.ID, diff)
		}
	}
}

func testRoundTrip(t *testing.T, b Backend) {
	s, reopen := b.New(t)
	p := &putter{t: t, s: s}
	long := strings.Repeat("é", 512) // 1024 bytes, the longest id
	var want []*retrieve.StoredDoc
	for _, d := range []*retrieve.StoredDoc{Doc("a", 1), Doc("dir/ünï code.md", 2), bare("b"), bare(long)} {
		want = append(want, p.put(d))
	}
	// The store keeps copies: changing what was passed changes nothing.
	in := Doc("c", 3)
	in.Seq = p.last + 1
	if err := s.Put(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	c := Doc("c", 3)
	c.Seq, p.last = in.Seq, in.Seq
	want = append(want, c)
	in.Title, in.Vectors[0][0], in.Metadata["team"], in.Chunks[0].Text = "changed", 42, "changed", "changed"
	check(t, scan(t, s), want...)
	check(t, scan(t, reopen(t)), want...)
}

func testReplaceDelete(t *testing.T, b Backend) {
	s, reopen := b.New(t)
	p := &putter{t: t, s: s}
	p.put(Doc("a", 1))
	b1 := p.put(bare("b"))
	a2 := p.put(Doc("a", 2))
	check(t, scan(t, s), a2, b1)
	if seq := p.del("a"); seq != 0 && seq <= a2.Seq {
		t.Errorf("deletion numbered %d, before the document's %d", seq, a2.Seq)
	}
	check(t, scan(t, s), b1)
	for _, id := range []string{"a", "never"} {
		if seq, err := s.Delete(context.Background(), id); seq != 0 || err != nil {
			t.Errorf("Delete(%q) of a missing document: %d, %v", id, seq, err)
		}
	}
	a3 := p.put(Doc("a", 3))
	check(t, scan(t, s), a3, b1)
	check(t, scan(t, reopen(t)), a3, b1)
}

// testSeq: the numbers the store leaves increase and come back from Scan,
// so a collection loads documents in the order they were added.
func testSeq(t *testing.T, b Backend) {
	s, reopen := b.New(t)
	p := &putter{t: t, s: s}
	var want []*retrieve.StoredDoc
	for i := range 5 {
		want = append(want, p.put(bare(fmt.Sprintf("d%d", i))))
	}
	want[1] = p.put(Doc("d1", 7))
	p.del("d3")
	want = append(want[:3], want[4:]...)
	got := scan(t, reopen(t))
	check(t, got, want...)
	if !(got["d0"].Seq < got["d2"].Seq && got["d2"].Seq < got["d4"].Seq && got["d4"].Seq < got["d1"].Seq) {
		t.Errorf("seqs d0 %d, d2 %d, d4 %d, d1 %d: not in the order of the Puts", got["d0"].Seq, got["d2"].Seq, got["d4"].Seq, got["d1"].Seq)
	}
}

// testAtomic: a failed Put leaves the old document whole.
func testAtomic(t *testing.T, b Backend) {
	s, reopen := b.New(t)
	p := &putter{t: t, s: s}
	a := p.put(Doc("a", 1))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		d    func() *retrieve.StoredDoc
	}{
		{"vectors for fewer chunks", context.Background(), func() *retrieve.StoredDoc {
			d := Doc("a", 2)
			d.Vectors = d.Vectors[:1]
			return d
		}},
		{"short vector", context.Background(), func() *retrieve.StoredDoc {
			d := Doc("a", 2)
			d.Vectors[1] = d.Vectors[1][:3]
			return d
		}},
		{"unencodable metadata", context.Background(), func() *retrieve.StoredDoc {
			d := Doc("a", 2)
			d.Metadata["nan"] = math.NaN()
			return d
		}},
		{"cancelled", cancelled, func() *retrieve.StoredDoc { return Doc("a", 2) }},
	} {
		d := tc.d()
		d.Seq = p.last + 1
		if err := s.Put(tc.ctx, d); err == nil {
			t.Errorf("%s: Put succeeded", tc.name)
		}
		check(t, scan(t, s), a)
	}
	if _, err := s.Delete(cancelled, "a"); err == nil {
		t.Error("Delete with a cancelled context succeeded")
	}
	check(t, scan(t, reopen(t)), a)
	// Scan stops at fn's first error and returns it.
	p.put(bare("b"))
	stop := errors.New("stop")
	calls := 0
	if err := s.Scan(context.Background(), func(*retrieve.StoredDoc) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Scan with a failing fn: %v after %d calls", err, calls)
	}
}

// testCorrupt: a document that cannot be read whole fails Scan, and New.
func testCorrupt(t *testing.T, b Backend) {
	s, reopen := b.New(t)
	p := &putter{t: t, s: s}
	p.put(Doc("a", 1))
	p.put(Doc("b", 2))
	b.Corrupt(t, s, "b")
	for i, st := range []retrieve.Store{s, reopen(t)} {
		err := st.Scan(context.Background(), func(d *retrieve.StoredDoc) error {
			if d.ID == "b" {
				return fmt.Errorf("the corrupt document was yielded: %+v", d)
			}
			return nil
		})
		if err == nil || strings.Contains(err.Error(), "was yielded") {
			t.Errorf("store %d: Scan of a corrupt document: %v", i, err)
		}
	}
	c, err := retrieve.New(context.Background(), retrieve.Options{Embedder: testEmbedder{}, Store: reopen(t)})
	if err == nil || strings.Contains(err.Error(), "embedded by") {
		t.Errorf("New over a corrupt document: %v", err)
		if err == nil {
			t.Logf("stats %+v", c.Stats())
		}
	}
}

// testEmbedder is the embedder Doc's vectors claim: "test-embedder", 4-d.
type testEmbedder struct{}

func (testEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i := range out {
		out[i] = []float32{1, 0, 0, 0}
	}
	return out, nil
}
func (testEmbedder) Dim() int     { return 4 }
func (testEmbedder) Name() string { return "test-embedder" }

func words(seed, n int) string {
	var b strings.Builder
	x := uint32(seed*2654435761 + 1)
	for i := range n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "w%d", x%97)
	}
	return b.String()
}

func newColl(t testing.TB, s retrieve.Store) *retrieve.Collection {
	t.Helper()
	c, err := retrieve.New(context.Background(), retrieve.Options{
		Embedder: embed.NewBuiltin(64), Store: s, Chunking: retrieve.ChunkOptions{MaxTokens: 32},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustAdd(t testing.TB, c *retrieve.Collection, d retrieve.Document) {
	t.Helper()
	if _, err := c.Add(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

// Docs returns c's documents, by ID.
func Docs(c *retrieve.Collection) []retrieve.DocInfo {
	var out []retrieve.DocInfo
	c.Docs(func(d retrieve.DocInfo) bool { out = append(out, d); return true })
	return out
}

// testCollection: a collection reopened from the store finds the same
// hits, in every mode, for every principal, and holds the same documents.
func testCollection(t *testing.T, b Backend) {
	ctx := context.Background()
	s, reopen := b.New(t)
	c := newColl(t, s)
	for i := range 16 {
		mustAdd(t, c, retrieve.Document{
			ID: fmt.Sprintf("doc/%d", i), Title: fmt.Sprintf("Doc %d", i), URL: fmt.Sprint("http://x/", i),
			Format:   retrieve.Markdown,
			Content:  fmt.Appendf(nil, "# H%d\n\n%s\n\n## Sub\n\n%s", i, words(i, 40), words(i*3, 20)),
			Metadata: map[string]any{"i": i, "even": i%2 == 0}, ACL: retrieve.ACL{Groups: []string{fmt.Sprintf("g%d", i%3)}},
			Version: fmt.Sprintf("v%d", i),
		})
	}
	mustAdd(t, c, retrieve.Document{ID: "records", Format: retrieve.JSONL, Content: []byte(`{"text":"w5 record one","id":"r1","metadata":{"lang":"en"}}` + "\n" + `{"text":"w6 record two","title":"Two"}`)})
	mustAdd(t, c, retrieve.Document{ID: "doc/3", Content: []byte("replaced w3 w4 w5"), Version: "v3b"})
	if ok, err := c.Delete(ctx, "doc/4"); !ok || err != nil {
		t.Fatalf("Delete: %v %v", ok, err)
	}
	if d, ok := c.Doc("doc/3"); !ok || d.Version != "v3b" || d.Chunks != 1 || d.Format != retrieve.Text {
		t.Errorf("Doc(doc/3): %+v %v", d, ok)
	}
	if d, ok := c.Doc("doc/5"); !ok || d.Version != "v5" || d.Metadata["i"] != 5.0 || !reflect.DeepEqual(d.ACL, retrieve.ACL{Groups: []string{"g2"}}) {
		t.Errorf("Doc(doc/5): %+v %v", d, ok)
	}
	if _, ok := c.Doc("doc/4"); ok {
		t.Error("Doc(doc/4) after its deletion")
	}
	var queries []retrieve.Query
	for _, m := range []retrieve.Mode{retrieve.ModeHybrid, retrieve.ModeVector, retrieve.ModeKeyword} {
		for _, g := range []string{"g0", "g1", "g2"} {
			p := retrieve.Principal{Groups: []string{g}}
			queries = append(queries,
				retrieve.Query{Text: "w5 w12 record", Mode: m, TopK: 20, Principal: p},
				retrieve.Query{Text: "w7 w30", Mode: m, Filter: &retrieve.Filter{Type: retrieve.Eq, Key: "even", Value: true}, Principal: p})
		}
	}
	var before [][]retrieve.Hit
	found := 0
	for _, q := range queries {
		h, err := c.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		found += len(h)
		before = append(before, h)
	}
	if found == 0 {
		t.Fatal("no hits at all")
	}
	c2 := newColl(t, reopen(t))
	if s1, s2 := c.Stats(), c2.Stats(); s1 != s2 {
		t.Errorf("stats %+v after reopening, %+v before", s2, s1)
	}
	if d1, d2 := Docs(c), Docs(c2); !reflect.DeepEqual(d1, d2) {
		t.Errorf("documents after reopening:\n%+v\nbefore:\n%+v", d2, d1)
	}
	for i, q := range queries {
		got, err := c2.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, before[i]) {
			t.Errorf("query %d (%+v) after reopening:\n got %v\nwant %v", i, q, got, before[i])
		}
	}
	// A collection of another embedder refuses the documents.
	if _, err := retrieve.New(ctx, retrieve.Options{Embedder: embed.NewBuiltin(32), Store: reopen(t)}); err == nil || !strings.Contains(err.Error(), "64-d") {
		t.Errorf("another dimension: %v", err)
	}
}

// FeedBackend opens the shared stores of one implementation for RunFeed.
type FeedBackend struct {
	// New returns an empty shared store, and a function that opens
	// another handle on it: another replica, or one restarted.
	New func(t *testing.T) (s retrieve.Store, open func(t *testing.T) retrieve.Store)
	// Prune, if not nil, drops every tombstone of s's collection now.
	Prune func(t *testing.T, s retrieve.Store)
	// Disconnect, if not nil, breaks the connection of every Watch
	// running and returns how many it broke; they must reconnect.
	Disconnect func(t *testing.T) int
	// Listening, required with Disconnect, returns how many Watches are
	// connected.
	Listening func(t *testing.T) int
}

// Within is how soon a change made through one replica must be
// searchable on another that follows the store.
const Within = time.Second

// RunFeed runs the replica tests against b.
func RunFeed(t *testing.T, b FeedBackend) {
	t.Run("Replicas", func(t *testing.T) { testReplicas(t, b) })
	t.Run("OwnWrites", func(t *testing.T) { testOwnWrites(t, b) })
	t.Run("Restart", func(t *testing.T) { testRestart(t, b) })
	t.Run("DeleteUnseen", func(t *testing.T) { testDeleteUnseen(t, b) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, b) })
	if b.Prune != nil {
		t.Run("Pruned", func(t *testing.T) { testPruned(t, b) })
	}
	if b.Disconnect != nil {
		t.Run("Reconnect", func(t *testing.T) { testReconnect(t, b) })
	}
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// Follow starts retrieve.Follow for c, logging to t, stopped when t ends;
// it returns the stop function.
func Follow(t testing.TB, c *retrieve.Collection, name string) func() {
	t.Helper()
	log := slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", name)
	stop, err := retrieve.Follow(context.Background(), c, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return stop
}

// Eventually waits until cond holds, failing t after within; it returns
// how long it took.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// Finds reports whether a keyword search for word on c returns document id.
func Finds(c *retrieve.Collection, word, id string) bool {
	hits, err := c.Search(context.Background(), retrieve.Query{Text: word, Mode: retrieve.ModeKeyword, TopK: 50})
	if err != nil {
		panic(err)
	}
	for _, h := range hits {
		if h.DocID == id {
			return true
		}
	}
	return false
}

func doc(id, text, version string) retrieve.Document {
	return retrieve.Document{ID: id, Content: []byte(text), Version: version, Metadata: map[string]any{"v": version}}
}

func sameDocs(a, b *retrieve.Collection) func() bool {
	return func() bool { return reflect.DeepEqual(Docs(a), Docs(b)) }
}

func testReplicas(t *testing.T, b FeedBackend) {
	ctx := context.Background()
	sa, open := b.New(t)
	a, r := newColl(t, sa), newColl(t, open(t))
	Follow(t, a, "a")
	Follow(t, r, "b")
	mustAdd(t, a, doc("x", "zebras graze", "1"))
	d := Eventually(t, Within, "an Add through a, searchable on b", func() bool { return Finds(r, "zebras", "x") })
	t.Logf("an Add reached the other replica in %v", d)
	mustAdd(t, r, doc("x", "lions hunt", "2"))
	Eventually(t, Within, "a replacement through b, on a", func() bool {
		info, _ := a.Doc("x")
		return Finds(a, "lions", "x") && !Finds(a, "zebras", "x") && info.Version == "2"
	})
	if ok, err := a.Delete(ctx, "x"); !ok || err != nil {
		t.Fatalf("Delete: %v %v", ok, err)
	}
	Eventually(t, Within, "a deletion through a, on b", func() bool {
		_, ok := r.Doc("x")
		return !ok && !Finds(r, "lions", "x")
	})
	mustAdd(t, r, doc("y", "giraffes", "1"))
	Eventually(t, Within, "the same documents on both", sameDocs(a, r))
}

// testOwnWrites: a replica's own changes come back through the feed and
// are skipped, not indexed again.
func testOwnWrites(t *testing.T, b FeedBackend) {
	ctx := context.Background()
	sa, open := b.New(t)
	a, r := newColl(t, sa), newColl(t, open(t))
	sync := func(c *retrieve.Collection, want int, what string) {
		t.Helper()
		if n, err := c.Sync(ctx); n != want || err != nil {
			t.Errorf("%s: Sync applied %d, %v; want %d", what, n, err, want)
		}
	}
	mustAdd(t, a, doc("y", "otters swim", "1"))
	mustAdd(t, a, doc("z", "seals", "1"))
	sync(a, 0, "own Adds")
	sync(r, 2, "another's Adds")
	sync(r, 0, "again")
	if _, err := a.Delete(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, a, doc("z", "seals bark", "2"))
	sync(a, 0, "own Delete and replacement")
	sync(r, 2, "another's Delete and replacement")
	if !reflect.DeepEqual(Docs(a), Docs(r)) {
		t.Errorf("documents differ:\n%+v\n%+v", Docs(a), Docs(r))
	}
	if _, err := newColl(t, sa).Sync(ctx); err != nil {
		t.Error(err)
	}
}

// testRestart: a replica stopped while others write catches up when it
// follows again, and a new one loads it all.
func testRestart(t *testing.T, b FeedBackend) {
	ctx := context.Background()
	sa, open := b.New(t)
	a, r := newColl(t, sa), newColl(t, open(t))
	for i := range 3 {
		mustAdd(t, a, doc(fmt.Sprint("p", i), "penguins "+words(i, 5), "1"))
	}
	stop := Follow(t, r, "b")
	Eventually(t, Within, "the first documents on b", sameDocs(a, r))
	stop()
	mustAdd(t, a, doc("p0", "puffins", "2"))
	if _, err := a.Delete(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, a, doc("q", "quokkas", "1"))
	time.Sleep(50 * time.Millisecond)
	if reflect.DeepEqual(Docs(a), Docs(r)) {
		t.Fatal("b changed while stopped")
	}
	Follow(t, r, "b again")
	Eventually(t, Within, "b catching up", sameDocs(a, r))
	if !Finds(r, "puffins", "p0") || Finds(r, "penguins", "p1") || !Finds(r, "quokkas", "q") {
		t.Error("b's searches after catching up")
	}
	c := newColl(t, open(t))
	if !reflect.DeepEqual(Docs(a), Docs(c)) {
		t.Errorf("a new replica:\n%+v\nwant\n%+v", Docs(c), Docs(a))
	}
}

// testDeleteUnseen: a replica deletes a document it has not synced yet.
func testDeleteUnseen(t *testing.T, b FeedBackend) {
	ctx := context.Background()
	sa, open := b.New(t)
	a, r := newColl(t, sa), newColl(t, open(t))
	mustAdd(t, a, doc("u", "unseen", "1"))
	if ok, err := r.Delete(ctx, "u"); !ok || err != nil {
		t.Fatalf("Delete of a document only the store holds: %v %v", ok, err)
	}
	if n, err := a.Sync(ctx); n != 1 || err != nil {
		t.Errorf("Sync: %d %v", n, err)
	}
	if _, ok := a.Doc("u"); ok {
		t.Error("still there")
	}
	if n, err := r.Sync(ctx); n != 0 || err != nil {
		t.Errorf("Sync of the deleting replica: %d %v", n, err)
	}
	if ok, err := r.Delete(ctx, "u"); ok || err != nil {
		t.Errorf("Delete again: %v %v", ok, err)
	}
}

// testConcurrentWriters: two replicas write at once, some documents
// through both; they converge on the same documents.
func testConcurrentWriters(t *testing.T, b FeedBackend) {
	ctx := context.Background()
	sa, open := b.New(t)
	a, r := newColl(t, sa), newColl(t, open(t))
	Follow(t, a, "a")
	Follow(t, r, "b")
	var wg sync.WaitGroup
	for w, c := range []*retrieve.Collection{a, r} {
		wg.Go(func() {
			for i := range 12 {
				if _, err := c.Add(ctx, doc(fmt.Sprintf("w%d-%d", w, i), words(i+w*100, 8), "1")); err != nil {
					t.Error(err)
					return
				}
				if _, err := c.Add(ctx, doc(fmt.Sprint("shared", i%3), words(i, 6), fmt.Sprintf("%d-%d", w, i))); err != nil {
					t.Error(err)
					return
				}
				if i%4 == 3 {
					if _, err := c.Delete(ctx, fmt.Sprintf("w%d-%d", 1-w, i-2)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	Eventually(t, 10*time.Second, "both replicas converging", sameDocs(a, r))
	if c := newColl(t, open(t)); !reflect.DeepEqual(Docs(a), Docs(c)) {
		t.Errorf("a new replica:\n%+v\nwant\n%+v", Docs(c), Docs(a))
	}
	if s := a.Stats(); s.Docs < 20 {
		t.Errorf("stats %+v", s)
	}
}

// testPruned: a replica that missed tombstones now pruned reads the
// whole store again and drops what was deleted.
func testPruned(t *testing.T, b FeedBackend) {
	ctx := context.Background()
	sa, open := b.New(t)
	a, r := newColl(t, sa), newColl(t, open(t))
	mustAdd(t, a, doc("k1", "kiwis", "1"))
	mustAdd(t, a, doc("k2", "kakapos", "1"))
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Delete(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, a, doc("k3", "keas", "1"))
	b.Prune(t, sa)
	if n, err := r.Sync(ctx); n != 2 || err != nil {
		t.Errorf("Sync after pruning: %d %v, want 2 (k1 removed, k3 added)", n, err)
	}
	if !reflect.DeepEqual(Docs(a), Docs(r)) {
		t.Errorf("after pruning:\n%+v\nwant\n%+v", Docs(r), Docs(a))
	}
	mustAdd(t, a, doc("k4", "kea", "1"))
	if n, err := r.Sync(ctx); n != 1 || err != nil {
		t.Errorf("the next Sync: %d %v", n, err)
	}
}

// testReconnect: the watch's connections are broken; changes still
// arrive, sooner than the poll would bring them.
func testReconnect(t *testing.T, b FeedBackend) {
	sa, open := b.New(t)
	a, r := newColl(t, sa), newColl(t, open(t))
	Follow(t, a, "a")
	Follow(t, r, "b")
	mustAdd(t, a, doc("c0", "cassowary", "1"))
	Eventually(t, Within, "before the disconnection", func() bool { return Finds(r, "cassowary", "c0") })
	// c0 may have come by Follow's first Sync, before the watches listen.
	Eventually(t, 5*time.Second, "both watches listening", func() bool { return b.Listening(t) >= 2 })
	if n := b.Disconnect(t); n < 2 {
		t.Fatalf("broke %d connections, want at least the 2 watches", n)
	}
	mustAdd(t, a, doc("c1", "condor", "1"))
	d := Eventually(t, retrieve.FollowPoll/2, "a change made while disconnected", func() bool { return Finds(r, "condor", "c1") })
	t.Logf("a change made while disconnected arrived in %v", d)
	// The watches listen again: a change arrives through a notification.
	Eventually(t, 5*time.Second, "the watches listening again", func() bool { return b.Listening(t) >= 2 })
	mustAdd(t, r, doc("c2", "crane", "1"))
	Eventually(t, Within, "after reconnecting", func() bool { return Finds(a, "crane", "c2") })
}
