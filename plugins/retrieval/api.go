package retrieval

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/internal/respool"
	"switchyard/internal/retrieve"
)

// This file is the frame of the OpenAI Files and Vector Stores APIs
// (files.go, vstores*.go): their state, their routing, the callers' scopes
// and the OpenAI-shaped errors. docs/retrieval-api.md documents them.
//
// Who sees what. A caller's scope is its tenant when its key has one,
// else its key; an open gateway (no keys) has the one empty scope. A file
// belongs to the scope that uploaded it and is visible (listed, read,
// attached, deleted) only there; its bytes only to callers whom every
// document made of it admits. A run-time vector store belongs to its
// creator's scope; the config's collections are vector stores everyone
// sees, whose documents each caller sees as its ACL says. Lists, counts,
// usage and search results hold only what the caller may see.

// fileIDPrefix starts the ids of the Files API's files.
const fileIDPrefix = "file-"

// Id prefixes of the other objects the APIs make.
const (
	vsIDPrefix    = "vs_"
	batchIDPrefix = "vsfb_"
)

// apiState is what the Files and Vector Stores APIs keep per generation.
type apiState struct {
	st      *apiStore // nil while validating
	maxFile int64     // the largest upload: the largest max_file_size

	srcOnce sync.Once
	srcs    map[string]map[string]sourceFile // config collection -> document id -> its source file
}

// apiStore is the APIs' state shared by generations (a resource): the
// backend, the run-time vector stores' collections, and the write locks
// of the vector stores. It lives while generations with the same data_dir
// and store.postgres.dsn use it.
type apiStore struct {
	be       apiBackend
	log      *slog.Logger
	cfg      *config.Config // of the generation that opened it: its data_dir and DSN are the store's
	dataPath string
	pg       bool

	mu      sync.Mutex
	runtime map[string]*Coll       // run-time vector stores' collections, by id
	locks   map[string]*sync.Mutex // serializes the writes to a vector store (by id) and to a file (fileLock)
}

// apiStoreKey is the resource key of an apiStore.
type apiStoreKey struct {
	Dir string
	DSN string // a hash of it
}

// openTimeoutAPI bounds opening the backend.
const openTimeoutAPI = time.Minute

func openAPIStore(env *gateway.Env, cfg *config.Config) (*apiStore, error) {
	k := apiStoreKey{Dir: cfg.DataPath()}
	dsn := cfg.Store.Postgres.DSN.Value()
	if dsn != "" {
		sum := sha256.Sum256([]byte(dsn))
		k.DSN = hex.EncodeToString(sum[:8])
	}
	key, err := respool.Key("retrieval.api", k)
	if err != nil {
		return nil, err
	}
	return gateway.Resource(env, key, func() (*apiStore, error) {
		st := &apiStore{log: env.Log, cfg: cfg, dataPath: cfg.DataPath(), pg: dsn != "",
			runtime: map[string]*Coll{}, locks: map[string]*sync.Mutex{}}
		if dsn != "" {
			ctx, cancel := context.WithTimeout(context.Background(), openTimeoutAPI)
			defer cancel()
			be, err := openPGBackend(ctx, dsn)
			if err != nil {
				return nil, err
			}
			st.be = be
		} else {
			be, err := openLocalBackend(filepath.Join(cfg.DataPath(), "files"))
			if err != nil {
				return nil, err
			}
			st.be = be
		}
		if err := st.openRuntimeAll(); err != nil {
			st.Close()
			return nil, err
		}
		return st, nil
	})
}

// Close closes the run-time collections and the backend.
func (st *apiStore) Close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	var errs []error
	for id, c := range st.runtime {
		errs = append(errs, c.Close())
		delete(st.runtime, id)
	}
	errs = append(errs, st.be.Close())
	return errors.Join(errs...)
}

