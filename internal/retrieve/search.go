package retrieve

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"

	"switchyard/internal/vindex"
)

// scratch is one search's working memory, pooled.
type scratch struct {
	c       *Collection
	filter  *Filter
	allowFn func(uint64) bool // sc.allow, bound once
	bits    []uint64          // the filter's bitmap by attribute set
	levels  [][]uint64        // bitmaps by filter depth, for filterBits
	acc     []float64         // BM25 sums by slot
	touched []uint32
	visible []*class
	spans   []run // chunks passing the filter, by visible class (spanAt)
	spanAt  []int // visible class i's spans are spans[spanAt[i]:spanAt[i+1]]; empty until runs
	ids     []uint64
	vhits   []vindex.Hit
	kw, vec []scored
	fused   map[uint32]float64
	out     []scored
}

// run is a run of consecutive chunk slots [first, end) of one class that
// pass the filter.
type run struct{ first, end uint32 }

// scored is a chunk slot with its score in one ranking.
type scored struct {
	slot  uint32
	score float64
}

// allow admits a vector hit: its chunk is visible (a slot without a chunk
// is an Add not yet complete or a document being deleted) and passes the
// filter.
func (sc *scratch) allow(id uint64) bool {
	chunks := sc.c.chunks
	if id >= uint64(len(chunks)) {
		return false
	}
	ch := chunks[id]
	return ch != nil && (sc.filter == nil || sc.match(uint32(id)))
}

// match reports whether the chunk in slot passes the filter (sc.bits is
// the filter's result by attribute set).
func (sc *scratch) match(slot uint32) bool {
	a := sc.c.attrOf[slot]
	return sc.bits[a>>6]&(1<<(a&63)) != 0
}

// runs returns the runs of chunks of visible class ci that pass the
// filter (sc.bits). The first call of a search finds them in every visible
// class, from the classes' documents (a document with one attribute set is
// tested once); a keyword search that does not need them never pays that
// walk. The caller holds mu.
func (c *Collection) runs(sc *scratch, ci int) []run {
	if len(sc.spanAt) == 0 {
		c.passing(sc)
	}
	return sc.spans[sc.spanAt[ci]:sc.spanAt[ci+1]]
}

func (c *Collection) passing(sc *scratch) {
	sc.spans = sc.spans[:0]
	sc.spanAt = append(sc.spanAt[:0], 0)
	for _, cl := range sc.visible {
		start := len(sc.spans)
		add := func(first, end uint32) {
			if n := len(sc.spans); n > start && sc.spans[n-1].end == first {
				sc.spans[n-1].end = end
				return
			}
			sc.spans = append(sc.spans, run{first, end})
		}
		for _, d := range cl.docs {
			if len(d.attrs) == 1 {
				if sc.match(d.first) {
					add(d.first, d.first+d.n)
				}
				continue
			}
			for s := d.first; s < d.first+d.n; s++ {
				if sc.match(s) {
					add(s, s+1)
				}
			}
		}
		sc.spanAt = append(sc.spanAt, len(sc.spans))
	}
}

