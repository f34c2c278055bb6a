// Package retrieval is the gateway's retrieval (RAG) plugin: the config's
// collections opened once and kept across reloads, the retrieval stage
// that grounds a chat request in them and returns its citations, and the
// OpenAI Files and Vector Stores APIs that manage them. The search core is
// internal/retrieve; see docs/retrieval.md.
package retrieval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/internal/embed"
	"switchyard/internal/respool"
	"switchyard/internal/retrieve"
)

// ServiceName is the gateway service of this plugin (gateway.ServiceOf).
const ServiceName = "retrieval"

// Register adds the retrieval service, the stage kind "retrieval" and the
// Files and Vector Stores endpoints to reg.
func Register(reg *gateway.Registry) {
	audit := newAuditLog()
	reg.RegisterService(gateway.Service{Name: ServiceName, Open: func(env *gateway.Env, cfg *config.Config) (any, error) {
		return openLibrary(env, cfg, audit)
	}})
	reg.RegisterEndpoint(gateway.Endpoint{Method: "GET", Path: "/admin/retrieval/audit", Admin: true, Handle: audit.serve})
	reg.Register(gateway.Factory{
		Kind: "retrieval",
		Doc:  "grounds chat requests in a collection's documents (ACL-filtered hybrid search) and returns citations",
		New:  func() gateway.Stage { return &Stage{} },
	})
	registerAPI(reg)
}

// Library is one generation's view of the collections: those of the
// config, opened (or kept from the generation before) when the generation
// is built. It is the service's value.
type Library struct {
	cfg   *config.Config
	log   *slog.Logger
	colls map[string]*Coll // by name
	names []string         // sorted
	audit *auditLog
	env   *gateway.Env   // the generation's, for resources opened later (API-made vector stores)
	bg    sync.WaitGroup // background source syncs (pool embedders)

	api apiState // the Files and Vector Stores APIs' state (api.go)
}

// Close waits for the generation's background syncs (its context is
// cancelled first) and releases what the APIs hold for it.
func (l *Library) Close() error {
	l.bg.Wait()
	return l.closeAPI()
}

