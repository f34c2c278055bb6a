package gateway

import (
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"

	"switchyard/internal/jsonscan"
)

// storedObjects remembers which pool and backend made an object that an
// upstream stores (a Responses API response), and for which key, so that
// GET /v1/responses/{id} goes back to that backend and only the key that
// made it may read it. It is bounded: the oldest ids are forgotten first.
// It lives in the Server, across reloads, and is per process (replicas do
// not share it).
type storedObjects struct {
	mu   sync.Mutex
	m    map[string]storedRef
	ring []string
	next int
}

type storedRef struct{ pool, backend, keyID string }

// maxStoredObjects bounds the ids remembered.
const maxStoredObjects = 1 << 16

func (s *storedObjects) record(id []byte, ref storedRef) {
	if len(id) == 0 || len(id) > 256 {
		return
	}
	k := string(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]storedRef)
		s.ring = make([]string, maxStoredObjects)
	}
	if _, ok := s.m[k]; !ok {
		if old := s.ring[s.next]; old != "" {
			delete(s.m, old)
		}
		s.ring[s.next] = k
		s.next = (s.next + 1) % maxStoredObjects
	}
	s.m[k] = ref
}

func (s *storedObjects) lookup(id []byte) (storedRef, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[string(id)]
	return r, ok
}

// recordStored notes the object an answer of x created, when its
// operation stores one. data is the body, or the stream's first event.
func (x *Exchange) recordStored(data []byte) {
	if x.Op != OpResponses || x.target == nil {
		return
	}
	obj := data
	if r, ok := jsonscan.Lookup(data, "response"); ok { // a stream's response.created event
		obj = r
	}
	raw, ok := jsonscan.Lookup(obj, "id")
	if !ok || len(raw) < 2 || raw[0] != '"' {
		return
	}
	id, err := strconv.Unquote(string(raw))
	if err != nil {
		return
	}
	ref := storedRef{pool: x.Pool.Name, backend: x.target.Upstream.Name}
	if x.Principal != nil {
		ref.keyID = x.Principal.KeyID
	}
	x.srv.stored.record([]byte(id), ref)
}

// storedObject routes an operation on a stored object to the pool and
// backend that made it. An unknown id, one another key made, and one whose
// backend left its pool all get the same 404.
func (s *Server) storedObject(x *Exchange, gen *Generation) error {
	notFound := &Error{Status: fasthttp.StatusNotFound, Code: CodeInvalidRequest, Param: "response_id",
		Message: "No response found with id " + strconv.Quote(string(x.pathArg)) + "."}
	ref, ok := s.stored.lookup(x.pathArg)
	if !ok || (x.Principal != nil && ref.keyID != x.Principal.KeyID) {
		return notFound
	}
	pool := gen.Router.Pool([]byte(ref.pool))
	if pool == nil {
		return notFound
	}
	for _, t := range pool.Targets {
		if t.Upstream.Name == ref.backend {
			x.pin = t
		}
	}
	if x.pin == nil {
		return notFound
	}
	x.Pool = pool
	x.RequestModel = append(x.RequestModel[:0], ref.pool...)
	return nil
}
