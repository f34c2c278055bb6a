package retrieve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"switchyard/internal/embed"
	"switchyard/internal/vindex"
)

func newColl(t testing.TB, o Options) *Collection {
	t.Helper()
	if o.Embedder == nil {
		o.Embedder = embed.NewBuiltin(64)
	}
	c, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustAdd(t testing.TB, c *Collection, d Document) {
	t.Helper()
	if _, err := c.Add(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

func search(t testing.TB, c *Collection, q Query) []Hit {
	t.Helper()
	h, err := c.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func ids(hits []Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.ChunkID)
	}
	return out
}

// TestBM25 checks scores worked out by hand (in the comments) on a corpus
// of three one-chunk documents, and that a document the principal may not
// see changes none of them.
func TestBM25(t *testing.T) {
	c := newColl(t, Options{})
	mustAdd(t, c, Document{ID: "d1", Content: []byte("apple banana")})               // length 2
	mustAdd(t, c, Document{ID: "d2", Content: []byte("Apple apple, cherry.")})       // length 3
	mustAdd(t, c, Document{ID: "d3", Content: []byte("cherry date elderberry fig")}) // length 4
	mustAdd(t, c, Document{ID: "hidden", Content: []byte("apple fig fig"), ACL: ACL{Tenants: []string{"other"}}})
	// N = 3, avgdl = 3, k1 = 1.2, b = 0.75.
	// apple: df 2, idf = ln(1 + 1.5/2.5) = ln 1.6 = 0.4700036
	//   d1: tf 1, dl 2: K = 1.2(0.25 + 0.75·2/3) = 0.9; 0.4700036 · 2.2/1.9 = 0.5442147
	//   d2: tf 2, dl 3: K = 1.2; 0.4700036 · 4.4/3.2 = 0.6462550
	// cherry: df 2, idf 0.4700036; fig: df 1, idf = ln(1 + 2.5/1.5) = 0.9808293
	//   d2: cherry tf 1, dl 3: 0.4700036 · 2.2/2.2 = 0.4700036
	//   d3: dl 4: K = 1.5; cherry 0.4700036 · 0.88 + fig 0.9808293 · 0.88 = 1.2767329
	tests := []struct {
		q    string
		want []string
		sc   []float64
	}{
		{"apple", []string{"d2#0", "d1#0"}, []float64{0.6462550, 0.5442147}},
		{"cherry FIG", []string{"d3#0", "d2#0"}, []float64{1.2767329, 0.4700036}},
		{"banana banana", []string{"d1#0"}, []float64{math.Log(1+2.5/1.5) * 2.2 / 1.9}},
		{"nothing", nil, nil},
		{"", nil, nil},
	}
	for _, tc := range tests {
		hits := search(t, c, Query{Text: tc.q, Mode: ModeKeyword})
		if !slices.Equal(ids(hits), tc.want) {
			t.Errorf("%q: hits %v, want %v", tc.q, ids(hits), tc.want)
			continue
		}
		for i, h := range hits {
			if math.Abs(h.Score-tc.sc[i]) > 1e-6 {
				t.Errorf("%q: %s scores %.7f, want %.7f", tc.q, h.ChunkID, h.Score, tc.sc[i])
			}
		}
	}
	// The principal of tenant "other" sees four documents: N = 4, and
	// "hidden" ranks first for fig (tf 2).
	hits := search(t, c, Query{Text: "fig", Mode: ModeKeyword, Principal: Principal{Tenant: "other"}})
	if !slices.Equal(ids(hits), []string{"hidden#0", "d3#0"}) {
		t.Errorf("tenant other: %v", ids(hits))
	}
	// min_score and top_k.
	if hits := search(t, c, Query{Text: "apple", Mode: ModeKeyword, MinScore: 0.6}); !slices.Equal(ids(hits), []string{"d2#0"}) {
		t.Errorf("min_score 0.6: %v", ids(hits))
	}
	if hits := search(t, c, Query{Text: "apple cherry", Mode: ModeKeyword, TopK: 1}); len(hits) != 1 {
		t.Errorf("top_k 1: %v", ids(hits))
	}
}

// TestFuse checks reciprocal rank fusion on two hand-made rankings.
func TestFuse(t *testing.T) {
	c := newColl(t, Options{})
	for _, id := range []string{"a", "b", "c", "d"} {
		mustAdd(t, c, Document{ID: id, Content: []byte("text " + id)})
	}
	slot := func(id string) uint32 { return c.docs[id].first }
	sc := c.getScratch()
	kw := []scored{{slot("a"), 9}, {slot("b"), 5}, {slot("c"), 1}}
	vec := []scored{{slot("c"), 0.9}, {slot("a"), 0.8}, {slot("d"), 0.1}}
	got := c.fuse(sc, kw, vec, 10)
	// a: 1/61 + 1/62, c: 1/63 + 1/61, b: 1/62, d: 1/63, each × 61/2.
	want := []struct {
		id string
		s  float64
	}{
		{"a", 30.5 * (1.0/61 + 1.0/62)},
		{"c", 30.5 * (1.0/61 + 1.0/63)},
		{"b", 30.5 / 62},
		{"d", 30.5 / 63},
	}
	if len(got) != len(want) {
		t.Fatalf("fused %v", got)
	}
	for i, w := range want {
		if got[i].slot != slot(w.id) || math.Abs(got[i].score-w.s) > 1e-12 {
			t.Errorf("rank %d: slot %d score %v, want %s (slot %d) %v", i, got[i].slot, got[i].score, w.id, slot(w.id), w.s)
		}
	}
	if got := c.fuse(sc, kw, vec, 2); len(got) != 2 || got[0].slot != slot("a") || got[1].slot != slot("c") {
		t.Errorf("top 2: %v", got)
	}
	// First in both is 1; equal sums are ordered by document id.
	got = c.fuse(sc, []scored{{slot("d"), 1}}, []scored{{slot("b"), 1}}, 10)
	if got[0].score != 0.5 || got[0].slot != slot("b") || got[1].slot != slot("d") {
		t.Errorf("ties: %v", got)
	}
	if got := c.fuse(sc, []scored{{slot("a"), 1}}, []scored{{slot("a"), 1}}, 10); got[0].score != 1 {
		t.Errorf("first in both scores %v, want 1", got[0].score)
	}
}

func TestModes(t *testing.T) {
	c := newColl(t, Options{Embedder: embed.NewBuiltin(256)})
	mustAdd(t, c, Document{ID: "cats", Format: Markdown, Content: []byte("# Cats\n\nCats are small domesticated felines that purr and chase mice.")})
	mustAdd(t, c, Document{ID: "dogs", Format: Markdown, Content: []byte("# Dogs\n\nDogs are loyal companions that bark and fetch sticks.")})
	mustAdd(t, c, Document{ID: "go", Format: Markdown, Content: []byte("# Go\n\nGo is a programming language with goroutines and channels.")})
	for _, m := range []Mode{ModeHybrid, ModeVector, ModeKeyword, ""} {
		hits := search(t, c, Query{Text: "which animal will purr", Mode: m, TopK: 3})
		if len(hits) == 0 || hits[0].DocID != "cats" {
			t.Errorf("mode %q: %v", m, ids(hits))
			continue
		}
		h := hits[0]
		if !slices.Equal(h.Heading, []string{"Cats"}) || !strings.HasPrefix(h.Text, "Cats are") || h.ChunkID != "cats#0" {
			t.Errorf("mode %q: hit %+v", m, h)
		}
	}
	// A precomputed vector replaces embedding.
	v, _ := embed.NewBuiltin(256).Embed(context.Background(), []string{"goroutines channels"})
	if hits := search(t, c, Query{Vector: v[0], Mode: ModeVector, TopK: 1}); len(hits) != 1 || hits[0].DocID != "go" {
		t.Errorf("vector query: %v", ids(hits))
	}
	for _, tc := range []struct {
		q   Query
		msg string
	}{
		{Query{Text: "x", Mode: "fuzzy"}, `unknown search mode "fuzzy"`},
		{Query{Text: "x", TopK: -1}, "top_k -1"},
		{Query{Text: "x", TopK: MaxTopK + 1}, "top_k"},
		{Query{Mode: ModeVector}, "no text and no vector"},
		{Query{Vector: []float32{1, 2}}, "query vector: vector has 2 components, want 256"},
		{Query{Text: "x", Filter: &Filter{Type: Eq, Key: "a"}}, "filter: value: a \"eq\" comparison needs a value"},
		{Query{Text: "x", MinScore: math.NaN()}, "min_score is NaN"},
	} {
		if _, err := c.Search(context.Background(), tc.q); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: error %v, want %q", tc.q, err, tc.msg)
		}
	}
}

func TestAddReplaceDelete(t *testing.T) {
	ctx := context.Background()
	c := newColl(t, Options{})
	n, err := c.Add(ctx, Document{ID: "a", Content: []byte("first version about zebras"), Metadata: map[string]any{"v": 1}})
	if err != nil || n != 1 {
		t.Fatalf("Add: %d, %v", n, err)
	}
	mustAdd(t, c, Document{ID: "a", Content: []byte("second version about lions"), Metadata: map[string]any{"v": 2}})
	if hits := search(t, c, Query{Text: "zebras", Mode: ModeKeyword}); len(hits) != 0 {
		t.Errorf("old version still found: %v", ids(hits))
	}
	hits := search(t, c, Query{Text: "lions"})
	if len(hits) != 1 || hits[0].Metadata["v"] != 2.0 {
		t.Fatalf("new version: %+v", hits)
	}
	if s := c.Stats(); s != (Stats{Docs: 1, Chunks: 1, Classes: 1}) {
		t.Errorf("stats %+v", s)
	}
	// A replacement that moves the document to another ACL class.
	mustAdd(t, c, Document{ID: "a", Content: []byte("third about lions"), ACL: ACL{Groups: []string{"g"}}})
	if hits := search(t, c, Query{Text: "lions"}); len(hits) != 0 {
		t.Errorf("anonymous sees a group document: %v", ids(hits))
	}
	if hits := search(t, c, Query{Text: "lions", Principal: Principal{Groups: []string{"x", "g"}}}); len(hits) != 1 {
		t.Errorf("group member: %v", ids(hits))
	}
	if s := c.Stats(); s != (Stats{Docs: 1, Chunks: 1, Classes: 1}) {
		t.Errorf("stats after the move %+v", s)
	}
	if ok, err := c.Delete(ctx, "a"); !ok || err != nil {
		t.Fatalf("Delete: %v %v", ok, err)
	}
	if ok, _ := c.Delete(ctx, "a"); ok {
		t.Error("deleted twice")
	}
	if s := c.Stats(); s != (Stats{}) {
		t.Errorf("stats after delete %+v", s)
	}
	for _, m := range []Mode{ModeHybrid, ModeKeyword, ModeVector} {
		if hits := search(t, c, Query{Text: "lions", Mode: m, Principal: Principal{Groups: []string{"g"}}}); len(hits) != 0 {
			t.Errorf("%s after delete: %v", m, ids(hits))
		}
	}
}

// failEmbedder fails on texts containing "FAIL".
type failEmbedder struct{ *embed.Builtin }

func (f failEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	for _, t := range texts {
		if strings.Contains(t, "FAIL") {
			return nil, errors.New("model unavailable")
		}
	}
	return f.Builtin.Embed(ctx, texts)
}

// failStore fails its Puts while fail is set.
type failStore struct {
	Store
	fail bool
}

func (f *failStore) Put(ctx context.Context, d *StoredDoc) error {
	if f.fail {
		return errors.New("disk full")
	}
	return f.Store.Put(ctx, d)
}

func TestAddAtomic(t *testing.T) {
	ctx := context.Background()
	dir, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fs := &failStore{Store: dir}
	c := newColl(t, Options{Embedder: failEmbedder{embed.NewBuiltin(64)}, Store: fs, EmbedBatch: 2})
	mustAdd(t, c, Document{ID: "a", Content: []byte("kept text about otters")})
	before := search(t, c, Query{Text: "otters"})
	// The fifth chunk fails to embed, in the third batch.
	long := strings.Repeat("otters swim well. ", 30) + "\n\n" + strings.Repeat("FAIL ", 200)
	for _, tc := range []struct {
		d    Document
		msg  string
		fail bool
	}{
		{Document{ID: "a", Content: []byte(long)}, "model unavailable", false},
		{Document{ID: "a", Content: []byte("\x00\x01")}, "NUL byte", false},
		{Document{ID: "a", Content: []byte("other otters")}, "disk full", true},
		{Document{ID: "", Content: []byte("x")}, "document id", false},
		{Document{ID: "b", Content: []byte("x"), ACL: ACL{Groups: []string{""}}}, "acl.groups[0]", false},
		{Document{ID: "b", Content: []byte("x"), Metadata: map[string]any{"x": []int{1}}}, "metadata.x", false},
		{Document{ID: "b", Content: []byte("x"), Metadata: map[string]any{"x": math.Inf(1)}}, "not a finite number", false},
	} {
		fs.fail = tc.fail
		if _, err := c.Add(ctx, tc.d); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Add(%q): error %v, want %q", tc.d.ID, err, tc.msg)
		}
		if got := search(t, c, Query{Text: "otters"}); !reflect.DeepEqual(got, before) {
			t.Errorf("after a failed Add: %v, want %v", ids(got), ids(before))
		}
	}
	fs.fail = false
	c2 := newColl(t, Options{Store: dir})
	if got := search(t, c2, Query{Text: "otters"}); !reflect.DeepEqual(got, before) {
		t.Errorf("the store after failed Adds: %v, want %v", ids(got), ids(before))
	}
}