// filterBits evaluates f over every attribute set at once, into a bitmap
// of the sets it matches: a comparison walks its key's index, a compound
// combines its children's bitmaps. The caller holds mu.
func (c *Collection) filterBits(sc *scratch, f *Filter, depth int) []uint64 {
	n := (len(c.attrSets) + 63) / 64
	for len(sc.levels) <= depth {
		sc.levels = append(sc.levels, nil)
	}
	b := grow(sc.levels[depth], n)
	sc.levels[depth] = b
	switch f.Type {
	case And:
		for i := range b {
			b[i] = ^uint64(0)
		}
		for i := range f.Filters {
			cb := c.filterBits(sc, &f.Filters[i], depth+1)
			for j := range b {
				b[j] &= cb[j]
			}
		}
		return b
	case Or:
		clear(b)
		for i := range f.Filters {
			cb := c.filterBits(sc, &f.Filters[i], depth+1)
			for j := range b {
				b[j] |= cb[j]
			}
		}
		return b
	}
	t := f.Type
	neg := false
	switch t {
	case Ne:
		t, neg = Eq, true
	case Nin:
		t, neg = In, true
	}
	clear(b)
	vals := c.attrKeys[f.Key]
	// Fast paths for a number or a string compared by Eq, Gt, Gte, Lt or
	// Lte, the common filters: one type assertion a value instead of
	// compareValue's two type switches (a third of a 0.5% search at 100k
	// chunks went there, one attribute set a document).
	if y, ok := f.Value.(float64); ok && t != In {
		for _, av := range vals {
			if x, ok := av.v.(float64); ok && holds(t, x, y) {
				b[av.set>>6] |= 1 << (av.set & 63)
			}
		}
	} else if y, ok := f.Value.(string); ok && t != In {
		for _, av := range vals {
			if x, ok := av.v.(string); ok && holds(t, x, y) {
				b[av.set>>6] |= 1 << (av.set & 63)
			}
		}
	} else {
		for _, av := range vals {
			if f.compareValue(t, av.v) {
				b[av.set>>6] |= 1 << (av.set & 63)
			}
		}
	}
	if neg {
		// Sets beyond len(attrSets) in the last word are never used.
		for j := range b {
			b[j] = ^b[j]
		}
	}
	return b
}

// holds is comparison t (Eq, Gt, Gte, Lt or Lte) of x with y, as
// compareValue makes it for two numbers or two strings.
func holds[T float64 | string](t FilterType, x, y T) bool {
	switch t {
	case Eq:
		return x == y
	case Gt:
		return x > y
	case Gte:
		return x >= y
	case Lt:
		return x < y
	case Lte:
		return x <= y
	}
	return false
}

// getScratch returns an idle scratch or a new one.
func (c *Collection) getScratch() *scratch {
	select {
	case sc := <-c.scratches:
		return sc
	default:
	}
	sc := &scratch{c: c}
	sc.allowFn = sc.allow
	return sc
}

func (c *Collection) putScratch(sc *scratch) {
	sc.filter = nil
	select {
	case c.scratches <- sc:
	default:
	}
}

