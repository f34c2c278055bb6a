package cache

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/gateway"
)

// manager is the process's view of the cache stages: the admin endpoints
// (purge, feedback) reach every route's stores through it, and it keeps the
// purge epochs and the recent hits by request id. One per registry.
type manager struct {
	mu     sync.RWMutex
	stages map[*Stage]struct{}
	epochs map[string]uint32 // "owner\x00<owner>" and "route\x00<route>"

	servedMu sync.Mutex
	hits     map[string]servedHit
	order    []string // request ids in the order served, for the bound
	next     int

	pairsMu sync.Mutex
	pairs   []FalseHit // the latest false hits reported, for threshold tuning
}

// maxServed bounds the hits remembered for feedback; maxPairs the false
// hits kept.
const (
	maxServed = 100000
	maxPairs  = 1000
)

type servedHit struct {
	stage *Stage
	key   string    // exact entry
	sem   *semQuery // semantic entry
	at    time.Time
}

// FalseHit is a reported wrong answer from the cache: the request's last
// user turn and, for a semantic hit, the stored one it matched with their
// similarity.
type FalseHit struct {
	RequestID  string    `json:"request_id"`
	Route      string    `json:"route"`
	Kind       string    `json:"kind"` // hit or semantic-hit
	Query      string    `json:"query,omitempty"`
	Matched    string    `json:"matched,omitempty"`
	Similarity float32   `json:"similarity,omitempty"`
	ReportedAt time.Time `json:"reported_at"`
}

// Register adds the stage kind "cache" and its admin endpoints to reg.
func Register(reg *gateway.Registry) {
	m := &manager{stages: map[*Stage]struct{}{}, epochs: map[string]uint32{}, hits: map[string]servedHit{}}
	reg.Register(gateway.Factory{
		Kind: "cache",
		Doc:  "exact and semantic caching of complete answers, scoped by tenant, route and model",
		New:  func() gateway.Stage { return &Stage{m: m} },
	})
	reg.RegisterEndpoint(gateway.Endpoint{Method: "DELETE", Path: "/admin/cache", Admin: true, Handle: m.purge})
	reg.RegisterEndpoint(gateway.Endpoint{Method: "GET, POST", Path: "/admin/cache/feedback", Admin: true, Handle: m.feedback})
}

func (m *manager) add(s *Stage) {
	m.mu.Lock()
	m.stages[s] = struct{}{}
	m.mu.Unlock()
}

func (m *manager) remove(s *Stage) {
	m.mu.Lock()
	delete(m.stages, s)
	m.mu.Unlock()
}

// epoch is the purge generation of an owner and a route, part of every
// key: a purge bumps it, and the entries before it are never found again
// (they age out).
func (m *manager) epoch(owner, route string) uint64 {
	m.mu.RLock()
	o, r := m.epochs["owner\x00"+owner], m.epochs["route\x00"+route]
	m.mu.RUnlock()
	return uint64(o)<<32 | uint64(r)
}

// served remembers a hit for feedback.
func (m *manager) remember(id []byte, s *Stage, key string, sem *semQuery) {
	if len(id) == 0 {
		return
	}
	m.servedMu.Lock()
	defer m.servedMu.Unlock()
	rid := string(id)
	if len(m.order) < maxServed {
		m.order = append(m.order, rid)
	} else {
		delete(m.hits, m.order[m.next])
		m.order[m.next] = rid
		m.next = (m.next + 1) % maxServed
	}
	m.hits[rid] = servedHit{stage: s, key: key, sem: sem, at: time.Now()}
}

func adminError(ctx *fasthttp.RequestCtx, status int, msg string) {
	gateway.WriteError(ctx, &gateway.Error{Status: status, Code: gateway.CodeInvalidRequest, Message: msg})
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, _ := json.Marshal(v)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// purge serves DELETE /admin/cache: everything, or ?tenant=, ?key= or
// ?route=.
func (m *manager) purge(ctx *fasthttp.RequestCtx, _ *gateway.Principal) {
	args := ctx.QueryArgs()
	var scopes []string
	for _, k := range []string{"tenant", "key", "route"} {
		if v := args.Peek(k); len(v) > 0 {
			switch k {
			case "tenant":
				scopes = append(scopes, "owner\x00tenant:"+string(v))
			case "key":
				scopes = append(scopes, "owner\x00key:"+string(v))
			case "route":
				scopes = append(scopes, "route\x00"+string(v))
			}
		}
	}
	for k := range args.All() {
		switch string(k) {
		case "tenant", "key", "route":
		default:
			adminError(ctx, 400, fmt.Sprintf("unknown parameter %q (want tenant, key or route)", k))
			return
		}
	}
	m.mu.Lock()
	if len(scopes) == 0 {
		for s := range m.stages {
			if s.exact != nil {
				s.exact.clear()
			}
			if s.sem != nil {
				s.sem.clear()
			}
			s.gauges()
		}
	}
	for _, sc := range scopes {
		m.epochs[sc]++
	}
	m.mu.Unlock()
	what := "all"
	if len(scopes) > 0 {
		what = string(ctx.QueryArgs().QueryString())
	}
	writeJSON(ctx, 200, map[string]any{"object": "cache.purge", "purged": what})
}

// feedback serves POST /admin/cache/feedback {"request_id": "..."}: the
// answer served to that request from the cache was wrong. The entry is
// evicted, counted, and the pair kept (GET lists the latest).
func (m *manager) feedback(ctx *fasthttp.RequestCtx, _ *gateway.Principal) {
	if ctx.IsGet() {
		m.pairsMu.Lock()
		out := append([]FalseHit{}, m.pairs...)
		m.pairsMu.Unlock()
		writeJSON(ctx, 200, map[string]any{"object": "list", "data": out})
		return
	}
	var req struct {
		RequestID string `json:"request_id"`
	}
	if err := gateway.DecodeStrict(ctx.PostBody(), &req); err != nil {
		gateway.WriteError(ctx, err)
		return
	}
	if req.RequestID == "" {
		adminError(ctx, 400, "request_id is required")
		return
	}
	m.servedMu.Lock()
	h, ok := m.hits[req.RequestID]
	delete(m.hits, req.RequestID)
	m.servedMu.Unlock()
	if !ok {
		adminError(ctx, 404, fmt.Sprintf("no cached answer was served to request %q (or it is too old to remember)", req.RequestID))
		return
	}
	fh := FalseHit{RequestID: req.RequestID, Route: h.stage.route, Kind: Hit, ReportedAt: time.Now().UTC()}
	if h.key != "" && h.stage.exact != nil {
		h.stage.exact.del(h.key)
		if h.stage.shared != nil {
			h.stage.shared.del(h.key)
		}
	}
	if h.sem != nil && h.stage.sem != nil {
		fh.Kind, fh.Query, fh.Matched, fh.Similarity = SemanticHit, h.sem.text, h.sem.matched, h.sem.score
		h.stage.sem.evict(h.sem)
	}
	h.stage.met.falseHits.Inc()
	h.stage.gauges()
	m.pairsMu.Lock()
	if len(m.pairs) >= maxPairs {
		m.pairs = append(m.pairs[:0], m.pairs[1:]...)
	}
	m.pairs = append(m.pairs, fh)
	m.pairsMu.Unlock()
	writeJSON(ctx, 200, map[string]any{"object": "cache.feedback", "request_id": req.RequestID, "evicted": true})
}