func TestACLAllows(t *testing.T) {
	p := Principal{KeyID: "k1", Tenant: "acme", Groups: []string{"hr", "eng"}}
	tests := []struct {
		acl  ACL
		p    Principal
		want bool
	}{
		{ACL{}, Principal{}, true},
		{ACL{Tenants: []string{"acme"}}, p, true},
		{ACL{Tenants: []string{"other"}}, p, false},
		{ACL{Tenants: []string{"acme"}}, Principal{}, false},
		{ACL{Groups: []string{"eng"}}, p, true},
		{ACL{Groups: []string{"ops"}}, p, false},
		{ACL{Keys: []string{"k2", "k1"}}, p, true},
		{ACL{Keys: []string{"k2"}}, p, false},
		{ACL{Tenants: []string{"acme"}, Groups: []string{"hr"}}, p, true},
		{ACL{Tenants: []string{"other"}, Groups: []string{"hr"}}, p, false}, // every list must hold
		{ACL{Tenants: []string{"acme"}, Groups: []string{"hr"}, Keys: []string{"k9"}}, p, false},
		{ACL{Groups: []string{""}}, Principal{Groups: []string{""}}, false},
	}
	for i, tc := range tests {
		if got := tc.acl.Allows(tc.p); got != tc.want {
			t.Errorf("%d: %+v.Allows(%+v) = %v, want %v", i, tc.acl, tc.p, got, tc.want)
		}
	}
	a, k1, _ := ACL{Groups: []string{"b", "a", "b"}}.canonical()
	_, k2, _ := ACL{Groups: []string{"a", "b"}}.canonical()
	_, k3, _ := ACL{Tenants: []string{"a", "b"}}.canonical()
	if k1 != k2 || k1 == k3 || !slices.Equal(a.Groups, []string{"a", "b"}) {
		t.Errorf("canonical: %q %q %q %v", k1, k2, k3, a)
	}
}