// syncLater syncs a collection's sources until it succeeds or ctx (the
// generation's) ends, every syncRetry.
func (l *Library) syncLater(ctx context.Context, c *Coll, cfg *config.Config, spec config.Collection, log *slog.Logger) {
	defer l.bg.Done()
	t := time.NewTicker(syncRetry)
	defer t.Stop()
	for attempt := 1; ; attempt++ {
		err := c.syncSources(ctx, cfg, spec, log)
		if err == nil || ctx.Err() != nil {
			return
		}
		if attempt == 1 || attempt%30 == 0 {
			log.Warn("collection sources: sync failed; retrying", "collection", c.Name, "attempt", attempt, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// syncRetry is the pause between attempts of a background sync.
const syncRetry = time.Second

// Coll is an open collection. It is a shared resource: a reload whose
// collection settings did not change keeps it (and its index) as it is.
type Coll struct {
	Name    string
	Spec    config.Collection // as configured (Sources are the generation's)
	C       *retrieve.Collection
	MaxSize int64

	closeOnce sync.Once
	closers   []func() error
	// syncMu serializes the source sync against itself (a reload while
	// the previous one still ingests).
	syncMu sync.Mutex
}

// Close stops the collection's followers and releases its store.
func (c *Coll) Close() error {
	var errs []error
	c.closeOnce.Do(func() {
		for i := len(c.closers) - 1; i >= 0; i-- {
			errs = append(errs, c.closers[i]())
		}
	})
	return errors.Join(errs...)
}

// Collection returns the collection name, or nil.
func (l *Library) Collection(name string) *Coll { return l.colls[name] }

// Names lists the collections, sorted.
func (l *Library) Names() []string { return l.names }

// libraryOf returns the library of the generation serving an endpoint's
// request (nil without one); not to be kept past the handler.
func libraryOf(ctx *fasthttp.RequestCtx) *Library {
	l, _ := gateway.ServiceOf(ctx, ServiceName).(*Library)
	return l
}

// openLibrary is the service's Open: each collection of cfg, from the
// resource pool or opened now, its sources then brought in step.
func openLibrary(env *gateway.Env, cfg *config.Config, audit *auditLog) (any, error) {
	l := &Library{cfg: cfg, log: env.Log, colls: map[string]*Coll{}, audit: audit}
	for i := range cfg.Collections {
		spec := cfg.Collections[i]
		l.names = append(l.names, spec.Name)
		if !env.Live {
			// Validation: the sources must exist; nothing is opened.
			if _, err := expandSources(configBase(cfg), spec.Sources); err != nil {
				return nil, cfg.Errorf(fmt.Sprintf("collections[%d].sources", i), "collection %q: %v", spec.Name, err)
			}
			l.colls[spec.Name] = &Coll{Name: spec.Name, Spec: spec, MaxSize: int64(spec.MaxFileSize)}
			continue
		}
		c, err := openColl(env, cfg, spec)
		if err != nil {
			e := cfg.Errorf(fmt.Sprintf("collections[%d]", i), "collection %q: %v", spec.Name, err)
			return nil, e
		}
		l.colls[spec.Name] = c
		if len(spec.Sources) == 0 {
			// Nothing to sync. Documents of sources the config no longer
			// lists at all are left (a replica started with another
			// config must not empty a shared collection); listing any
			// source removes those of files gone.
			continue
		}
		if spec.Embedder != config.EmbedderBuiltin {
			// A pool embedder is called through the gateway, which serves
			// this generation only once it is built: sync in the
			// background, retrying, owned by the generation.
			l.bg.Add(1)
			go l.syncLater(env.Context(), c, cfg, spec, env.Log)
			continue
		}
		if err := c.syncSources(env.Context(), cfg, spec, env.Log); err != nil {
			return nil, cfg.Errorf(fmt.Sprintf("collections[%d].sources", i), "collection %q: %v", spec.Name, err)
		}
	}
	sort.Strings(l.names)
	l.env = env
	if err := l.openAPI(env); err != nil {
		return nil, err
	}
	return l, nil
}

// storeKey is what makes a collection's resource: everything openColl
// reads. The sources are not in it (a changed list is synced into the
// same collection).
type storeKey struct {
	Name, Embedder, Store, Dir string
	Dim, MaxTokens, Overlap    int
	DSN                        string // a hash of it
}

func openColl(env *gateway.Env, cfg *config.Config, spec config.Collection) (*Coll, error) {
	k := storeKey{Name: spec.Name, Embedder: spec.Embedder, Store: spec.Store, Dim: spec.Dimensions,
		MaxTokens: spec.Chunking.MaxTokens, Overlap: spec.Chunking.OverlapTokens}
	switch spec.Store {
	case config.CollectionStorePG:
		sum := sha256.Sum256([]byte(cfg.Store.Postgres.DSN.Value()))
		k.DSN = hex.EncodeToString(sum[:8])
	default:
		// One directory per embedder: vectors of another embedder cannot
		// be searched, so a changed embedder starts a new index (its
		// sources are ingested again; POST /admin/vector_stores/{id}/reindex
		// re-attaches the API's files).
		k.Dir = filepath.Join(cfg.DataPath(), "collections", spec.Name, embedderDir(spec))
	}
	key, err := respool.Key("retrieval.collection", k)
	if err != nil {
		return nil, err
	}
	c, err := gateway.Resource(env, key, func() (*Coll, error) {
		return newColl(env, cfg, spec, k.Dir)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func newColl(env *gateway.Env, cfg *config.Config, spec config.Collection, dir string) (*Coll, error) {
	c := &Coll{Name: spec.Name, Spec: spec, MaxSize: int64(spec.MaxFileSize)}
	emb, err := embedderOf(env, spec)
	if err != nil {
		return nil, err
	}
	var store retrieve.Store
	var follow func(*retrieve.Collection) (func(), error)
	switch spec.Store {
	case config.CollectionStorePG:
		var closeStore func() error
		store, follow, closeStore, err = openPG(cfg, spec, env.Log)
		if err != nil {
			return nil, err
		}
		c.closers = append(c.closers, closeStore)
	default:
		unlock, err := lockDir(dir)
		if err != nil {
			return nil, err
		}
		c.closers = append(c.closers, unlock)
		ds, err := retrieve.OpenDir(dir)
		if err != nil {
			c.Close()
			return nil, err
		}
		store = ds
	}
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	start := time.Now()
	col, err := retrieve.New(ctx, retrieve.Options{
		Embedder: emb, Store: store,
		Chunking: retrieve.ChunkOptions{MaxTokens: spec.Chunking.MaxTokens, OverlapTokens: chunkOverlap(spec.Chunking.OverlapTokens), MaxBytes: int(spec.MaxFileSize)},
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	c.C = col
	if follow != nil {
		stop, err := follow(col)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.closers = append(c.closers, func() error { stop(); return nil })
	}
	st := col.Stats()
	env.Log.Info("collection opened", "collection", spec.Name, "store", spec.Store, "documents", st.Docs, "chunks", st.Chunks, "took", time.Since(start).Round(time.Millisecond).String())
	return c, nil
}

// openTimeout bounds loading a collection (rebuilding its indexes).
const openTimeout = 30 * time.Minute

// chunkOverlap maps the config's overlap (-1 none, 0 given as 0) to
// retrieve's (negative none, 0 default): the config is already defaulted.
func chunkOverlap(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// embedderDir names a collection's directory for its embedder.
func embedderDir(spec config.Collection) string {
	if spec.Embedder == config.EmbedderBuiltin {
		return fmt.Sprintf("builtin-%d", spec.Dimensions)
	}
	return fmt.Sprintf("pool-%s-%d", safeName(spec.Embedder), spec.Dimensions)
}

// safeName keeps letters, digits, '-', '_' and '.' of a name for a file
// name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// embedderOf returns the collection's embedder.
func embedderOf(env *gateway.Env, spec config.Collection) (retrieve.Embedder, error) {
	if spec.Embedder == config.EmbedderBuiltin {
		return embed.NewBuiltin(spec.Dimensions), nil
	}
	if env.Dispatcher == nil {
		return nil, fmt.Errorf("embedder %q: a model pool needs the gateway's dispatcher", spec.Embedder)
	}
	return &poolEmbedder{d: env.Dispatcher, pool: spec.Embedder, dim: spec.Dimensions}, nil
}

// sourceVersion prefixes the Version of documents ingested from sources;
// ingestVersion those of `switchyard ingest`; API files have none.
const (
	sourceVersion = "src:"
	ingestVersion = "cli:"
)

// ingestExts are the file types a directory source takes.
var ingestExts = []string{".txt", ".md", ".markdown", ".html", ".htm", ".jsonl"}

// sourceFile is one file of a source.
type sourceFile struct {
	id, path string
	src      *config.Source
}

// expandSources lists the sources' files, by document id (the path
// relative to base, with '/'); a file in two sources is taken from the
// first.
func expandSources(base string, sources []config.Source) ([]sourceFile, error) {
	var out []sourceFile
	seen := map[string]bool{}
	add := func(p string, s *config.Source, root string) error {
		// The id: the path relative to the config's directory, or, for a
		// source outside it, relative to the source's parent directory
		// (so ids never hold a machine's absolute paths).
		rel, err := filepath.Rel(base, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			if rel, err = filepath.Rel(filepath.Dir(filepath.Clean(root)), p); err != nil {
				rel = filepath.Base(p)
			}
		}
		id := filepath.ToSlash(rel)
		if !seen[id] {
			seen[id] = true
			out = append(out, sourceFile{id: id, path: p, src: s})
		}
		return nil
	}
	for i := range sources {
		s := &sources[i]
		p := s.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		matches := []string{p}
		if strings.ContainsAny(filepath.Base(p), "*?[") {
			m, err := filepath.Glob(p)
			if err != nil {
				return nil, fmt.Errorf("sources[%d].path %q: %v", i, s.Path, err)
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("sources[%d].path %q matches no file", i, s.Path)
			}
			matches = m
		}
		for _, m := range matches {
			fi, err := os.Stat(m)
			if err != nil {
				return nil, fmt.Errorf("sources[%d].path %q: %v", i, s.Path, err)
			}
			if !fi.IsDir() {
				if err := add(m, s, m); err != nil {
					return nil, err
				}
				continue
			}
			err = filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.IsDir() || !slices.Contains(ingestExts, strings.ToLower(filepath.Ext(p))) {
					return nil
				}
				return add(p, s, m)
			})
			if err != nil {
				return nil, fmt.Errorf("sources[%d].path %q: %v", i, s.Path, err)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

// syncSources brings the collection in step with its sources: new and
// changed files are added, unchanged ones skipped (by a hash of their
// content, ACL and metadata), documents of files no longer listed
// removed. One bad file fails the sync (and the generation) with its
// path; what was added before it stays, and a reload retries.
func (c *Coll) syncSources(ctx context.Context, cfg *config.Config, spec config.Collection, log *slog.Logger) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	files, err := expandSources(configBase(cfg), spec.Sources)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	added, skipped, chunks := 0, 0, 0
	start := time.Now()
	for _, f := range files {
		keep[f.id] = true
		b, err := readLimited(f.path, int64(spec.MaxFileSize))
		if err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		d := sourceDoc(f, b)
		if old, ok := c.C.Doc(d.ID); ok && old.Version == d.Version {
			skipped++
			continue
		}
		n, err := c.C.Add(ctx, d)
		if err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		added++
		chunks += n
	}
	var gone []string
	c.C.Docs(func(d retrieve.DocInfo) bool {
		if strings.HasPrefix(d.Version, sourceVersion) && !keep[d.ID] {
			gone = append(gone, d.ID)
		}
		return true
	})
	for _, id := range gone {
		if _, err := c.C.Delete(ctx, id); err != nil {
			return err
		}
	}
	if added > 0 || len(gone) > 0 {
		log.Info("collection sources synced", "collection", c.Name, "added", added, "chunks", chunks, "unchanged", skipped, "removed", len(gone), "took", time.Since(start).Round(time.Millisecond).String())
	}
	return nil
}

// configBase is the directory sources are relative to.
func configBase(cfg *config.Config) string {
	if cfg.File == "" {
		return "."
	}
	return filepath.Dir(cfg.File)
}

// sourceDoc is the document of a source file.
func sourceDoc(f sourceFile, content []byte) retrieve.Document {
	meta := map[string]any{}
	for k, v := range f.src.Metadata {
		meta[k] = v
	}
	acl := retrieve.ACL{Tenants: f.src.ACL.Tenants, Groups: f.src.ACL.Groups, Keys: f.src.ACL.Keys}
	h := sha256.New()
	h.Write(content)
	spec, _ := json.Marshal(struct {
		A retrieve.ACL
		M map[string]any
	}{acl, meta})
	h.Write(spec)
	return retrieve.Document{
		ID: f.id, Title: titleOf(f.id), Format: retrieve.FormatOf(f.path), Content: content,
		Metadata: meta, ACL: acl, Version: sourceVersion + hex.EncodeToString(h.Sum(nil)[:16]),
	}
}

// titleOf is a document's title from its file name: "routing-basics.md"
// is "routing basics".
func titleOf(id string) string {
	base := filepath.Base(id)
	base = strings.TrimSuffix(base, filepath.Ext(base))
	return strings.NewReplacer("-", " ", "_", " ").Replace(base)
}

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%d bytes, over max_file_size (%d)", fi.Size(), limit)
	}
	return os.ReadFile(path)
}

// principalOf is the search principal of a gateway caller: its key, its
// tenant, and its groups (the key's metadata "groups", comma-separated).
// A nil caller (an open gateway) is the empty principal: it sees only
// documents whose ACL is empty.
func principalOf(p *gateway.Principal) retrieve.Principal {
	if p == nil {
		return retrieve.Principal{}
	}
	rp := retrieve.Principal{KeyID: p.KeyID, Tenant: p.Tenant}
	if g := p.Metadata["groups"]; g != "" {
		for _, s := range strings.Split(g, ",") {
			if s = strings.TrimSpace(s); s != "" {
				rp.Groups = append(rp.Groups, s)
			}
		}
	}
	return rp
}
