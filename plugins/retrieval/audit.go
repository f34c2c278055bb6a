package retrieval

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/gateway"
)

// auditLog remembers, per request id, which chunks the retrieval stage gave
// the model (for audit and for evaluating answers against their sources),
// the latest maxAudit requests in memory, served at GET
// /admin/retrieval/audit?request_id=. Each record is also logged. One per
// process (it outlives generations).
type auditLog struct {
	mu    sync.Mutex
	byID  map[string]*auditRecord
	order []string // ring of request ids
	next  int
}

// maxAudit bounds the records kept.
const maxAudit = 100000

// auditRecord is one request's retrieval.
type auditRecord struct {
	RequestID  string        `json:"request_id"`
	Route      string        `json:"route"`
	Collection string        `json:"collection"`
	Query      string        `json:"query,omitempty"` // with the stage's audit_query only
	QuerySHA   string        `json:"query_sha256"`
	At         time.Time     `json:"at"`
	Sources    []auditSource `json:"sources"`
}

type auditSource struct {
	N       int     `json:"n"`
	ChunkID string  `json:"chunk_id"`
	DocID   string  `json:"document_id"`
	Score   float64 `json:"score"`
	Cut     bool    `json:"cut,omitempty"` // the text was shortened to the budget
}

func newAuditLog() *auditLog { return &auditLog{byID: map[string]*auditRecord{}} }

// record keeps what a request was given: the query's SHA-256, and its text
// only when keepQuery (the stage's audit_query) says so.
func (a *auditLog) record(requestID, route, coll, query string, keepQuery bool, used []source) {
	if a == nil || requestID == "" {
		return
	}
	sum := sha256.Sum256([]byte(query))
	r := &auditRecord{RequestID: requestID, Route: route, Collection: coll, QuerySHA: hex.EncodeToString(sum[:]), At: time.Now().UTC(), Sources: []auditSource{}}
	if keepQuery {
		r.Query = cutUTF8(query, 2000)
	}
	for _, u := range used {
		r.Sources = append(r.Sources, auditSource{N: u.n, ChunkID: u.hit.ChunkID, DocID: u.hit.DocID, Score: u.hit.Score, Cut: len(u.text) < len(u.hit.Text)})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.byID[requestID]; !dup {
		if len(a.order) < maxAudit {
			a.order = append(a.order, requestID)
		} else {
			delete(a.byID, a.order[a.next])
			a.order[a.next] = requestID
			a.next = (a.next + 1) % maxAudit
		}
	}
	a.byID[requestID] = r
}

// serve answers GET /admin/retrieval/audit?request_id=ID.
func (a *auditLog) serve(ctx *fasthttp.RequestCtx, _ *gateway.Principal) {
	id := string(ctx.QueryArgs().Peek("request_id"))
	if id == "" {
		gateway.WriteError(ctx, &gateway.Error{Status: 400, Code: gateway.CodeInvalidRequest, Param: "request_id", Message: "request_id: required (the x-request-id of the request)"})
		return
	}
	a.mu.Lock()
	r := a.byID[id]
	a.mu.Unlock()
	if r == nil {
		gateway.WriteError(ctx, &gateway.Error{Status: 404, Code: gateway.CodeNotFound, Message: "no retrieval recorded for request " + id + " (the latest 100000 are kept)"})
		return
	}
	b, _ := json.Marshal(r)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