// lock returns the write lock of the vector store id.
func (st *apiStore) lock(id string) *sync.Mutex {
	st.mu.Lock()
	defer st.mu.Unlock()
	m := st.locks[id]
	if m == nil {
		m = &sync.Mutex{}
		st.locks[id] = m
	}
	return m
}

// dropLock forgets the lock key (of a deleted file or vector store); a
// holder still waiting on it keeps its own.
func (st *apiStore) dropLock(key string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.locks, key)
}

// registerAPI adds the Files and Vector Stores endpoints.
func registerAPI(reg *gateway.Registry) {
	reg.RegisterEndpoint(gateway.Endpoint{Method: "GET, POST", Path: "/v1/files", Handle: apiHandler(serveFiles)})
	reg.RegisterEndpoint(gateway.Endpoint{Method: "GET, DELETE", Path: "/v1/files/", Handle: apiHandler(serveFile)})
	reg.RegisterEndpoint(gateway.Endpoint{Method: "GET, POST", Path: "/v1/vector_stores", Handle: apiHandler(serveVectorStores)})
	reg.RegisterEndpoint(gateway.Endpoint{Method: "GET, POST, DELETE", Path: "/v1/vector_stores/", Handle: apiHandler(serveVectorStore)})
	reg.RegisterEndpoint(gateway.Endpoint{Method: "POST", Path: "/admin/vector_stores/", Admin: true, Handle: apiHandler(serveAdminVectorStore)})
}

// openAPI prepares the APIs' state when the generation is built (env.Live
// false: validation only).
func (l *Library) openAPI(env *gateway.Env) error {
	l.api.maxFile = config.DefaultMaxFileSize
	if len(l.cfg.Collections) > 0 {
		l.api.maxFile = 0
		for _, c := range l.cfg.Collections {
			l.api.maxFile = max(l.api.maxFile, int64(c.MaxFileSize))
		}
	}
	if !env.Live || len(l.cfg.Collections) == 0 {
		// Without collections the APIs have nothing to serve, and the
		// store (whose directory is locked) is not opened: replicas that
		// share a data_dir and use no retrieval keep starting.
		return nil
	}
	st, err := openAPIStore(env, l.cfg)
	if err != nil {
		field := "data_dir"
		if l.cfg.Store.Postgres.DSN != "" {
			field = "store.postgres.dsn"
		}
		return l.cfg.Errorf(field, "the Files and Vector Stores APIs' store: %v", err)
	}
	l.api.st = st
	// The config's collections get a record the first time (their
	// created_at, the metadata the API may set).
	ctx, cancel := context.WithTimeout(context.Background(), openTimeoutAPI)
	defer cancel()
	now := time.Now().Unix()
	for _, name := range l.names {
		if _, err := st.be.Get(ctx, kindVS, name); errors.Is(err, errNotFound) {
			rec := vsRec{ID: name, Name: name, CreatedAt: now, LastActiveAt: now}
			if err := st.putVS(ctx, &rec); err != nil {
				return fmt.Errorf("the vector store record of collection %q: %w", name, err)
			}
		} else if err != nil {
			return fmt.Errorf("the vector store record of collection %q: %w", name, err)
		}
	}
	return nil
}

// closeAPI releases it when the generation retires: the store is a
// resource, released with the generation's lease.
func (l *Library) closeAPI() error { return nil }

// sourceFiles returns the source files of a config collection by document
// id (computed once per generation).
func (l *Library) sourceFiles(coll string) map[string]sourceFile {
	l.api.srcOnce.Do(func() {
		l.api.srcs = map[string]map[string]sourceFile{}
		for _, spec := range l.cfg.Collections {
			files, err := expandSources(configBase(l.cfg), spec.Sources)
			if err != nil {
				continue
			}
			m := make(map[string]sourceFile, len(files))
			for _, f := range files {
				m[f.id] = f
			}
			l.api.srcs[spec.Name] = m
		}
	})
	return l.api.srcs[coll]
}

