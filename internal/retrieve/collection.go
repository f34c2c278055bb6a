package retrieve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"switchyard/internal/embed"
	"switchyard/internal/vindex"
)

// Embedder turns texts into vectors of Dim() float32s; Collection calls it
// in batches. embed.Builtin is one; a model pool reached through the
// gateway's dispatcher will be another. Vectors need not be normalized:
// the collection L2-normalizes its copies.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dim() int
	Name() string
}

var _ Embedder = (*embed.Builtin)(nil)

// Document is one input document: a file of the Files API, a path given to
// ingest, or a JSON Lines file of records.
type Document struct {
	// ID identifies the document in the collection; adding an ID again
	// replaces the document. Non-empty UTF-8, at most 1024 bytes.
	ID    string
	Title string
	URL   string
	// Format of Content; "" is Text. FormatOf guesses it from a name.
	Format  Format
	Content []byte
	// Metadata are the attributes filters see: keys up to 256 bytes,
	// values strings (up to 4 KiB), numbers (any Go integer or float,
	// kept as float64) or booleans; at most 64 keys.
	Metadata map[string]any
	// ACL says who may see the document; the zero ACL is everyone.
	ACL ACL
	// Version is the caller's opaque version of the document (a content
	// hash, an ETag), at most 1024 bytes of UTF-8: stored, loaded and
	// returned by Doc, so that a caller can skip re-adding a document that
	// has not changed. The collection does not interpret it.
	Version string
}

// DocInfo describes a document of a collection (Doc, Docs).
type DocInfo struct {
	ID, Title, URL string
	Format         Format
	Version        string
	// Metadata are the document's attributes (numbers as float64), without
	// those of its JSON Lines records. Shared: do not modify.
	Metadata map[string]any
	// ACL is the document's, canonical: each list sorted, without repeats.
	// Shared: do not modify.
	ACL ACL
	// Chunks is the number of its chunks.
	Chunks int
	// Seq is its sequence number (StoredDoc.Seq).
	Seq uint64
}

// Mode is how Search ranks.
type Mode string

// The modes of Search.
const (
	// ModeHybrid fuses the keyword and vector rankings by reciprocal rank
	// fusion; it is the default.
	ModeHybrid Mode = "hybrid"
	// ModeVector ranks by cosine similarity to the query's embedding.
	ModeVector Mode = "vector"
	// ModeKeyword ranks by BM25.
	ModeKeyword Mode = "keyword"
)

// Ranking constants.
const (
	// RRFK is the k of reciprocal rank fusion: a chunk at rank r (from 1)
	// of a list gets 1/(RRFK+r) from it. 60 is the value of Cormack,
	// Clarke and Büttcher's paper, and of most engines that fuse this way;
	// it keeps one list's top ranks from swamping the other.
	RRFK = 60
	// BM25K1 and BM25B are the usual BM25 saturation and length
	// normalization.
	BM25K1 = 1.2
	BM25B  = 0.75
	// DefaultTopK and MaxTopK bound Query.TopK.
	DefaultTopK = 10
	MaxTopK     = 200
	// hybridDepth is how many candidates each ranking gives the fusion at
	// least (2×TopK when that is more).
	hybridDepth = 50
	// exactFiltered: a filtered vector search in a class where at most this
	// many chunks, or at most a third of them, pass the filter scores them
	// all (vindex.SearchIDs, cost linear in them) instead of walking the
	// graph, whose beam widens as the share passing falls: measured at
	// 100k chunks, 512-d, a 10% filter took 8 ms p50 on the graph.
	exactFiltered = 4096
	// embedBatch is the default number of texts per Embedder call.
	embedBatch = 64
)

// Query is one search.
type Query struct {
	// Text is the query. It is embedded for ModeVector and ModeHybrid
	// unless Vector is given.
	Text string
	// Vector, if not nil, is the query's embedding (Dim() components),
	// used instead of embedding Text.
	Vector []float32
	// Mode is ModeHybrid when empty.
	Mode Mode
	// TopK is the most hits returned: DefaultTopK when 0, at most MaxTopK.
	TopK int
	// MinScore drops hits scoring below it (see Hit.Score for the scale).
	MinScore float64
	// Filter, if not nil, restricts hits to chunks whose attributes match.
	Filter *Filter
	// Principal is who searches: only documents whose ACL allows it are
	// scored, counted or returned.
	Principal Principal
}