// The ACL property: on random corpora with random ACLs, for random
// principals, in every mode, with and without filters, after adds,
// replacements and deletes, no hit is outside the principal's ACL, and the
// hits are exactly those of a collection given only the documents the
// principal may see (same ids, texts, scores, order): what the principal
// may not see is not even counted.
func TestACLProperty(t *testing.T) {
	vocab := strings.Fields("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega red green blue")
	tenants := []string{"t1", "t2"}
	groups := []string{"g1", "g2", "g3"}
	keys := []string{"k1", "k2"}
	pick := func(r *rand.Rand, from []string) []string {
		var out []string
		for _, s := range from {
			if r.IntN(3) == 0 {
				out = append(out, s)
			}
		}
		return out
	}
	randACL := func(r *rand.Rand) ACL {
		if r.IntN(4) == 0 {
			return ACL{}
		}
		return ACL{Tenants: pick(r, tenants), Groups: pick(r, groups), Keys: pick(r, keys)}
	}
	randPrincipal := func(r *rand.Rand) Principal {
		p := Principal{Groups: pick(r, groups)}
		if r.IntN(4) > 0 {
			p.Tenant = tenants[r.IntN(2)]
		}
		if r.IntN(4) > 0 {
			p.KeyID = keys[r.IntN(2)]
		}
		return p
	}
	randText := func(r *rand.Rand, n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString([]string{" ", " ", " ", ". ", "\n\n"}[r.IntN(5)])
			}
			b.WriteString(vocab[r.IntN(len(vocab))])
		}
		return b.String()
	}
	randFilter := func(r *rand.Rand) *Filter {
		cmp := func() Filter {
			switch r.IntN(5) {
			case 0:
				return Filter{Type: Eq, Key: "lang", Value: []any{"en", "fr"}[r.IntN(2)]}
			case 1:
				return Filter{Type: []FilterType{Gt, Gte, Lt, Lte}[r.IntN(4)], Key: "n", Value: float64(r.IntN(5))}
			case 2:
				return Filter{Type: In, Key: "n", Value: []any{float64(r.IntN(5)), float64(r.IntN(5))}}
			case 3:
				return Filter{Type: Ne, Key: "flag", Value: true}
			}
			return Filter{Type: Nin, Key: "lang", Value: []any{"fr"}}
		}
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			f := cmp()
			return &f
		}
		return &Filter{Type: []FilterType{And, Or}[r.IntN(2)], Filters: []Filter{cmp(), cmp()}}
	}
	for _, graph := range []bool{false, true} {
		vopt := vindex.Options{}
		if graph {
			vopt.ExactBelow = -1 // the HNSW graph even for tiny classes
		}
		for seed := range uint64(12) {
			r := rand.New(rand.NewPCG(seed, 99))
			type op struct {
				del bool
				doc Document
			}
			var ops []op
			live := map[string]bool{}
			for i := range 40 {
				id := fmt.Sprintf("d%02d", r.IntN(30))
				if live[id] && r.IntN(6) == 0 {
					ops = append(ops, op{del: true, doc: Document{ID: id}})
					delete(live, id)
					continue
				}
				live[id] = true
				d := Document{
					ID: id, Title: fmt.Sprintf("title %d", i%5),
					Content: []byte(randText(r, 1+r.IntN(60))), ACL: randACL(r),
					Metadata: map[string]any{"n": r.IntN(5), "lang": []string{"en", "fr"}[r.IntN(2)]},
				}
				if r.IntN(3) == 0 {
					d.Metadata["flag"] = r.IntN(2) == 0
				}
				ops = append(ops, op{doc: d})
			}
			copt := ChunkOptions{MaxTokens: 16, OverlapTokens: 4}
			all := newColl(t, Options{Chunking: copt, Vector: vopt})
			for _, o := range ops {
				if o.del {
					all.Delete(context.Background(), o.doc.ID)
				} else {
					mustAdd(t, all, o.doc)
				}
			}
			for range 6 {
				p := randPrincipal(r)
				// The collection of what p may see, with the same history.
				only := newColl(t, Options{Chunking: copt, Vector: vopt})
				acl := map[string]ACL{}
				for _, o := range ops {
					if !o.del && o.doc.ACL.Allows(p) {
						mustAdd(t, only, o.doc)
						acl[o.doc.ID] = o.doc.ACL
					} else {
						only.Delete(context.Background(), o.doc.ID)
						delete(acl, o.doc.ID)
					}
				}
				for range 8 {
					q := Query{Text: randText(r, 1+r.IntN(3)), Principal: p, Filter: randFilter(r), TopK: 1 + r.IntN(12)}
					if r.IntN(4) == 0 {
						q.MinScore = r.Float64() * 0.5
					}
					for _, m := range []Mode{ModeHybrid, ModeVector, ModeKeyword} {
						q.Mode = m
						got := search(t, all, q)
						want := search(t, only, q)
						for _, h := range got {
							a, ok := acl[h.DocID]
							if !ok || !a.Allows(p) {
								t.Fatalf("seed %d: %+v sees %s, outside its ACL", seed, p, h.ChunkID)
							}
							if q.Filter != nil && !q.Filter.Match(h.Metadata) {
								t.Fatalf("seed %d: hit %s does not match the filter", seed, h.ChunkID)
							}
						}
						if !reflect.DeepEqual(got, want) {
							t.Fatalf("graph %v seed %d, %s, principal %+v, query %q filter %+v:\n got %v\nwant %v",
								graph, seed, m, p, q.Text, q.Filter, hitsDump(got), hitsDump(want))
						}
					}
				}
			}
		}
	}
}