// apiCall is one request to the APIs.
type apiCall struct {
	ctx   *fasthttp.RequestCtx
	l     *Library
	st    *apiStore
	p     *gateway.Principal // nil: an open gateway, or the admin API
	rp    retrieve.Principal
	scope string
	admin bool
}

// apiHandler adapts a handler of the APIs to an endpoint: it finds the
// generation's library, answers 503 without one, and writes the handler's
// value as JSON or its error the OpenAI way.
func apiHandler(h func(a *apiCall) (any, error)) func(ctx *fasthttp.RequestCtx, p *gateway.Principal) {
	return func(ctx *fasthttp.RequestCtx, p *gateway.Principal) {
		l := libraryOf(ctx)
		if l != nil && l.api.st == nil && len(l.cfg.Collections) == 0 {
			writeAPIError(ctx, &apiError{Status: fasthttp.StatusNotFound, Type: "invalid_request_error",
				Message: "the Files and Vector Stores APIs are off: the gateway's config has no collections (docs/retrieval.md)"})
			return
		}
		if l == nil || l.api.st == nil {
			writeAPIError(ctx, &apiError{Status: fasthttp.StatusServiceUnavailable, Type: "server_error",
				Message: "the Files and Vector Stores APIs are not available (the retrieval service is not open)"})
			return
		}
		a := &apiCall{ctx: ctx, l: l, st: l.api.st, p: p, rp: principalOf(p), scope: scopeOf(p)}
		v, err := h(a)
		if err != nil {
			var e *apiError
			if !errors.As(err, &e) {
				l.log.Error("files and vector stores API: internal error", "method", string(ctx.Method()), "path", string(ctx.Path()), "error", err)
				e = &apiError{Status: fasthttp.StatusInternalServerError, Type: "server_error", Message: "internal error (see the gateway's log)"}
			}
			writeAPIError(ctx, e)
			return
		}
		switch b := v.(type) {
		case nil:
		case rawBody:
			ctx.SetContentType(b.contentType)
			ctx.SetBody(b.body)
		default:
			body, err := json.Marshal(v)
			if err != nil {
				l.log.Error("files and vector stores API: encoding the answer", "error", err)
				writeAPIError(ctx, &apiError{Status: fasthttp.StatusInternalServerError, Type: "server_error", Message: "internal error (see the gateway's log)"})
				return
			}
			ctx.SetContentType("application/json")
			ctx.SetBody(body)
		}
	}
}

// rawBody is an answer that is not JSON (a file's content).
type rawBody struct {
	contentType string
	body        []byte
}

// scopeOf is the scope a caller's files and vector stores belong to.
func scopeOf(p *gateway.Principal) string {
	switch {
	case p == nil:
		return ""
	case p.Tenant != "":
		return "tenant:" + p.Tenant
	default:
		return "key:" + p.KeyID
	}
}