// Hit is one search result.
type Hit struct {
	// ChunkID is "<doc id>#<pos>".
	ChunkID string
	DocID   string
	Pos     int
	Text    string
	// Score is the BM25 score in ModeKeyword, the cosine similarity in
	// ModeVector, and in ModeHybrid the RRF sum scaled by (RRFK+1)/2, so
	// that a chunk first in both rankings scores 1 and first in one only
	// 0.5.
	Score      float64
	Heading    []string
	Title, URL string
	// Start and End are the chunk's byte offsets in its document's content.
	Start, End int
	// Record is the JSON Lines record's id, if any.
	Record string
	// Metadata are the chunk's attributes: the document's metadata with a
	// JSON Lines record's over it. Shared: do not modify.
	Metadata map[string]any
}

// Options configures a Collection.
type Options struct {
	// Embedder is required.
	Embedder Embedder
	// Store, if not nil, keeps the documents durably; New loads them. A
	// store that is also a ChangeFeed (pgstore) is shared by replicas:
	// see Sync and Follow.
	Store Store
	// Chunking bounds chunks.
	Chunking ChunkOptions
	// Vector tunes each ACL class's vector index.
	Vector vindex.Options
	// EmbedBatch is the number of texts per Embedder call; default 64.
	EmbedBatch int
}

// Collection is a searchable set of documents: chunks, a BM25 index and a
// vector index, partitioned by ACL class (see the package doc). All methods
// are safe for concurrent use; searches run in parallel with each other and
// with the slow parts of Add (chunking, embedding, storing); writers are
// serialized.
type Collection struct {
	emb   Embedder
	store Store
	copt  ChunkOptions
	vopt  vindex.Options
	batch int

	wmu  sync.Mutex // serializes Add, Delete and the applying of changes
	next uint32     // next chunk slot, under wmu
	seq  uint64     // greatest document sequence number applied, under wmu
	// gone holds, for a store that is a ChangeFeed, the sequence numbers
	// of this replica's deletions the change feed has not yet delivered
	// (under wmu): a Sync that read an older version of the document
	// before the deletion must not apply it (see applyChange).
	gone map[string]uint64

	syncMu sync.Mutex // serializes Sync
	cursor uint64     // the change feed's position, under syncMu

	mu       sync.RWMutex // guards what follows; Search holds it for reading
	docs     map[string]*docRec
	classes  map[string]*class
	chunks   []*chunkRec      // by slot; nil when deleted or not yet visible
	lens     []int32          // by slot, the chunk's length (dense, for BM25's scan)
	attrOf   []uint32         // by slot, the chunk's attribute set
	attrSets []map[string]any // by attribute set number; nil when deleted
	// attrKeys indexes attribute sets by key, each list by increasing set
	// number, so that a filter is evaluated a key at a time over all sets
	// (filterBits) rather than a set at a time through map lookups.
	attrKeys map[string][]attrVal

	// scratches holds idle search scratch. Not a sync.Pool: a garbage
	// collection would empty it, and a scratch holds a score array of one
	// float64 per slot (1.6 MB at 200k chunks) worth keeping.
	scratches chan *scratch
}

type docRec struct {
	id, title, url string
	format         Format
	version        string
	meta           map[string]any
	acl            ACL
	seq            uint64
	cl             *class
	first, n       uint32   // the document's chunks are slots [first, first+n)
	attrs          []uint32 // its attribute sets
}

type chunkRec struct {
	doc     *docRec
	pos     int32
	length  int32 // number of terms, BM25's document length
	attr    uint32
	start   int
	end     int
	heading []string
	text    string
	record  string
	url     string
}