// Search returns the best chunks for q that q.Principal may see, best
// first. Documents whose ACL excludes the principal are not scored, not
// counted in any statistic and never returned: the result is the one a
// collection holding only the principal's documents would give.
func (c *Collection) Search(ctx context.Context, q Query) ([]Hit, error) {
	mode := q.Mode
	if mode == "" {
		mode = ModeHybrid
	}
	switch mode {
	case ModeHybrid, ModeVector, ModeKeyword:
	default:
		return nil, fmt.Errorf("retrieve: unknown search mode %q (want hybrid, vector or keyword)", q.Mode)
	}
	topK := q.TopK
	if topK == 0 {
		topK = DefaultTopK
	}
	if topK < 0 || topK > MaxTopK {
		return nil, fmt.Errorf("retrieve: top_k %d: must be 1 to %d", q.TopK, MaxTopK)
	}
	if math.IsNaN(q.MinScore) {
		return nil, fmt.Errorf("retrieve: min_score is NaN")
	}
	if q.Filter != nil {
		if err := q.Filter.Validate(); err != nil {
			return nil, err
		}
	}
	var qvec []float32
	if mode != ModeKeyword {
		v := q.Vector
		if v == nil {
			if q.Text == "" {
				return nil, fmt.Errorf("retrieve: the query has no text and no vector")
			}
			vs, err := c.emb.Embed(ctx, []string{q.Text})
			if err != nil {
				return nil, fmt.Errorf("retrieve: embedding the query with %q: %w", c.emb.Name(), err)
			}
			if len(vs) != 1 {
				return nil, fmt.Errorf("retrieve: embedder %q returned %d vectors for 1 text", c.emb.Name(), len(vs))
			}
			v = vs[0]
		}
		qvec = make([]float32, c.emb.Dim())
		if err := normalizeInto(qvec, v); err != nil {
			return nil, fmt.Errorf("retrieve: query vector: %w", err)
		}
	}
	var terms []string
	if mode != ModeVector {
		terms = queryTerms(q.Text)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	sc := c.getScratch()
	defer c.putScratch(sc)
	c.mu.RLock()
	defer c.mu.RUnlock()
	sc.filter = q.Filter
	if q.Filter != nil {
		sc.bits = c.filterBits(sc, q.Filter, 0)
	}
	sc.visible = sc.visible[:0]
	for _, cl := range c.classes {
		if cl.chunks > 0 && cl.acl.Allows(q.Principal) {
			sc.visible = append(sc.visible, cl)
		}
	}
	sc.spanAt = sc.spanAt[:0]
	depth := topK
	if mode == ModeHybrid {
		depth = max(2*topK, hybridDepth)
	}
	var ranked []scored
	switch mode {
	case ModeKeyword:
		ranked = c.keyword(sc, terms, depth)
	case ModeVector:
		ranked = c.vector(sc, qvec, depth)
	default:
		ranked = c.fuse(sc, c.keyword(sc, terms, depth), c.vector(sc, qvec, depth), topK)
	}
	hits := make([]Hit, 0, min(topK, len(ranked)))
	for _, r := range ranked {
		if len(hits) == topK {
			break
		}
		if r.score < q.MinScore {
			break // ranked is best first
		}
		ch := c.chunks[r.slot]
		d := ch.doc
		url := ch.url
		if url == "" {
			url = d.url
		}
		hits = append(hits, Hit{
			ChunkID: d.id + "#" + strconv.Itoa(int(ch.pos)), DocID: d.id, Pos: int(ch.pos),
			Text: ch.text, Score: r.score, Heading: ch.heading, Title: d.title, URL: url,
			Start: ch.start, End: ch.end, Record: ch.record, Metadata: c.attrSets[ch.attr],
		})
	}
	return hits, nil
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}

// better orders ranked chunks: higher score, then document id, then
// position; a total order on chunks, which no invisible document can
// change.
func (c *Collection) better(a, b scored) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	x, y := c.chunks[a.slot], c.chunks[b.slot]
	if x.doc.id != y.doc.id {
		return x.doc.id < y.doc.id
	}
	return x.pos < y.pos
}

// keyword ranks by BM25 over the visible classes. N (the number of
// chunks), the average chunk length and each term's document frequency
// are sums over the visible classes only, so a chunk the principal may not
// see changes no score.
func (c *Collection) keyword(sc *scratch, terms []string, depth int) []scored {
	sc.kw = sc.kw[:0]
	if len(terms) == 0 {
		return sc.kw
	}
	var n, total int64
	for _, cl := range sc.visible {
		n += int64(cl.chunks)
		total += cl.length
	}
	if n == 0 {
		return sc.kw
	}
	avg := float64(total) / float64(n)
	if avg == 0 {
		avg = 1
	}
	sc.acc = grow(sc.acc, len(c.chunks))
	sc.touched = sc.touched[:0]
	lens := c.lens
	for _, t := range terms {
		var df int64
		for _, cl := range sc.visible {
			df += int64(len(cl.post[t]))
		}
		if df == 0 {
			continue
		}
		idf := math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
		for ci, cl := range sc.visible {
			post := cl.post[t]
			if sc.filter == nil {
				for _, p := range post {
					sc.bm25(p, idf, avg, lens)
				}
				continue
			}
			// A posting list longer than the class's documents pays for
			// finding the runs, when they are fewer than an eighth of it.
			if len(post) <= len(cl.docs) || 8*len(c.runs(sc, ci)) >= len(post) {
				for _, p := range post {
					if sc.match(p.slot) {
						sc.bm25(p, idf, avg, lens)
					}
				}
				continue
			}
			// Fewer runs of passing chunks than postings: walk the runs,
			// seeking each one's first posting by binary search, rather
			// than testing every posting against the filter.
			i := 0
			for _, sp := range c.runs(sc, ci) {
				if post[i].slot < sp.first {
					i += sort.Search(len(post)-i, func(j int) bool { return post[i+j].slot >= sp.first })
				}
				for ; i < len(post) && post[i].slot < sp.end; i++ {
					sc.bm25(post[i], idf, avg, lens)
				}
				if i == len(post) {
					break
				}
			}
		}
	}
	for _, s := range sc.touched {
		sc.kw = c.push(sc.kw, scored{s, sc.acc[s]}, depth)
		sc.acc[s] = 0
	}
	return c.sortHeap(sc.kw)
}

