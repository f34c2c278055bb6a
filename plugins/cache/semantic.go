package cache

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"switchyard/gateway"
	"switchyard/internal/embed"
	"switchyard/internal/respool"
	"switchyard/internal/vindex"
)

// Semantic configures the semantic cache.
type Semantic struct {
	// Threshold is the cosine similarity from which a stored last user
	// turn answers a new one (default: the embedder's measured default,
	// see docs/cache.md).
	Threshold float64 `yaml:"threshold"`
	// Embedder is builtin (default: model-free, in process) or the name
	// of an embeddings model pool of this config (called through the
	// gateway).
	Embedder string `yaml:"embedder"`
	// MaxEntries bounds the route's semantic entries (default 100000);
	// the oldest go first.
	MaxEntries int `yaml:"max_entries"`
	// Persist keeps the entries in data_dir across restarts (default true).
	Persist *bool `yaml:"persist"`
}

const (
	defaultMaxEntries = 100000
	snapshotEvery     = 30 * time.Second
	// embedTimeout bounds a pool embedder's call.
	embedTimeout = 2 * time.Second
)

// semStore is a route's semantic cache: per partition (owner, route,
// pool, the request without its last user turn) an index of the last user
// turns' vectors, and the answers. A shared resource, kept across reloads
// and, when persisted, across restarts.
type semStore struct {
	path       string
	maxEntries int

	mu      sync.RWMutex
	dim     int
	parts   map[[32]byte]*vindex.Index
	entries map[uint64]*semEntry
	order   []uint64 // insertion order, for the capacity bound
	nextID  uint64
	dirty   bool

	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type semEntry struct {
	ID      uint64
	Part    [32]byte
	Vec     []float32
	Z       []byte // zstd-compressed answer
	Query   string
	Expires time.Time
}

// semQuery is one request's semantic lookup, kept for storing its answer
// on a miss and for feedback on a hit.
type semQuery struct {
	store   *semStore
	part    [32]byte
	text    string
	vec     []float32
	ttl     time.Duration
	hit     []byte // the answer, on a hit
	hitID   uint64
	matched string
	score   float32
}

func (s *Stage) provisionSemantic(env *gateway.Env) error {
	c := s.Semantic
	if c.Embedder == "" {
		c.Embedder = "builtin"
	}
	if c.Threshold == 0 {
		if c.Embedder == "builtin" {
			c.Threshold = float64(embed.DefaultThreshold)
		} else {
			c.Threshold = 0.95
		}
	}
	if c.Threshold < 0 || c.Threshold > 1 || math.IsNaN(c.Threshold) {
		return fmt.Errorf("threshold: %v is not a similarity between 0 and 1", c.Threshold)
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = defaultMaxEntries
	}
	if c.MaxEntries < 0 {
		return errors.New("max_entries: must not be negative")
	}
	if c.Embedder == "builtin" {
		s.embedder = builtin()
	} else {
		if env.Dispatcher == nil && env.Resources != nil {
			return fmt.Errorf("embedder: the pool %q needs the gateway's dispatcher", c.Embedder)
		}
		s.embedder = &poolEmbedder{d: env.Dispatcher, pool: c.Embedder}
	}
	path := ""
	if (c.Persist == nil || *c.Persist) && env.DataDir != "" && env.Resources != nil {
		path = filepath.Join(env.DataDir, "cache", "semantic-"+safeName(s.route)+".gob")
	}
	key, err := respool.Key("cache.semantic", struct {
		Route, Embedder, Path string
		Max                   int
	}{s.route, c.Embedder, path, c.MaxEntries})
	if err != nil {
		return err
	}
	s.sem, err = gateway.Resource(env, key, func() (*semStore, error) { return newSemStore(path, c.MaxEntries) })
	return err
}

// safeName keeps letters, digits, - and _ of a route name for a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

var (
	builtinOnce sync.Once
	builtinEmb  *embed.Builtin
)

func builtin() *embed.Builtin {
	builtinOnce.Do(func() { builtinEmb = embed.NewBuiltin(0) })
	return builtinEmb
}

// poolEmbedder embeds through an embeddings model pool of the config.
type poolEmbedder struct {
	d    gateway.Dispatcher
	pool string
}

func (p *poolEmbedder) Dim() int     { return 0 }
func (p *poolEmbedder) Name() string { return p.pool }

func (p *poolEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	ctx, cancel := context.WithTimeout(ctx, embedTimeout)
	defer cancel()
	vecs, err := gateway.EmbedTexts(ctx, p.d, p.pool, texts)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	for i, v := range vecs {
		vecs[i] = normalize(v)
	}
	return vecs, nil
}

func normalize(v []float32) []float32 {
	var n float64
	for _, f := range v {
		n += float64(f) * float64(f)
	}
	if n == 0 {
		return v
	}
	inv := float32(1 / math.Sqrt(n))
	for i := range v {
		v[i] *= inv
	}
	return v
}

func newSemStore(path string, maxEntries int) (*semStore, error) {
	st := &semStore{path: path, maxEntries: maxEntries, parts: map[[32]byte]*vindex.Index{},
		entries: map[uint64]*semEntry{}, done: make(chan struct{})}
	if path != "" {
		if _, err := os.Stat(filepath.Dir(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cache: the semantic entries' directory: %w", err)
		}
		// Loading rebuilds the indexes (large partitions take a while:
		// ~0.3 ms an entry), so it runs in the background: lookups find
		// the entries as they come in.
		st.wg.Add(1)
		go func() {
			st.load()
			st.snapshots()
		}()
	}
	return st, nil
}

// semantic embeds the request's last user turn and, when lookup is set,
// searches its partition. It returns nil when the request is not one for
// the semantic cache (or embedding failed: the request goes on uncached).
func (s *Stage) semantic(x *gateway.Exchange, sc scope, r request, lookup bool) *semQuery {
	bp := s.getBuf()
	defer s.bufs.Put(bp)
	part, text, ok := partitionOf(sc, r, *bp)
	if !ok {
		return nil
	}
	q := &semQuery{store: s.sem, part: part, text: text, ttl: s.ttl}
	if b, ok := s.embedder.(*embed.Builtin); ok {
		q.vec = b.EmbedInto(text, nil)
	} else {
		vecs, err := s.embedder.Embed(x.Context(), []string{text})
		if err != nil || len(vecs) != 1 {
			return nil
		}
		q.vec = vecs[0]
	}
	if lookup {
		s.sem.lookup(q, float32(s.Semantic.Threshold), s.met.similarity.Update)
	}
	return q
}

// lookup fills q.hit with the best stored answer at or above threshold
// whose text the guard lets match.
func (st *semStore) lookup(q *semQuery, threshold float32, observe func(float64)) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	ix := st.parts[q.part]
	if ix == nil || len(q.vec) != st.dim {
		return
	}
	var buf [8]vindex.Hit
	hits := ix.Search(q.vec, len(buf), buf[:0])
	if len(hits) > 0 && observe != nil {
		observe(float64(hits[0].Score))
	}
	now := time.Now()
	for _, h := range hits {
		if h.Score < threshold {
			return
		}
		e := st.entries[h.ID]
		if e == nil || now.After(e.Expires) || embed.Guard(q.text, e.Query) {
			continue
		}
		_, dec := coders()
		body, err := dec.DecodeAll(e.Z, nil)
		if err != nil {
			continue
		}
		q.hit, q.hitID, q.matched, q.score = body, e.ID, e.Query, h.Score
		return
	}
}

// put stores the answer of a miss and returns its entry, or nil.
func (st *semStore) put(q *semQuery, body []byte) *semEntry {
	if len(q.vec) == 0 {
		return nil
	}
	enc, _ := coders()
	e := &semEntry{Part: q.part, Vec: q.vec, Z: enc.EncodeAll(body, nil), Query: q.text, Expires: time.Now().Add(q.ttl)}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.insert(e) {
		return nil
	}
	return e
}

// addRemote indexes an entry another replica stored.
func (st *semStore) addRemote(e *semEntry) {
	if !time.Now().Before(e.Expires) {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.insert(e)
}

// insert adds e under a new id; st.mu is held.
func (st *semStore) insert(e *semEntry) bool {
	if st.dim == 0 {
		st.dim = len(e.Vec)
	}
	if len(e.Vec) != st.dim {
		return false
	}
	ix := st.parts[e.Part]
	if ix == nil {
		ix = vindex.New(st.dim, vindex.Options{})
		st.parts[e.Part] = ix
	}
	st.nextID++
	e.ID = st.nextID
	if err := ix.Add(e.ID, e.Vec); err != nil {
		return false
	}
	st.entries[e.ID] = e
	st.order = append(st.order, e.ID)
	st.dirty = true
	for len(st.entries) > st.maxEntries && len(st.order) > 0 {
		st.drop(st.order[0])
		st.order = st.order[1:]
	}
	if len(st.order) > 2*st.maxEntries+1024 { // ids dropped by feedback or expiry: compact
		live := st.order[:0]
		for _, id := range st.order {
			if st.entries[id] != nil {
				live = append(live, id)
			}
		}
		st.order = live
	}
	return true
}

// drop removes an entry; st.mu is held.
func (st *semStore) drop(id uint64) {
	e := st.entries[id]
	if e == nil {
		return
	}
	delete(st.entries, id)
	if ix := st.parts[e.Part]; ix != nil {
		ix.Delete(id)
		if ix.Len() == 0 {
			delete(st.parts, e.Part)
		}
	}
	st.dirty = true
}

// evict removes the entry a hit came from (feedback).
func (st *semStore) evict(q *semQuery) {
	st.mu.Lock()
	st.drop(q.hitID)
	st.mu.Unlock()
}

func (st *semStore) clear() {
	st.mu.Lock()
	st.parts = map[[32]byte]*vindex.Index{}
	st.entries = map[uint64]*semEntry{}
	st.order = nil
	st.dirty = true
	st.mu.Unlock()
}

// Len is the number of entries.
func (st *semStore) Len() int {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return len(st.entries)
}

// snapshots saves the entries every snapshotEvery when they changed; it
// exits on Close.
func (st *semStore) snapshots() {
	defer st.wg.Done()
	t := time.NewTicker(snapshotEvery)
	defer t.Stop()
	for {
		select {
		case <-st.done:
			return
		case <-t.C:
			st.save()
		}
	}
}

// persisted is the file's form.
type persisted struct {
	Version int
	Entries []*semEntry
}

const persistVersion = 1

// save writes the live entries to the file (atomically: a temporary file
// renamed over it).
func (st *semStore) save() error {
	st.mu.Lock()
	if !st.dirty {
		st.mu.Unlock()
		return nil
	}
	now := time.Now()
	p := persisted{Version: persistVersion}
	for _, id := range st.order {
		if e := st.entries[id]; e != nil && now.Before(e.Expires) {
			p.Entries = append(p.Entries, e)
		}
	}
	st.dirty = false
	st.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(st.path), 0o700); err != nil {
		return fmt.Errorf("cache: saving the semantic entries: %w", err)
	}
	tmp := st.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cache: saving the semantic entries: %w", err)
	}
	if err := gob.NewEncoder(f).Encode(&p); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("cache: saving the semantic entries: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cache: saving the semantic entries: %w", err)
	}
	return os.Rename(tmp, st.path)
}

// load reads the file, when there is one; an unreadable file is set aside
// (renamed *.bad) rather than failing the start.
func (st *semStore) load() error {
	f, err := os.Open(st.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cache: reading the semantic entries: %w", err)
	}
	defer f.Close()
	var p persisted
	if err := gob.NewDecoder(f).Decode(&p); err != nil || p.Version != persistVersion {
		f.Close()
		os.Rename(st.path, st.path+".bad")
		return nil
	}
	now := time.Now()
	for i, e := range p.Entries {
		if i%256 == 0 {
			select {
			case <-st.done:
				return nil
			default:
			}
		}
		if e != nil && now.Before(e.Expires) {
			st.mu.Lock()
			st.insert(e)
			st.mu.Unlock()
		}
	}
	return nil
}

// Close stops the snapshots and saves the entries.
func (st *semStore) Close() error {
	var err error
	st.once.Do(func() {
		close(st.done)
		st.wg.Wait()
		if st.path != "" {
			err = st.save()
		}
	})
	return err
}
