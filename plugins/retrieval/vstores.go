package retrieval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/internal/retrieve"
)

// The Vector Stores API: each collection of the config is a vector store
// whose id is its name; POST /v1/vector_stores makes more at run time.
// vstores_files.go attaches files, vstores_search.go searches.

// vsRec is a vector store's record: a run-time one's whole definition, a
// config one's creation time and API-set metadata.
type vsRec struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Description  string            `json:"description,omitempty"`
	CreatedAt    int64             `json:"created_at"`
	LastActiveAt int64             `json:"last_active_at"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	// Run-time vector stores only:
	Runtime     bool   `json:"runtime,omitempty"`
	Owner       string `json:"owner,omitempty"` // the creator's scope
	Store       string `json:"store,omitempty"` // local or postgres
	MaxFileSize int64  `json:"max_file_size,omitempty"`
}

func (st *apiStore) putVS(ctx context.Context, r *vsRec) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return st.be.Put(ctx, kindVS, r.ID, b)
}

func (st *apiStore) getVS(ctx context.Context, id string) (*vsRec, error) {
	b, err := st.be.Get(ctx, kindVS, id)
	if err != nil {
		return nil, err
	}
	var r vsRec
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("the record of vector store %s: %w", id, err)
	}
	return &r, nil
}

// runtimeSpec is the collection of a run-time vector store: the builtin
// embedder, the default chunking, in PostgreSQL when the config has a
// store.postgres.dsn, else local.
func runtimeSpec(r *vsRec) config.Collection {
	return config.Collection{Name: r.ID, Embedder: config.EmbedderBuiltin, Dimensions: config.DefaultBuiltinDims,
		Chunking: config.Chunking{MaxTokens: config.DefaultChunkTokens, OverlapTokens: config.DefaultChunkOverlap},
		Store:    r.Store, MaxFileSize: config.Size(r.MaxFileSize)}
}

// runtimeDir is a local run-time vector store's directory (its
// collection's is runtimeDir/builtin-512, as a config collection's).
func (st *apiStore) runtimeDir(id string) string {
	return filepath.Join(st.dataPath, "collections", id)
}

// openRuntime opens the collection of a run-time vector store; the caller
// holds st.mu.
func (st *apiStore) openRuntimeLocked(r *vsRec) (*Coll, error) {
	if c := st.runtime[r.ID]; c != nil {
		return c, nil
	}
	spec := runtimeSpec(r)
	dir := ""
	if spec.Store != config.CollectionStorePG {
		dir = filepath.Join(st.runtimeDir(r.ID), embedderDir(spec))
	}
	c, err := newColl(&gateway.Env{Log: st.log}, st.cfg, spec, dir)
	if err != nil {
		return nil, fmt.Errorf("opening vector store %s: %w", r.ID, err)
	}
	st.runtime[r.ID] = c
	return c, nil
}

// openRuntimeAll opens every run-time vector store's collection.
func (st *apiStore) openRuntimeAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	recs, err := st.be.List(ctx, kindVS, "")
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, rr := range recs {
		var r vsRec
		if err := json.Unmarshal(rr.Val, &r); err != nil {
			return fmt.Errorf("the record of vector store %s: %w", rr.Key, err)
		}
		if !r.Runtime {
			continue
		}
		if _, err := st.openRuntimeLocked(&r); err != nil {
			return err
		}
	}
	return nil
}

// runtimeColl returns the open collection of a run-time vector store,
// opening it if another replica made it.
func (st *apiStore) runtimeColl(r *vsRec) (*Coll, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.openRuntimeLocked(r)
}

// vstore is a vector store as a request sees it.
type vstore struct {
	id     string
	coll   *Coll
	rec    *vsRec
	config bool // a collection of the config
}

// vectorStore resolves a vector store id for the caller: a config
// collection, or a run-time vector store of the caller's scope (the admin
// API sees all); else the 404 of a vector store that does not exist.
func (a *apiCall) vectorStore(id string) (*vstore, error) {
	if c := a.l.Collection(id); c != nil && c.C != nil {
		r, err := a.st.getVS(a.ctx, id)
		if errors.Is(err, errNotFound) {
			now := time.Now().Unix()
			r, err = &vsRec{ID: id, Name: id, CreatedAt: now, LastActiveAt: now}, nil
		}
		if err != nil {
			return nil, err
		}
		return &vstore{id: id, coll: c, rec: r, config: true}, nil
	}
	r, err := a.st.getVS(a.ctx, id)
	if errors.Is(err, errNotFound) || (err == nil && (!r.Runtime || (!a.admin && r.Owner != a.scope))) {
		return nil, errNoObject("vector_store_id", "vector store", id)
	}
	if err != nil {
		return nil, err
	}
	c, err := a.st.runtimeColl(r)
	if err != nil {
		return nil, err
	}
	return &vstore{id: id, coll: c, rec: r}, nil
}

// allStores lists every vector store, the caller's or not (for deleting a
// file's documents everywhere, and checking who may read its content).
func (a *apiCall) allStores() []*vstore {
	var out []*vstore
	for _, name := range a.l.names {
		if c := a.l.Collection(name); c != nil && c.C != nil {
			out = append(out, &vstore{id: name, coll: c, config: true, rec: &vsRec{ID: name, Name: name}})
		}
	}
	recs, err := a.st.be.List(a.ctx, kindVS, "")
	if err != nil {
		a.l.log.Warn("vector stores: listing the run-time ones", "error", err)
	}
	for _, rr := range recs {
		var r vsRec
		if json.Unmarshal(rr.Val, &r) != nil || !r.Runtime {
			continue
		}
		c, err := a.st.runtimeColl(&r)
		if err != nil {
			a.l.log.Warn("vector stores: opening a run-time one", "vector_store", r.ID, "error", err)
			continue
		}
		out = append(out, &vstore{id: r.ID, coll: c, rec: &r})
	}
	return out
}

// vsObject is OpenAI's VectorStoreObject.
type vsObject struct {
	ID           string            `json:"id"`
	Object       string            `json:"object"`
	CreatedAt    int64             `json:"created_at"`
	Name         string            `json:"name"`
	UsageBytes   int64             `json:"usage_bytes"`
	FileCounts   fileCounts        `json:"file_counts"`
	Status       string            `json:"status"`
	LastActiveAt *int64            `json:"last_active_at"`
	Metadata     map[string]string `json:"metadata"`
}

type fileCounts struct {
	InProgress int `json:"in_progress"`
	Completed  int `json:"completed"`
	Failed     int `json:"failed"`
	Cancelled  int `json:"cancelled"`
	Total      int `json:"total"`
}

func (fc *fileCounts) add(status string) {
	switch status {
	case statusCompleted:
		fc.Completed++
	case statusFailed:
		fc.Failed++
	case statusInProgress:
		fc.InProgress++
	case statusCancelled:
		fc.Cancelled++
	}
	fc.Total++
}

// object renders v for the caller: its counts and usage are of the files
// the caller may see.
func (a *apiCall) vsObject(v *vstore) (vsObject, error) {
	entries, err := a.vsFiles(v)
	if err != nil {
		return vsObject{}, err
	}
	o := vsObject{ID: v.id, Object: "vector_store", CreatedAt: v.rec.CreatedAt, Name: v.rec.Name, Status: "completed",
		Metadata: v.rec.Metadata}
	if o.Metadata == nil {
		o.Metadata = map[string]string{}
	}
	la := max(v.rec.LastActiveAt, v.rec.CreatedAt)
	o.LastActiveAt = &la
	for _, e := range entries {
		o.FileCounts.add(e.status)
		if e.status == statusCompleted {
			o.UsageBytes += e.bytes
		}
	}
	return o, nil
}

// serveVectorStores answers /v1/vector_stores: POST creates, GET lists.
func serveVectorStores(a *apiCall) (any, error) {
	if a.ctx.IsPost() {
		return a.createVectorStore()
	}
	p, err := parseList(a.ctx.QueryArgs(), 20, 100, true, false)
	if err != nil {
		return nil, err
	}
	var all []*vstore
	for _, v := range a.allStores() {
		if v.config || v.rec.Owner == a.scope {
			if v.config {
				if r, err := a.st.getVS(a.ctx, v.id); err == nil {
					v.rec = r
				}
			}
			all = append(all, v)
		}
	}
	page, more, err := paginate(all, func(v *vstore) listKey { return listKey{v.rec.CreatedAt, v.id} }, p)
	if err != nil {
		return nil, err
	}
	objs := make([]vsObject, 0, len(page))
	for _, v := range page {
		o, err := a.vsObject(v)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
	return newListPage(objs, more, func(o vsObject) string { return o.ID }), nil
}

// createVSRequest is OpenAI's CreateVectorStoreRequest.
type createVSRequest struct {
	Name             *string         `json:"name"`
	Description      string          `json:"description"`
	FileIDs          []string        `json:"file_ids"`
	Metadata         json.RawMessage `json:"metadata"`
	ChunkingStrategy json.RawMessage `json:"chunking_strategy"`
	ExpiresAfter     json.RawMessage `json:"expires_after"`
}

// maxCreateFiles bounds file_ids at creation, as OpenAI does.
const maxCreateFiles = 500

func (a *apiCall) createVectorStore() (any, error) {
	var req createVSRequest
	if err := decodeBody(a, &req); err != nil {
		return nil, err
	}
	if e := strings.TrimSpace(string(req.ExpiresAfter)); e != "" && e != "null" {
		return nil, errInvalid("expires_after", "Vector stores here do not expire: leave out expires_after, and delete one with DELETE /v1/vector_stores/{vector_store_id}.")
	}
	meta, err := parseMetadata(req.Metadata)
	if err != nil {
		return nil, err
	}
	if len(req.FileIDs) > maxCreateFiles {
		return nil, errInvalid("file_ids", "Invalid 'file_ids': %d files, at most %d (attach more with file batches).", len(req.FileIDs), maxCreateFiles)
	}
	name := ""
	if req.Name != nil {
		name = *req.Name
	}
	if len(name) > 256 || len(req.Description) > 512 {
		return nil, errInvalid("name", "Invalid 'name': at most 256 bytes (and 'description' 512).")
	}
	// Every file must be the caller's before anything is made.
	var files []*fileRec
	for i, id := range req.FileIDs {
		f, err := a.file(id, fmt.Sprintf("file_ids[%d]", i))
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	now := time.Now()
	r := &vsRec{Name: name, Description: req.Description, CreatedAt: now.Unix(), LastActiveAt: now.Unix(), Metadata: meta,
		Runtime: true, Owner: a.scope, Store: config.CollectionStoreLocal, MaxFileSize: a.l.api.maxFile}
	if a.st.pg {
		r.Store = config.CollectionStorePG
	}
	for {
		r.ID = newID(vsIDPrefix)
		if a.l.Collection(r.ID) == nil {
			break
		}
	}
	spec := runtimeSpec(r)
	if err := checkChunking(req.ChunkingStrategy, &Coll{Name: r.ID, Spec: spec}, "chunking_strategy"); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	a.st.mu.Lock()
	c, err := a.st.openRuntimeLocked(r)
	a.st.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := a.st.putVS(ctx, r); err != nil {
		a.st.dropRuntime(ctx, r.ID)
		return nil, err
	}
	v := &vstore{id: r.ID, coll: c, rec: r}
	for _, f := range files {
		if _, err := a.attach(ctx, v, f, nil, ""); err != nil {
			return nil, err
		}
	}
	return a.vsObject(v)
}

// dropRuntime closes a run-time vector store's collection, deletes its
// documents and directory, and forgets it.
func (st *apiStore) dropRuntime(ctx context.Context, id string) error {
	st.mu.Lock()
	c := st.runtime[id]
	delete(st.runtime, id)
	st.mu.Unlock()
	var errs []error
	if c != nil {
		var ids []string
		c.C.Docs(func(d retrieve.DocInfo) bool { ids = append(ids, d.ID); return true })
		for _, d := range ids {
			if _, err := c.C.Delete(ctx, d); err != nil {
				errs = append(errs, err)
				break
			}
		}
		errs = append(errs, c.Close())
	}
	if !st.pg {
		errs = append(errs, os.RemoveAll(st.runtimeDir(id)))
	}
	return errors.Join(errs...)
}

// serveVectorStore answers everything under /v1/vector_stores/{id}.
func serveVectorStore(a *apiCall) (any, error) {
	segs, ok := pathSegments(a.ctx, "/v1/vector_stores/")
	if !ok || len(segs) == 0 {
		return nil, errUnknownPath(a)
	}
	v, err := a.vectorStore(segs[0])
	if err != nil {
		return nil, err
	}
	rest := segs[1:]
	switch {
	case len(rest) == 0:
		switch {
		case a.ctx.IsGet():
			return a.vsObject(v)
		case a.ctx.IsPost():
			return a.modifyVectorStore(v)
		default:
			return a.deleteVectorStore(v)
		}
	case rest[0] == "search" && len(rest) == 1:
		if !a.ctx.IsPost() {
			return nil, errMethod(a, "POST")
		}
		return a.search(v)
	case rest[0] == "files":
		return a.serveVSFiles(v, rest[1:])
	case rest[0] == "file_batches":
		return a.serveBatches(v, rest[1:])
	}
	return nil, errUnknownPath(a)
}

// modifyVSRequest is OpenAI's UpdateVectorStoreRequest.
type modifyVSRequest struct {
	Name         json.RawMessage `json:"name"`
	Metadata     json.RawMessage `json:"metadata"`
	ExpiresAfter json.RawMessage `json:"expires_after"`
}

func (a *apiCall) modifyVectorStore(v *vstore) (any, error) {
	var req modifyVSRequest
	if err := decodeBody(a, &req); err != nil {
		return nil, err
	}
	if e := strings.TrimSpace(string(req.ExpiresAfter)); e != "" && e != "null" {
		return nil, errInvalid("expires_after", "Vector stores here do not expire: leave out expires_after.")
	}
	mu := a.st.lock(v.id)
	mu.Lock()
	defer mu.Unlock()
	r, err := a.st.getVS(a.ctx, v.id)
	if errors.Is(err, errNotFound) && v.config {
		r, err = v.rec, nil
	}
	if err != nil {
		return nil, err
	}
	if n := strings.TrimSpace(string(req.Name)); n != "" && n != "null" {
		var name string
		if err := json.Unmarshal(req.Name, &name); err != nil {
			return nil, errInvalid("name", "Invalid 'name': expected a string.")
		}
		if len(name) > 256 {
			return nil, errInvalid("name", "Invalid 'name': at most 256 bytes.")
		}
		if v.config && name != v.id {
			return nil, errInvalid("name", "Vector store %s is a collection of the config (collections[]): its name is its id and cannot be changed.", v.id)
		}
		r.Name = name
	}
	if len(req.Metadata) > 0 {
		m, err := parseMetadata(req.Metadata)
		if err != nil {
			return nil, err
		}
		r.Metadata = m
	}
	r.LastActiveAt = time.Now().Unix()
	if err := a.st.putVS(a.ctx, r); err != nil {
		return nil, err
	}
	v.rec = r
	return a.vsObject(v)
}

func (a *apiCall) deleteVectorStore(v *vstore) (any, error) {
	if v.config {
		return nil, errInvalid("vector_store_id", "Vector store %s is a collection of the config (collections[]): it cannot be deleted through the API; remove it from the config instead.", v.id)
	}
	mu := a.st.lock(v.id)
	defer a.st.dropLock(v.id)
	mu.Lock()
	defer mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	// The record first: a crash after it leaves garbage, not a vector
	// store half gone.
	if err := a.st.be.Delete(ctx, kindVS, v.id); err != nil {
		return nil, err
	}
	for _, kind := range []string{kindAttach, kindBatch} {
		recs, err := a.st.be.List(ctx, kind, v.id+"/")
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if err := a.st.be.Delete(ctx, kind, r.Key); err != nil {
				return nil, err
			}
		}
	}
	if err := a.st.dropRuntime(ctx, v.id); err != nil {
		a.l.log.Warn("vector store deleted; removing its collection failed", "vector_store", v.id, "error", err)
	}
	return struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Deleted bool   `json:"deleted"`
	}{v.id, "vector_store.deleted", true}, nil
}