// class is the partition of the documents that share one ACL: its own
// postings and its own vector index, so that a search touches only the
// classes its principal may see.
type class struct {
	acl    ACL
	key    string
	vec    *vindex.Index
	post   map[string][]posting // term -> postings by increasing slot
	docs   []*docRec            // by increasing first slot
	chunks int                  // visible chunks
	length int64                // their total length
}

type attrVal struct {
	set uint32
	v   any
}

type posting struct {
	slot uint32
	tf   uint32
}

// New returns a collection, loading the documents of o.Store if it has one.
func New(ctx context.Context, o Options) (*Collection, error) {
	if o.Embedder == nil {
		return nil, errors.New("retrieve: Options.Embedder is required")
	}
	if o.Embedder.Dim() <= 0 {
		return nil, fmt.Errorf("retrieve: embedder %q has dimension %d", o.Embedder.Name(), o.Embedder.Dim())
	}
	copt, err := o.Chunking.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Collection{
		emb:      o.Embedder,
		store:    o.Store,
		copt:     copt,
		vopt:     o.Vector,
		batch:    o.EmbedBatch,
		docs:     map[string]*docRec{},
		classes:  map[string]*class{},
		attrKeys: map[string][]attrVal{},
		gone:     map[string]uint64{},
	}
	if c.batch <= 0 {
		c.batch = embedBatch
	}
	c.scratches = make(chan *scratch, 2*runtime.GOMAXPROCS(0))
	if c.store != nil {
		if err := c.load(ctx); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// load applies the stored documents in the order they were added: those
// of a ChangeFeed as its Changes yield them, from the start, which also
// sets the feed's cursor.
func (c *Collection) load(ctx context.Context) error {
	if feed, ok := c.store.(ChangeFeed); ok {
		c.syncMu.Lock()
		defer c.syncMu.Unlock()
		if _, err := c.syncFull(ctx, feed); err != nil {
			return fmt.Errorf("retrieve: loading the store: %w", err)
		}
		return nil
	}
	var all []*StoredDoc
	err := c.store.Scan(ctx, func(d *StoredDoc) error {
		if err := c.checkEmbedder(d); err != nil {
			return err
		}
		all = append(all, d)
		return nil
	})
	if err != nil {
		return fmt.Errorf("retrieve: loading the store: %w", err)
	}
	slices.SortFunc(all, func(a, b *StoredDoc) int { return cmpUint(a.Seq, b.Seq) })
	for _, d := range all {
		p, err := c.prepareStored(d)
		if err != nil {
			return fmt.Errorf("retrieve: loading document %q: %w", d.ID, err)
		}
		c.apply(p)
		c.seq = max(c.seq, d.Seq)
	}
	return nil
}

// checkEmbedder refuses a document whose vectors another embedder made.
func (c *Collection) checkEmbedder(d *StoredDoc) error {
	if d.Embedder != c.emb.Name() || d.Dim != c.emb.Dim() {
		return fmt.Errorf("document %q was embedded by %q (%d-d), the collection's embedder is %q (%d-d)",
			d.ID, d.Embedder, d.Dim, c.emb.Name(), c.emb.Dim())
	}
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// prepared is a document ready to be applied: everything computed outside
// the locks.
type prepared struct {
	sd     *StoredDoc
	acl    ACL
	key    string
	meta   map[string]any
	attrs  []map[string]any // per chunk, the merged attributes (shared when equal)
	terms  [][]termTF
	length []int
}

// Add chunks, embeds and stores d, then makes it visible, replacing the
// document with the same ID; it returns the number of chunks. It is
// atomic: when it fails, searches see what they saw before and the store
// holds what it held. A search running while Add completes sees the old
// document or the new one, never a mix.
func (c *Collection) Add(ctx context.Context, d Document) (int, error) {
	if err := checkID(d.ID); err != nil {
		return 0, err
	}
	if err := checkVersion(d.Version); err != nil {
		return 0, fmt.Errorf("retrieve: document %q: %w", d.ID, err)
	}
	acl, _, err := d.ACL.canonical()
	if err != nil {
		return 0, fmt.Errorf("retrieve: document %q: %w", d.ID, err)
	}
	meta, err := normalizeMetadata(d.Metadata)
	if err != nil {
		return 0, fmt.Errorf("retrieve: document %q: %w", d.ID, err)
	}
	chunks, err := Split(d.Content, d.Format, c.copt)
	if err != nil {
		return 0, fmt.Errorf("document %q: %w", d.ID, err)
	}
	format := d.Format
	if format == "" {
		format = Text
	}
	sd := &StoredDoc{
		ID: d.ID, Title: d.Title, URL: d.URL, Format: format, Metadata: meta, ACL: acl,
		Version: d.Version, Embedder: c.emb.Name(), Dim: c.emb.Dim(), Chunks: chunks,
	}
	texts := make([]string, len(chunks))
	for i := range chunks {
		texts[i] = indexText(d.Title, chunks[i].Heading, chunks[i].Text)
	}
	if sd.Vectors, err = c.embed(ctx, texts); err != nil {
		return 0, fmt.Errorf("retrieve: document %q: %w", d.ID, err)
	}
	p, err := c.prepareStored(sd)
	if err != nil {
		return 0, fmt.Errorf("retrieve: document %q: %w", d.ID, err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	sd.Seq = c.seq + 1
	if c.store != nil {
		// The store may number the document itself (Store.Put).
		if err := c.store.Put(ctx, sd); err != nil {
			return 0, fmt.Errorf("retrieve: storing document %q: %w", d.ID, err)
		}
	}
	c.seq = max(c.seq, sd.Seq)
	c.apply(p)
	return len(chunks), nil
}

// embed returns normalized copies of the texts' vectors, Embedder calls
// made in batches.
func (c *Collection) embed(ctx context.Context, texts []string) ([][]float32, error) {
	dim := c.emb.Dim()
	block := make([]float32, len(texts)*dim)
	out := make([][]float32, len(texts))
	for i := 0; i < len(texts); i += c.batch {
		j := min(i+c.batch, len(texts))
		vs, err := c.emb.Embed(ctx, texts[i:j])
		if err != nil {
			return nil, fmt.Errorf("embedding chunks %d-%d with %q: %w", i, j-1, c.emb.Name(), err)
		}
		if len(vs) != j-i {
			return nil, fmt.Errorf("embedder %q returned %d vectors for %d texts", c.emb.Name(), len(vs), j-i)
		}
		for k, v := range vs {
			dst := block[(i+k)*dim : (i+k+1)*dim : (i+k+1)*dim]
			if err := normalizeInto(dst, v); err != nil {
				return nil, fmt.Errorf("embedder %q, chunk %d: %w", c.emb.Name(), i+k, err)
			}
			out[i+k] = dst
		}
	}
	return out, nil
}

// normalizeInto writes v/|v| into dst; a zero vector stays zero.
func normalizeInto(dst, v []float32) error {
	if len(v) != len(dst) {
		return fmt.Errorf("vector has %d components, want %d", len(v), len(dst))
	}
	var ss float64
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("vector component %d is %v", i, x)
		}
		ss += float64(x) * float64(x)
	}
	inv := float32(0)
	if ss > 0 {
		inv = float32(1 / math.Sqrt(ss))
	}
	for i, x := range v {
		dst[i] = x * inv
	}
	return nil
}

// indexText is what the keyword index and the embedder see of a chunk: the
// document title (unless it is the first heading), the heading path, then
// the text, one a line.
func indexText(title string, heading []string, text string) string {
	var b strings.Builder
	if title != "" && (len(heading) == 0 || heading[0] != title) {
		b.WriteString(title)
		b.WriteByte('\n')
	}
	for _, h := range heading {
		b.WriteString(h)
		b.WriteByte('\n')
	}
	b.WriteString(text)
	return b.String()
}

// prepareStored checks a stored document and computes its terms and
// attributes.
func (c *Collection) prepareStored(sd *StoredDoc) (*prepared, error) {
	if err := checkID(sd.ID); err != nil {
		return nil, err
	}
	if err := checkVersion(sd.Version); err != nil {
		return nil, err
	}
	if len(sd.Chunks) == 0 || len(sd.Vectors) != len(sd.Chunks) {
		return nil, fmt.Errorf("%d chunks and %d vectors", len(sd.Chunks), len(sd.Vectors))
	}
	acl, key, err := sd.ACL.canonical()
	if err != nil {
		return nil, err
	}
	meta, err := normalizeMetadata(sd.Metadata)
	if err != nil {
		return nil, err
	}
	p := &prepared{sd: sd, acl: acl, key: key, meta: meta}
	p.attrs = make([]map[string]any, len(sd.Chunks))
	p.terms = make([][]termTF, len(sd.Chunks))
	p.length = make([]int, len(sd.Chunks))
	for i := range sd.Chunks {
		ch := &sd.Chunks[i]
		if ch.Pos != i {
			return nil, fmt.Errorf("chunk %d has position %d", i, ch.Pos)
		}
		if len(sd.Vectors[i]) != c.emb.Dim() {
			return nil, fmt.Errorf("chunk %d: vector has %d components, want %d", i, len(sd.Vectors[i]), c.emb.Dim())
		}
		switch {
		case len(ch.Metadata) == 0:
			p.attrs[i] = meta
		case i > 0 && sameMap(ch.Metadata, sd.Chunks[i-1].Metadata):
			p.attrs[i] = p.attrs[i-1]
		default:
			m, err := normalizeMetadata(ch.Metadata)
			if err != nil {
				return nil, fmt.Errorf("chunk %d: %w", i, err)
			}
			merged := make(map[string]any, len(meta)+len(m))
			for k, v := range meta {
				merged[k] = v
			}
			for k, v := range m {
				merged[k] = v
			}
			p.attrs[i] = merged
		}
		p.terms[i], p.length[i] = chunkTerms(indexText(sd.Title, ch.Heading, ch.Text))
	}
	return p, nil
}

// apply makes a prepared document visible, replacing the one with its ID.
// The caller holds wmu (or is New). The vectors go into the class's index
// first, where searches do not see them (their slots have no chunk yet);
// then, under mu, the chunks and postings appear and the old document's
// disappear at once; last the old vectors leave their index.
func (c *Collection) apply(p *prepared) {
	sd := p.sd
	n := uint32(len(sd.Chunks))
	first := c.next
	c.next += n

	c.mu.Lock()
	cl := c.classes[p.key]
	if cl == nil {
		cl = &class{acl: p.acl, key: p.key, vec: vindex.New(c.emb.Dim(), c.vopt), post: map[string][]posting{}}
		c.classes[p.key] = cl
	}
	c.mu.Unlock()
	for i, v := range sd.Vectors {
		// Cannot fail: the dimension and the components were checked.
		if err := cl.vec.Add(uint64(first)+uint64(i), v); err != nil {
			panic("retrieve: " + err.Error())
		}
	}

	d := &docRec{
		id: sd.ID, title: sd.Title, url: sd.URL, format: sd.Format, version: sd.Version,
		meta: p.meta, acl: p.acl, seq: sd.Seq, cl: cl, first: first, n: n,
	}
	c.mu.Lock()
	old := c.docs[sd.ID]
	if old != nil {
		c.unlink(old) // may drop cl from c.classes if old was its last document
	}
	c.classes[p.key] = cl
	if need := int(first + n); need > len(c.chunks) {
		c.chunks = slices.Grow(c.chunks, need-len(c.chunks))[:need]
		c.lens = slices.Grow(c.lens, need-len(c.lens))[:need]
		c.attrOf = slices.Grow(c.attrOf, need-len(c.attrOf))[:need]
	}
	var prevAttr map[string]any
	var prevNo uint32
	for i := range sd.Chunks {
		ch := &sd.Chunks[i]
		a := p.attrs[i]
		if i == 0 || !sameMap(a, prevAttr) {
			prevNo = uint32(len(c.attrSets))
			c.attrSets = append(c.attrSets, a)
			for k, v := range a {
				c.attrKeys[k] = append(c.attrKeys[k], attrVal{prevNo, v})
			}
			d.attrs = append(d.attrs, prevNo)
			prevAttr = a
		}
		slot := first + uint32(i)
		c.chunks[slot] = &chunkRec{
			doc: d, pos: int32(i), length: int32(p.length[i]), attr: prevNo,
			start: ch.Start, end: ch.End, heading: ch.Heading, text: ch.Text,
			record: ch.Record, url: ch.URL,
		}
		c.lens[slot], c.attrOf[slot] = int32(p.length[i]), prevNo
		for _, x := range p.terms[i] {
			l, ok := cl.post[x.term]
			key := x.term
			if !ok {
				key = strings.Clone(key)
			}
			cl.post[key] = append(l, posting{slot, x.tf})
		}
		cl.length += int64(p.length[i])
	}
	cl.chunks += int(n)
	cl.docs = append(cl.docs, d)
	c.docs[sd.ID] = d
	c.mu.Unlock()
	if old != nil {
		c.dropVectors(old)
	}
}

func sameMap(a, b map[string]any) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// unlink removes d's chunks, postings and attributes; the caller holds mu
// for writing. Its vectors stay in its class's index until dropVectors;
// searches do not return them, their slots having no chunk.
func (c *Collection) unlink(d *docRec) {
	cl := d.cl
	seen := map[string]bool{}
	for s := d.first; s < d.first+d.n; s++ {
		ch := c.chunks[s]
		var t termScanner
		t.reset(indexText(d.title, ch.heading, ch.text))
		for {
			b, ok := t.next()
			if !ok {
				break
			}
			if seen[string(b)] {
				continue
			}
			term := string(b)
			seen[term] = true
			l := cl.post[term]
			i, _ := slices.BinarySearchFunc(l, d.first, func(p posting, s uint32) int { return cmpUint(uint64(p.slot), uint64(s)) })
			j, _ := slices.BinarySearchFunc(l, d.first+d.n, func(p posting, s uint32) int { return cmpUint(uint64(p.slot), uint64(s)) })
			if l = slices.Delete(l, i, j); len(l) == 0 {
				delete(cl.post, term)
			} else {
				cl.post[term] = l
			}
		}
		cl.length -= int64(ch.length)
		c.chunks[s] = nil
	}
	cl.chunks -= int(d.n)
	for _, a := range d.attrs {
		for k := range c.attrSets[a] {
			l := c.attrKeys[k]
			i, found := slices.BinarySearchFunc(l, a, func(x attrVal, a uint32) int { return cmpUint(uint64(x.set), uint64(a)) })
			if !found {
				continue
			}
			if l = slices.Delete(l, i, i+1); len(l) == 0 {
				delete(c.attrKeys, k)
			} else {
				c.attrKeys[k] = l
			}
		}
		c.attrSets[a] = nil
	}
	i, _ := slices.BinarySearchFunc(cl.docs, d.first, func(x *docRec, s uint32) int { return cmpUint(uint64(x.first), uint64(s)) })
	cl.docs = slices.Delete(cl.docs, i, i+1)
	delete(c.docs, d.id)
	if cl.chunks == 0 {
		delete(c.classes, cl.key)
	}
}

// dropVectors removes a document's vectors from its class's index; the
// caller holds wmu.
func (c *Collection) dropVectors(d *docRec) {
	for s := d.first; s < d.first+d.n; s++ {
		d.cl.vec.Delete(uint64(s))
	}
}

// Delete removes the document id from the store and the collection and
// reports whether it was there. With a store shared by replicas (a
// ChangeFeed) the store is asked even when this replica does not hold the
// document yet (another replica's Add not yet synced), and "there" means
// in the store or here.
func (c *Collection) Delete(ctx context.Context, id string) (bool, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.RLock()
	d := c.docs[id]
	c.mu.RUnlock()
	_, shared := c.store.(ChangeFeed)
	if d == nil && !shared {
		return false, nil
	}
	var seq uint64
	if c.store != nil {
		var err error
		if seq, err = c.store.Delete(ctx, id); err != nil {
			return false, fmt.Errorf("retrieve: deleting document %q from the store: %w", id, err)
		}
	}
	if shared && seq > 0 {
		c.gone[id] = seq
		c.seq = max(c.seq, seq)
	}
	if d != nil {
		c.remove(d)
	}
	return d != nil || seq > 0, nil
}

// remove takes d out of the collection; the caller holds wmu.
func (c *Collection) remove(d *docRec) {
	c.mu.Lock()
	c.unlink(d)
	c.mu.Unlock()
	c.dropVectors(d)
}

// Doc returns what the collection holds of the document id.
func (c *Collection) Doc(id string) (DocInfo, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	d := c.docs[id]
	if d == nil {
		return DocInfo{}, false
	}
	return d.info(), true
}

// Docs calls fn with every document, by increasing ID, until fn returns
// false. It sees a snapshot taken when it is called, and runs fn without
// any lock held, so fn may call the collection (Add, Delete, Search).
func (c *Collection) Docs(fn func(DocInfo) bool) {
	c.mu.RLock()
	all := make([]DocInfo, 0, len(c.docs))
	for _, d := range c.docs {
		all = append(all, d.info())
	}
	c.mu.RUnlock()
	slices.SortFunc(all, func(a, b DocInfo) int { return strings.Compare(a.ID, b.ID) })
	for _, d := range all {
		if !fn(d) {
			return
		}
	}
}

func (d *docRec) info() DocInfo {
	return DocInfo{
		ID: d.id, Title: d.title, URL: d.url, Format: d.format, Version: d.version,
		Metadata: d.meta, ACL: d.acl, Chunks: int(d.n), Seq: d.seq,
	}
}

// Stats describes a collection.
type Stats struct {
	Docs, Chunks, Classes int
}

// Stats returns the collection's counts.
func (c *Collection) Stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := Stats{Docs: len(c.docs), Classes: len(c.classes)}
	for _, cl := range c.classes {
		s.Chunks += cl.chunks
	}
	return s
}

func checkID(id string) error {
	if id == "" || len(id) > 1024 || !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0 {
		return fmt.Errorf("retrieve: document id %q: must be 1 to 1024 bytes of UTF-8 without NUL", id)
	}
	return nil
}

func checkVersion(v string) error {
	if len(v) > 1024 || !utf8.ValidString(v) {
		return fmt.Errorf("version: must be at most 1024 bytes of UTF-8")
	}
	return nil
}

// Metadata limits.
const (
	maxMetaKeys  = 64
	maxMetaKey   = 256
	maxMetaValue = 4096
)

// normalizeMetadata checks m and returns a copy whose numbers are float64.
func normalizeMetadata(m map[string]any) (map[string]any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	if len(m) > maxMetaKeys {
		return nil, fmt.Errorf("metadata: %d keys, at most %d", len(m), maxMetaKeys)
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k == "" || len(k) > maxMetaKey || !utf8.ValidString(k) {
			return nil, fmt.Errorf("metadata: key %q: must be 1 to %d bytes of UTF-8", k, maxMetaKey)
		}
		var f float64
		switch x := v.(type) {
		case string:
			if len(x) > maxMetaValue || !utf8.ValidString(x) {
				return nil, fmt.Errorf("metadata.%s: a string value must be UTF-8 of at most %d bytes", k, maxMetaValue)
			}
			out[k] = x
			continue
		case bool:
			out[k] = x
			continue
		case float64:
			f = x
		case float32:
			f = float64(x)
		case int:
			f = float64(x)
		case int8:
			f = float64(x)
		case int16:
			f = float64(x)
		case int32:
			f = float64(x)
		case int64:
			f = float64(x)
		case uint:
			f = float64(x)
		case uint8:
			f = float64(x)
		case uint16:
			f = float64(x)
		case uint32:
			f = float64(x)
		case uint64:
			f = float64(x)
		case json.Number:
			var err error
			if f, err = x.Float64(); err != nil {
				return nil, fmt.Errorf("metadata.%s: %v", k, err)
			}
		default:
			return nil, fmt.Errorf("metadata.%s: %T is not a string, number or boolean", k, v)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("metadata.%s: %v is not a finite number", k, f)
		}
		out[k] = f
	}
	return out, nil
}