// bm25 adds to the chunk of p its BM25 weight for a term of idf, in
// sc.acc.
func (sc *scratch) bm25(p posting, idf, avg float64, lens []int32) {
	tf := float64(p.tf)
	norm := BM25K1 * (1 - BM25B + BM25B*float64(lens[p.slot])/avg)
	if sc.acc[p.slot] == 0 {
		sc.touched = append(sc.touched, p.slot)
	}
	sc.acc[p.slot] += idf * tf * (BM25K1 + 1) / (tf + norm)
}

// vector ranks by cosine similarity over the visible classes' indexes,
// each asked for its depth best admitted chunks, merged.
func (c *Collection) vector(sc *scratch, q []float32, depth int) []scored {
	sc.vec = sc.vec[:0]
	zero := true
	for _, x := range q {
		if x != 0 {
			zero = false
			break
		}
	}
	if zero {
		return sc.vec // a text without words: no direction to rank by
	}
	for ci, cl := range sc.visible {
		if sc.filter == nil {
			sc.vhits = cl.vec.SearchFunc(q, depth, sc.allowFn, sc.vhits)
		} else {
			sc.ids = sc.ids[:0]
			for _, sp := range c.runs(sc, ci) {
				for s := sp.first; s < sp.end; s++ {
					sc.ids = append(sc.ids, uint64(s))
				}
			}
			switch {
			case len(sc.ids) == 0:
				continue
			case len(sc.ids) <= exactFiltered || 3*len(sc.ids) <= cl.chunks:
				sc.vhits = cl.vec.SearchIDs(q, sc.ids, depth, sc.vhits)
			default:
				sc.vhits = cl.vec.SearchFunc(q, depth, sc.allowFn, sc.vhits)
			}
		}
		for _, h := range sc.vhits {
			sc.vec = c.push(sc.vec, scored{uint32(h.ID), float64(h.Score)}, depth)
		}
	}
	return c.sortHeap(sc.vec)
}

// fuse merges two rankings by reciprocal rank fusion, scaled so that first
// in both is 1.
func (c *Collection) fuse(sc *scratch, kw, vec []scored, topK int) []scored {
	if sc.fused == nil {
		sc.fused = map[uint32]float64{}
	}
	clear(sc.fused)
	const scale = (RRFK + 1) / 2.0
	for _, list := range [2][]scored{kw, vec} {
		for r, x := range list {
			sc.fused[x.slot] += scale / float64(RRFK+r+1)
		}
	}
	sc.out = sc.out[:0]
	for s, v := range sc.fused {
		sc.out = c.push(sc.out, scored{s, v}, topK)
	}
	return c.sortHeap(sc.out)
}

// push adds x to h, a heap of at most n entries whose root is the worst,
// keeping the n best.
func (c *Collection) push(h []scored, x scored, n int) []scored {
	if len(h) < n {
		h = append(h, x)
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if !c.better(h[p], h[i]) {
				break
			}
			h[p], h[i] = h[i], h[p]
			i = p
		}
		return h
	}
	if n == 0 || !c.better(x, h[0]) {
		return h
	}
	h[0] = x
	c.down(h, 0)
	return h
}

func (c *Collection) down(h []scored, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		w := l
		if r := l + 1; r < len(h) && c.better(h[l], h[r]) {
			w = r
		}
		if !c.better(h[i], h[w]) {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

// sortHeap sorts a worst-at-root heap in place, best first.
func (c *Collection) sortHeap(h []scored) []scored {
	for n := len(h) - 1; n > 0; n-- {
		h[0], h[n] = h[n], h[0]
		c.down(h[:n], 0)
	}
	return h
}