func hitsDump(h []Hit) string {
	var b strings.Builder
	for _, x := range h {
		fmt.Fprintf(&b, "%s:%.6f ", x.ChunkID, x.Score)
	}
	return b.String()
}

// TestConcurrent runs searches in every mode while documents are added,
// replaced and deleted (run it with -race); a search sees each document
// whole, old or new.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	c := newColl(t, Options{Chunking: ChunkOptions{MaxTokens: 16}})
	doc := func(i, v int) Document {
		return Document{ID: fmt.Sprintf("d%d", i), Content: []byte(fmt.Sprintf("version%d common words here. more words for doc %d. %s", v, i, strings.Repeat("filler text. ", v%5)))}
	}
	for i := range 20 {
		mustAdd(t, c, doc(i, 0))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for g := range 3 {
		wg.Go(func() {
			modes := []Mode{ModeHybrid, ModeVector, ModeKeyword}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				hits, err := c.Search(ctx, Query{Text: "common words version3", Mode: modes[(i+g)%3], TopK: 50})
				if err != nil {
					errs <- err
					return
				}
				// Chunks of one document in one search are of one version.
				ver := map[string]string{}
				for _, h := range hits {
					v := ""
					if strings.HasPrefix(h.Text, "version") {
						v = strings.Fields(h.Text)[0]
					}
					if v == "" {
						continue
					}
					if o, ok := ver[h.DocID]; ok && o != v {
						errs <- fmt.Errorf("document %s seen as %s and %s", h.DocID, o, v)
						return
					}
					ver[h.DocID] = v
				}
			}
		})
	}
	for v := 1; v < 30; v++ {
		i := v % 20
		if v%7 == 0 {
			c.Delete(ctx, fmt.Sprintf("d%d", i))
			continue
		}
		mustAdd(t, c, doc(i, v))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestFilteredKeywordExact checks that a filtered keyword search, whichever
// way it meets the filter (testing every posting, or walking the runs of
// passing chunks when they are few), ranks and scores as the unfiltered
// search does with the chunks outside the filter taken out: in keyword
// mode a filter changes no statistic.
func TestFilteredKeywordExact(t *testing.T) {
	vocab := strings.Fields("alpha beta gamma delta epsilon zeta eta theta")
	r := rand.New(rand.NewPCG(3, 4))
	c := newColl(t, Options{Chunking: ChunkOptions{MaxTokens: 40, OverlapTokens: 4}})
	for i := range 60 {
		var b strings.Builder
		for p := range 3 {
			if p > 0 {
				b.WriteString("\n\n")
			}
			for w := range 12 {
				if w > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(vocab[r.IntN(len(vocab))])
			}
		}
		meta := map[string]any{"n": i % 25, "s": fmt.Sprint(i % 3)}
		if i%7 == 0 {
			meta["rare"] = true
		}
		mustAdd(t, c, Document{ID: fmt.Sprintf("d%02d", i), Content: []byte(b.String()), Metadata: meta})
	}
	if n := c.Stats().Chunks; n > MaxTopK {
		t.Fatalf("%d chunks: more than MaxTopK, the unfiltered search cannot list them all", n)
	}
	filters := []*Filter{
		{Type: Eq, Key: "n", Value: 3.0},              // 2 of 60 documents: runs
		{Type: Lt, Key: "n", Value: 2.0},              // 5 of 60
		{Type: Eq, Key: "s", Value: "1"},              // a third: every posting
		{Type: Ne, Key: "rare", Value: true},          // most
		{Type: In, Key: "n", Value: []any{1.0, 24.0}}, // generic path
		{Type: And, Filters: []Filter{{Type: Gte, Key: "n", Value: 20.0}, {Type: Eq, Key: "s", Value: "2"}}},
	}
	for _, f := range filters {
		for _, text := range []string{"alpha", "beta gamma", "theta eta alpha zeta"} {
			all := search(t, c, Query{Text: text, Mode: ModeKeyword, TopK: MaxTopK})
			var want []Hit
			for _, h := range all {
				if f.Match(h.Metadata) && len(want) < 7 {
					want = append(want, h)
				}
			}
			got := search(t, c, Query{Text: text, Mode: ModeKeyword, TopK: 7, Filter: f})
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("filter %+v, %q:\n got %v\nwant %v", f, text, hitsDump(got), hitsDump(want))
			}
		}
	}
}