// apiError is an error answer: {"error": {"message", "type", "param",
// "code"}}, an empty Param or Code written as null.
type apiError struct {
	Status  int
	Type    string
	Param   string
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

// errInvalid is a 400 invalid_request_error.
func errInvalid(param, format string, args ...any) *apiError {
	return &apiError{Status: fasthttp.StatusBadRequest, Type: "invalid_request_error", Param: param, Message: fmt.Sprintf(format, args...)}
}

// errNoObject is the 404 of an object that does not exist or that the
// caller may not see (the same answer: nothing is learned of others').
func errNoObject(param, what, id string) *apiError {
	return &apiError{Status: fasthttp.StatusNotFound, Type: "invalid_request_error", Param: param, Message: "No such " + what + ": " + id}
}

// errPermission is a 403 permission_error.
func errPermission(param, format string, args ...any) *apiError {
	return &apiError{Status: fasthttp.StatusForbidden, Type: "permission_error", Param: param, Message: fmt.Sprintf(format, args...)}
}

// errMethod is the 405 of a path that does not take the method.
func errMethod(a *apiCall, allow string) *apiError {
	a.ctx.Response.Header.Set("allow", allow)
	return &apiError{Status: fasthttp.StatusMethodNotAllowed, Type: "invalid_request_error",
		Message: "method " + string(a.ctx.Method()) + " not allowed on " + string(a.ctx.Path()) + "; use " + allow}
}

// errUnknownPath is the 404 of a path under the APIs' prefixes that names
// no endpoint.
func errUnknownPath(a *apiCall) *apiError {
	return &apiError{Status: fasthttp.StatusNotFound, Type: "invalid_request_error", Message: "unknown path " + string(a.ctx.Path())}
}

type errorBody struct {
	Error errorFields `json:"error"`
}

type errorFields struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func writeAPIError(ctx *fasthttp.RequestCtx, e *apiError) {
	f := errorFields{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		f.Param = &e.Param
	}
	if e.Code != "" {
		f.Code = &e.Code
	}
	body, _ := json.Marshal(errorBody{Error: f})
	ctx.Response.ResetBody()
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// pathSegments splits the request's path after prefix into its segments,
// each unescaped from the path as sent (a document id may hold a '/',
// sent as %2F); ok is false for a malformed escape.
func pathSegments(ctx *fasthttp.RequestCtx, prefix string) (segs []string, ok bool) {
	raw := string(ctx.URI().PathOriginal())
	if i := strings.Index(raw, "://"); i >= 0 { // an absolute request URI
		rest := raw[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return nil, false
		}
		raw = rest[j:]
	}
	if !strings.HasPrefix(raw, prefix) {
		// Not as sent (a path the server normalized): use the decoded one.
		raw = string(ctx.Path())
		if !strings.HasPrefix(raw, prefix) {
			return nil, false
		}
	}
	raw = strings.TrimSuffix(raw[len(prefix):], "/")
	if raw == "" {
		return nil, true
	}
	for _, s := range strings.Split(raw, "/") {
		u, err := url.PathUnescape(s)
		if err != nil || u == "" {
			return nil, false
		}
		segs = append(segs, u)
	}
	return segs, true
}

// newID returns prefix followed by the time in microseconds (14 hex
// digits, so ids sort by creation) and 48 random bits.
func newID(prefix string) string {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	return prefix + fmt.Sprintf("%014x", time.Now().UnixMicro()) + hex.EncodeToString(rnd[:])
}

// idTime returns the creation time (Unix seconds) of an id newID made
// with one of the APIs' prefixes.
func idTime(id string) (int64, bool) {
	var rest string
	for _, p := range []string{fileIDPrefix, vsIDPrefix, batchIDPrefix} {
		if strings.HasPrefix(id, p) {
			rest = id[len(p):]
			break
		}
	}
	if len(rest) != 26 {
		return 0, false
	}
	us, err := strconv.ParseUint(rest[:14], 16, 64)
	if err != nil || us > 1<<62 {
		return 0, false
	}
	if _, err := hex.DecodeString(rest[14:]); err != nil {
		return 0, false
	}
	return int64(us / 1e6), true
}

// decodeBody decodes a JSON request body strictly into v: an unknown
// field is a 400 naming it, as OpenAI answers.
func decodeBody(a *apiCall, v any) error {
	body := a.ctx.PostBody()
	if len(body) == 0 {
		return errInvalid("", "the request body must be a JSON object")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			f = strings.Trim(f, `"`)
			return errInvalid(f, "Unrecognized request argument supplied: %s", f)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errInvalid(te.Field, "Invalid type for '%s': expected %s, got a JSON %s.", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return errInvalid("", "the request body is not valid JSON: %s", strings.TrimPrefix(msg, "json: "))
	}
	if dec.More() {
		return errInvalid("", "the request body holds more than one JSON value")
	}
	return nil
}

// jsonKind names a Go kind as JSON calls it.
func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "a boolean"
	case "ptr", "interface":
		return "a value"
	}
	return "a number"
}
