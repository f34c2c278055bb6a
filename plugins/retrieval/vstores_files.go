package retrieval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"switchyard/internal/retrieve"
)

// Vector store files: a file attached to a vector store is a document of
// its collection whose ID is the file's id, Title its filename, Format
// from the filename, Metadata the attributes without the ACL keys, ACL
// from them (aclOf). Attaching is synchronous: the answer says completed,
// or failed with last_error; a failed attachment is recorded (lists show
// it) and leaves no document.

// The statuses of vector store files and batches.
const (
	statusInProgress = "in_progress"
	statusCompleted  = "completed"
	statusFailed     = "failed"
	statusCancelled  = "cancelled"
)

// attachRec is the record of a file attached through the API.
type attachRec struct {
	VS         string         `json:"vs"`
	File       string         `json:"file"`
	CreatedAt  int64          `json:"created_at"`
	Status     string         `json:"status"`
	LastError  *lastError     `json:"last_error,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
	ACL        retrieve.ACL   `json:"acl"`
	Bytes      int64          `json:"bytes"`
	Batch      string         `json:"batch,omitempty"`
}

// lastError is a vector store file's last_error.
type lastError struct {
	Code    string `json:"code"` // server_error, unsupported_file or invalid_file
	Message string `json:"message"`
}

// fileLock is the lock key of a file (vector store ids never start so).
func fileLock(id string) string { return "file:" + id }

func attachKey(vs, file string) string { return vs + "/" + file }

func (st *apiStore) putAttach(ctx context.Context, r *attachRec) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return st.be.Put(ctx, kindAttach, attachKey(r.VS, r.File), b)
}

// isAPIDoc reports whether a document was made by attaching a file (the
// other documents come from sources or `switchyard ingest`, which set a
// Version).
func isAPIDoc(id, version string) bool {
	return strings.HasPrefix(id, fileIDPrefix) && version == ""
}

// unsupportedExts are file types that are not text: they are refused
// with unsupported_file rather than read as text.
var unsupportedExts = map[string]string{
	".pdf": "PDF", ".doc": "Word", ".docx": "Word", ".ppt": "PowerPoint", ".pptx": "PowerPoint",
	".xls": "Excel", ".xlsx": "Excel", ".odt": "OpenDocument", ".rtf": "RTF", ".epub": "EPUB",
	".png": "image", ".jpg": "image", ".jpeg": "image", ".gif": "image", ".webp": "image", ".bmp": "image",
	".zip": "archive", ".gz": "archive", ".tar": "archive", ".tgz": "archive", ".7z": "archive",
	".mp3": "audio", ".wav": "audio", ".mp4": "video", ".mov": "video", ".exe": "binary", ".bin": "binary",
}

// attach adds the file f to v with the attributes (already parsed) and
// records the outcome; it returns the vector store file. It fails only
// for what is the request's fault (a 403 on the ACL) or the store's.
func (a *apiCall) attach(ctx context.Context, v *vstore, f *fileRec, attrs map[string]any, batch string) (vsFileObject, error) {
	acl, meta, err := aclOf(attrs, a.p, "attributes")
	if err != nil {
		return vsFileObject{}, err
	}
	// The file's lock, then the vector store's (the order everywhere): a
	// file being deleted is not attached again behind its deletion.
	fl := a.st.lock(fileLock(f.ID))
	fl.Lock()
	defer fl.Unlock()
	if _, err := a.st.be.Get(ctx, kindFile, f.ID); errors.Is(err, errNotFound) {
		return vsFileObject{}, errNoObject("file_id", "File object", f.ID)
	} else if err != nil {
		return vsFileObject{}, err
	}
	mu := a.st.lock(v.id)
	mu.Lock()
	defer mu.Unlock()
	if !v.config { // deleted while this request waited
		if _, err := a.st.getVS(ctx, v.id); errors.Is(err, errNotFound) {
			return vsFileObject{}, errNoObject("vector_store_id", "vector store", v.id)
		}
	}
	r := &attachRec{VS: v.id, File: f.ID, CreatedAt: time.Now().Unix(), Attributes: attrs, ACL: acl, Bytes: f.Bytes, Batch: batch}
	if b, err := a.st.be.Get(ctx, kindAttach, attachKey(v.id, f.ID)); err == nil {
		var old attachRec
		if json.Unmarshal(b, &old) == nil && old.CreatedAt > 0 {
			r.CreatedAt = old.CreatedAt
			if batch == "" {
				r.Batch = old.Batch
			}
		}
	}
	n, addErr := a.index(ctx, v, f, meta, acl)
	if addErr != nil {
		r.Status, r.LastError = statusFailed, addErr
		// No half-indexed file: a document from an earlier attachment
		// goes too, so the record and the index agree.
		if _, err := v.coll.C.Delete(ctx, f.ID); err != nil {
			return vsFileObject{}, err
		}
	} else {
		r.Status = statusCompleted
	}
	if err := a.st.putAttach(ctx, r); err != nil {
		if addErr == nil {
			_, _ = v.coll.C.Delete(ctx, f.ID)
		}
		return vsFileObject{}, err
	}
	a.touch(ctx, v)
	e := vsEntry{id: f.ID, created: r.CreatedAt, status: r.Status, lastErr: r.LastError, attrs: attrs, bytes: f.Bytes, batch: r.Batch}
	if addErr == nil {
		a.l.log.Debug("vector store file attached", "vector_store", v.id, "file", f.ID, "chunks", n)
	}
	return a.vsFileObject(v, e), nil
}

// index adds a file's content to v's collection; a failure is the
// vector store file's last_error.
func (a *apiCall) index(ctx context.Context, v *vstore, f *fileRec, meta map[string]any, acl retrieve.ACL) (int, *lastError) {
	ext := strings.ToLower(path.Ext(f.Filename))
	if kind, bad := unsupportedExts[ext]; bad {
		return 0, &lastError{Code: "unsupported_file", Message: fmt.Sprintf("%s files (%s) are not supported: only text, Markdown, HTML and JSON Lines files are indexed.", kind, ext)}
	}
	if f.Bytes > v.coll.MaxSize {
		return 0, &lastError{Code: "invalid_file", Message: fmt.Sprintf("The file is %d bytes, over the vector store's max_file_size (%d bytes).", f.Bytes, v.coll.MaxSize)}
	}
	content, err := a.st.be.FileContent(ctx, f.ID)
	if err != nil {
		a.l.log.Error("vector store file: reading the file", "vector_store", v.id, "file", f.ID, "error", err)
		return 0, &lastError{Code: "server_error", Message: "The file's content could not be read (see the gateway's log)."}
	}
	d := retrieve.Document{ID: f.ID, Title: f.Filename, Format: retrieve.FormatOf(f.Filename), Content: content, Metadata: meta, ACL: acl}
	n, err := v.coll.C.Add(ctx, d)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, retrieve.ErrEmpty):
		return 0, &lastError{Code: "invalid_file", Message: "The file is empty: it holds no text to index."}
	case errors.Is(err, retrieve.ErrBinary):
		return 0, &lastError{Code: "unsupported_file", Message: "The file is not UTF-8 text (" + cleanErr(err) + "): only text, Markdown, HTML and JSON Lines files are indexed."}
	case errors.Is(err, retrieve.ErrTooLarge):
		return 0, &lastError{Code: "invalid_file", Message: fmt.Sprintf("The file is over the vector store's max_file_size (%d bytes).", v.coll.MaxSize)}
	case strings.Contains(err.Error(), "jsonl line"):
		return 0, &lastError{Code: "invalid_file", Message: "The JSON Lines file is malformed: " + cleanErr(err)}
	}
	a.l.log.Error("vector store file: indexing failed", "vector_store", v.id, "file", f.ID, "error", err)
	return 0, &lastError{Code: "server_error", Message: "The file could not be indexed (see the gateway's log)."}
}

// cleanErr is an error of retrieve without its package and document
// prefixes.
func cleanErr(err error) string {
	s := err.Error()
	for {
		t := strings.TrimPrefix(s, "retrieve: ")
		if i := strings.Index(t, ": "); strings.HasPrefix(t, "document \"") && i > 0 {
			t = t[i+2:]
		}
		if t == s {
			return s
		}
		s = t
	}
}

// touch sets v's last_active_at.
func (a *apiCall) touch(ctx context.Context, v *vstore) {
	r, err := a.st.getVS(ctx, v.id)
	if err != nil {
		return
	}
	r.LastActiveAt = time.Now().Unix()
	if err := a.st.putVS(ctx, r); err == nil {
		v.rec = r
	}
}

// detach removes a file's document and record from v.
func (a *apiCall) detach(ctx context.Context, v *vstore, fileID string) error {
	mu := a.st.lock(v.id)
	mu.Lock()
	defer mu.Unlock()
	if d, ok := v.coll.C.Doc(fileID); ok && isAPIDoc(d.ID, d.Version) {
		if _, err := v.coll.C.Delete(ctx, fileID); err != nil {
			return err
		}
	}
	return a.st.be.Delete(ctx, kindAttach, attachKey(v.id, fileID))
}

// vsEntry is one vector store file as a caller sees it: a document of the
// collection, or a failed attachment.
type vsEntry struct {
	id      string
	created int64
	status  string
	lastErr *lastError
	attrs   map[string]any
	bytes   int64
	batch   string
	api     bool // attached through the API (else from sources or ingest)
	doc     bool // the collection holds it
}

// vsFiles lists the vector store files of v the caller may see: the
// documents whose ACL admits it, and the failed attachments whose ACL
// would have.
func (a *apiCall) vsFiles(v *vstore) ([]vsEntry, error) {
	recs, err := a.st.be.List(a.ctx, kindAttach, v.id+"/")
	if err != nil {
		return nil, err
	}
	byFile := make(map[string]*attachRec, len(recs))
	for _, rr := range recs {
		var r attachRec
		if json.Unmarshal(rr.Val, &r) == nil {
			byFile[r.File] = &r
		}
	}
	var out []vsEntry
	seen := map[string]bool{}
	v.coll.C.Docs(func(d retrieve.DocInfo) bool {
		if !a.admin && !d.ACL.Allows(a.rp) {
			return true
		}
		seen[d.ID] = true
		e := vsEntry{id: d.ID, created: v.rec.CreatedAt, status: statusCompleted, doc: true}
		if r := byFile[d.ID]; r != nil && isAPIDoc(d.ID, d.Version) {
			e.api, e.created, e.attrs, e.bytes, e.batch = true, r.CreatedAt, r.Attributes, r.Bytes, r.Batch
			if r.Status != statusCompleted { // a record a crash left behind
				r.Status = statusCompleted
			}
		} else {
			e.attrs, e.api = d.Metadata, isAPIDoc(d.ID, d.Version)
			if t, ok := idTime(d.ID); ok && e.api {
				e.created = t
			}
			if !e.api {
				if f, ok := a.l.sourceFiles(v.id)[d.ID]; ok {
					if fi, err := os.Stat(f.path); err == nil {
						e.bytes = fi.Size()
					}
				}
			}
		}
		out = append(out, e)
		return true
	})
	for _, r := range byFile {
		if seen[r.File] || (!a.admin && !r.ACL.Allows(a.rp)) {
			continue
		}
		e := vsEntry{id: r.File, created: r.CreatedAt, status: r.Status, lastErr: r.LastError, attrs: r.Attributes, bytes: r.Bytes, batch: r.Batch, api: true}
		if r.Status == statusCompleted {
			// Recorded, but not in the collection: its index was made
			// anew (another embedder) and not reindexed yet.
			e.status, e.lastErr = statusFailed, &lastError{Code: "server_error",
				Message: "The file is not in the vector store's index (its collection was rebuilt): reindex it with POST /admin/vector_stores/" + v.id + "/reindex, or attach it again."}
		}
		out = append(out, e)
	}
	return out, nil
}

// vsFileObject is OpenAI's VectorStoreFileObject.
type vsFileObject struct {
	ID               string         `json:"id"`
	Object           string         `json:"object"`
	UsageBytes       int64          `json:"usage_bytes"`
	CreatedAt        int64          `json:"created_at"`
	VectorStoreID    string         `json:"vector_store_id"`
	Status           string         `json:"status"`
	LastError        *lastError     `json:"last_error"`
	ChunkingStrategy chunkingOut    `json:"chunking_strategy"`
	Attributes       map[string]any `json:"attributes"`
}

func (a *apiCall) vsFileObject(v *vstore, e vsEntry) vsFileObject {
	o := vsFileObject{ID: e.id, Object: "vector_store.file", CreatedAt: e.created, VectorStoreID: v.id, Status: e.status,
		LastError: e.lastErr, ChunkingStrategy: chunkingOf(v.coll), Attributes: e.attrs}
	if e.status == statusCompleted {
		o.UsageBytes = e.bytes
	}
	if o.Attributes == nil {
		o.Attributes = map[string]any{}
	}
	return o
}

// vsEntry finds one vector store file the caller may see.
func (a *apiCall) vsEntry(v *vstore, id string) (vsEntry, error) {
	entries, err := a.vsFiles(v)
	if err != nil {
		return vsEntry{}, err
	}
	for _, e := range entries {
		if e.id == id {
			return e, nil
		}
	}
	return vsEntry{}, errNoObject("file_id", "vector store file", id)
}

// serveVSFiles answers /v1/vector_stores/{id}/files[/{file_id}[/content]].
func (a *apiCall) serveVSFiles(v *vstore, rest []string) (any, error) {
	switch len(rest) {
	case 0:
		if a.ctx.IsPost() {
			return a.attachFile(v)
		}
		if !a.ctx.IsGet() {
			return nil, errMethod(a, "GET, POST")
		}
		p, err := parseList(a.ctx.QueryArgs(), 20, 100, true, true)
		if err != nil {
			return nil, err
		}
		entries, err := a.vsFiles(v)
		if err != nil {
			return nil, err
		}
		return a.vsFileList(v, entries, p, nil)
	case 1:
		e, err := a.vsEntry(v, rest[0])
		if err != nil {
			return nil, err
		}
		switch {
		case a.ctx.IsGet():
			return a.vsFileObject(v, e), nil
		case a.ctx.IsPost():
			return a.updateAttributes(v, e)
		default:
			return a.deleteVSFile(v, e)
		}
	case 2:
		if rest[1] != "content" {
			break
		}
		if !a.ctx.IsGet() {
			return nil, errMethod(a, "GET")
		}
		e, err := a.vsEntry(v, rest[0])
		if err != nil {
			return nil, err
		}
		return a.vsFileContent(v, e)
	}
	return nil, errUnknownPath(a)
}

// vsFileList answers a page of entries (those of batch, when not nil).
func (a *apiCall) vsFileList(v *vstore, entries []vsEntry, p listParams, batch map[string]bool) (any, error) {
	var sel []vsEntry
	for _, e := range entries {
		if (p.filter == "" || e.status == p.filter) && (batch == nil || batch[e.id]) {
			sel = append(sel, e)
		}
	}
	page, more, err := paginate(sel, func(e vsEntry) listKey { return listKey{e.created, e.id} }, p)
	if err != nil {
		return nil, err
	}
	objs := make([]vsFileObject, 0, len(page))
	for _, e := range page {
		objs = append(objs, a.vsFileObject(v, e))
	}
	return newListPage(objs, more, func(o vsFileObject) string { return o.ID }), nil
}

// attachRequest is OpenAI's CreateVectorStoreFileRequest.
type attachRequest struct {
	FileID           string          `json:"file_id"`
	Attributes       json.RawMessage `json:"attributes"`
	ChunkingStrategy json.RawMessage `json:"chunking_strategy"`
}

func (a *apiCall) attachFile(v *vstore) (any, error) {
	var req attachRequest
	if err := decodeBody(a, &req); err != nil {
		return nil, err
	}
	if req.FileID == "" {
		return nil, errInvalid("file_id", "Missing required parameter: 'file_id'.")
	}
	attrs, err := parseAttributes(req.Attributes, "attributes")
	if err != nil {
		return nil, err
	}
	if err := checkChunking(req.ChunkingStrategy, v.coll, "chunking_strategy"); err != nil {
		return nil, err
	}
	f, err := a.file(req.FileID, "file_id")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	return a.attach(ctx, v, f, attrs, "")
}

// apiEntry checks that e was attached through the API by the caller's
// scope (its file is the caller's), for changing or removing it.
func (a *apiCall) apiEntry(v *vstore, e vsEntry) (*fileRec, error) {
	if !e.api {
		return nil, errInvalid("file_id", "%s is a document of the config's sources or of `switchyard ingest`, not a file attached through the API: it is managed there.", e.id)
	}
	return a.file(e.id, "file_id")
}

func (a *apiCall) updateAttributes(v *vstore, e vsEntry) (any, error) {
	var req struct {
		Attributes json.RawMessage `json:"attributes"`
	}
	if err := decodeBody(a, &req); err != nil {
		return nil, err
	}
	if len(req.Attributes) == 0 {
		return nil, errInvalid("attributes", "Missing required parameter: 'attributes'.")
	}
	attrs, err := parseAttributes(req.Attributes, "attributes")
	if err != nil {
		return nil, err
	}
	f, err := a.apiEntry(v, e)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	return a.attach(ctx, v, f, attrs, "")
}

func (a *apiCall) deleteVSFile(v *vstore, e vsEntry) (any, error) {
	if !e.api {
		return nil, errInvalid("file_id", "%s is a document of the config's sources or of `switchyard ingest`, not a file attached through the API: it is managed there.", e.id)
	}
	if _, err := a.file(e.id, "file_id"); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			return nil, err
		}
		// The file is gone or not the caller's: only its scope may
		// detach it.
		return nil, errNoObject("file_id", "vector store file", e.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if err := a.detach(ctx, v, e.id); err != nil {
		return nil, err
	}
	return struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Deleted bool   `json:"deleted"`
	}{e.id, "vector_store.file.deleted", true}, nil
}

// contentPage is OpenAI's VectorStoreFileContentResponse.
type contentPage struct {
	Object   string     `json:"object"`
	Data     []textPart `json:"data"`
	HasMore  bool       `json:"has_more"`
	NextPage *string    `json:"next_page"`
}

type textPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// vsFileContent answers a document's chunks, one text part each.
func (a *apiCall) vsFileContent(v *vstore, e vsEntry) (any, error) {
	if !e.doc {
		return nil, errNoObject("file_id", "vector store file content", e.id)
	}
	chunks, err := a.docChunks(v, e)
	if err != nil {
		return nil, err
	}
	pg := contentPage{Object: "vector_store.file_content.page", Data: []textPart{}}
	for _, c := range chunks {
		pg.Data = append(pg.Data, textPart{Type: "text", Text: c.Text})
	}
	return pg, nil
}

// docChunks returns the chunks of a document: its content (the file's,
// or the source file's when it is unchanged) split as the collection
// splits, which gives the chunks it holds.
func (a *apiCall) docChunks(v *vstore, e vsEntry) ([]retrieve.Chunk, error) {
	d, ok := v.coll.C.Doc(e.id)
	if !ok {
		return nil, errNoObject("file_id", "vector store file", e.id)
	}
	opts := chunkOptions(v.coll)
	if isAPIDoc(d.ID, d.Version) {
		content, err := a.st.be.FileContent(a.ctx, d.ID)
		if errors.Is(err, errNotFound) {
			return nil, errNoObject("file_id", "vector store file content", e.id)
		}
		if err != nil {
			return nil, err
		}
		return retrieve.Split(content, d.Format, opts)
	}
	if f, ok := a.l.sourceFiles(v.id)[d.ID]; ok {
		if b, err := readLimited(f.path, v.coll.MaxSize); err == nil {
			if sd := sourceDoc(f, b); sd.Version == d.Version {
				return retrieve.Split(b, d.Format, opts)
			}
		}
	}
	return nil, errNoObject("file_id", "vector store file content", e.id+" (its source file changed or is not kept; it is searched as it was indexed)")
}

// chunkOptions are the chunking options a collection was opened with.
func chunkOptions(c *Coll) retrieve.ChunkOptions {
	return retrieve.ChunkOptions{MaxTokens: c.Spec.Chunking.MaxTokens, OverlapTokens: chunkOverlap(c.Spec.Chunking.OverlapTokens), MaxBytes: int(c.MaxSize)}
}

// File batches: POST .../file_batches attaches its files one after the
// other before answering, so a batch is always completed (its
// file_counts say how many failed); cancel answers it as it is.

// batchRec is a file batch's record.
type batchRec struct {
	ID        string   `json:"id"`
	VS        string   `json:"vs"`
	CreatedAt int64    `json:"created_at"`
	Files     []string `json:"files"`
}

// batchObject is OpenAI's VectorStoreFileBatchObject.
type batchObject struct {
	ID            string     `json:"id"`
	Object        string     `json:"object"`
	CreatedAt     int64      `json:"created_at"`
	VectorStoreID string     `json:"vector_store_id"`
	Status        string     `json:"status"`
	FileCounts    fileCounts `json:"file_counts"`
}

// maxBatchFiles bounds a batch, as OpenAI does.
const maxBatchFiles = 2000

type batchFile struct {
	FileID           string          `json:"file_id"`
	Attributes       json.RawMessage `json:"attributes"`
	ChunkingStrategy json.RawMessage `json:"chunking_strategy"`
}

// batchRequest is OpenAI's CreateVectorStoreFileBatchRequest.
type batchRequest struct {
	FileIDs          []string        `json:"file_ids"`
	Files            []batchFile     `json:"files"`
	Attributes       json.RawMessage `json:"attributes"`
	ChunkingStrategy json.RawMessage `json:"chunking_strategy"`
}

// serveBatches answers /v1/vector_stores/{id}/file_batches[/{batch_id}[/cancel|/files]].
func (a *apiCall) serveBatches(v *vstore, rest []string) (any, error) {
	if len(rest) == 0 {
		if !a.ctx.IsPost() {
			return nil, errMethod(a, "POST")
		}
		return a.createBatch(v)
	}
	if len(rest) > 2 {
		return nil, errUnknownPath(a)
	}
	b, err := a.batch(v, rest[0])
	if err != nil {
		return nil, err
	}
	if len(rest) == 1 {
		if !a.ctx.IsGet() {
			return nil, errMethod(a, "GET")
		}
		return a.batchObject(v, b)
	}
	switch rest[1] {
	case "cancel":
		if !a.ctx.IsPost() {
			return nil, errMethod(a, "POST")
		}
		return a.batchObject(v, b) // nothing is in progress
	case "files":
		if !a.ctx.IsGet() {
			return nil, errMethod(a, "GET")
		}
		p, err := parseList(a.ctx.QueryArgs(), 20, 100, true, true)
		if err != nil {
			return nil, err
		}
		entries, err := a.vsFiles(v)
		if err != nil {
			return nil, err
		}
		in := make(map[string]bool, len(b.Files))
		for _, f := range b.Files {
			in[f] = true
		}
		return a.vsFileList(v, entries, p, in)
	}
	return nil, errUnknownPath(a)
}

func (a *apiCall) batch(v *vstore, id string) (*batchRec, error) {
	raw, err := a.st.be.Get(a.ctx, kindBatch, v.id+"/"+id)
	if errors.Is(err, errNotFound) {
		return nil, errNoObject("batch_id", "vector store file batch", id)
	}
	if err != nil {
		return nil, err
	}
	var b batchRec
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// batchObject renders a batch with the counts of its files the caller
// may see.
func (a *apiCall) batchObject(v *vstore, b *batchRec) (batchObject, error) {
	entries, err := a.vsFiles(v)
	if err != nil {
		return batchObject{}, err
	}
	in := make(map[string]bool, len(b.Files))
	for _, f := range b.Files {
		in[f] = true
	}
	o := batchObject{ID: b.ID, Object: "vector_store.files_batch", CreatedAt: b.CreatedAt, VectorStoreID: v.id, Status: statusCompleted}
	for _, e := range entries {
		if in[e.id] {
			o.FileCounts.add(e.status)
		}
	}
	return o, nil
}

func (a *apiCall) createBatch(v *vstore) (any, error) {
	var req batchRequest
	if err := decodeBody(a, &req); err != nil {
		return nil, err
	}
	type item struct {
		f     *fileRec
		attrs map[string]any
	}
	var items []item
	switch {
	case len(req.FileIDs) > 0 && len(req.Files) > 0:
		return nil, errInvalid("files", "'file_ids' and 'files' are mutually exclusive: give one.")
	case len(req.FileIDs) == 0 && len(req.Files) == 0:
		return nil, errInvalid("file_ids", "Missing required parameter: 'file_ids' or 'files'.")
	case len(req.FileIDs)+len(req.Files) > maxBatchFiles:
		return nil, errInvalid("file_ids", "A batch holds at most %d files.", maxBatchFiles)
	case len(req.FileIDs) > 0:
		attrs, err := parseAttributes(req.Attributes, "attributes")
		if err != nil {
			return nil, err
		}
		if err := checkChunking(req.ChunkingStrategy, v.coll, "chunking_strategy"); err != nil {
			return nil, err
		}
		for i, id := range req.FileIDs {
			f, err := a.file(id, "file_ids["+strconv.Itoa(i)+"]")
			if err != nil {
				return nil, err
			}
			items = append(items, item{f, attrs})
		}
	default:
		for i, bf := range req.Files {
			p := "files[" + strconv.Itoa(i) + "]"
			if bf.FileID == "" {
				return nil, errInvalid(p+".file_id", "Missing required parameter: '%s.file_id'.", p)
			}
			attrs, err := parseAttributes(bf.Attributes, p+".attributes")
			if err != nil {
				return nil, err
			}
			if err := checkChunking(bf.ChunkingStrategy, v.coll, p+".chunking_strategy"); err != nil {
				return nil, err
			}
			f, err := a.file(bf.FileID, p+".file_id")
			if err != nil {
				return nil, err
			}
			items = append(items, item{f, attrs})
		}
	}
	// Every item's ACL is checked before anything is attached.
	for i, it := range items {
		if _, _, err := aclOf(it.attrs, a.p, "attributes"); err != nil {
			var ae *apiError
			if errors.As(err, &ae) && len(req.Files) > 0 {
				ae.Param = "files[" + strconv.Itoa(i) + "]." + ae.Param
			}
			return nil, err
		}
	}
	b := &batchRec{ID: newID(batchIDPrefix), VS: v.id, CreatedAt: time.Now().Unix()}
	for _, it := range items {
		b.Files = append(b.Files, it.f.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	if err := a.st.be.Put(ctx, kindBatch, v.id+"/"+b.ID, raw); err != nil {
		return nil, err
	}
	for _, it := range items {
		if _, err := a.attach(ctx, v, it.f, it.attrs, b.ID); err != nil {
			return nil, err
		}
	}
	return a.batchObject(v, b)
}
