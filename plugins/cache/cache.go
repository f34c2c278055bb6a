// Package cache is the `cache` stage: an exact cache of complete answers
// (ristretto, bounded in bytes, entries zstd-compressed) and a semantic
// cache (an embedder and an in-process vector index) that answers a
// near-identical last user turn in an identical context.
//
//	chain:
//	  - cache:
//	      exact: {ttl: 1h, max_bytes: 64MiB}
//	      semantic: {threshold: 0.9, embedder: builtin, ttl: 1h, max_entries: 100000}
//
// Entries are scoped by owner (the tenant, else the key; or global), route,
// model pool and operation: never a hit across them. Only deterministic
// requests (temperature 0 or a seed) are cached unless the route sets
// nondeterministic: true. Only complete answers are stored: not failed,
// filtered, cut off (finish_reason length, unless allow_truncated) or
// abandoned ones. A hit is served to plain and streaming clients alike (a
// stream replays the stored answer as chunks, with the usage chunk when
// asked). Responses carry x-switchyard-cache: hit, semantic-hit, miss or
// bypass; clients skip the cache with cache-control: no-store or
// x-switchyard-cache: bypass, and refresh an entry with cache-control:
// no-cache or x-switchyard-cache: refresh.
package cache

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/internal/embed"
	"switchyard/internal/respool"
)

// Header is the response (and request) header of the cache's outcome.
const Header = "X-Switchyard-Cache"

// Outcomes, as x-switchyard-cache says them.
const (
	Hit         = "hit"
	SemanticHit = "semantic-hit"
	Miss        = "miss"
	Bypass      = "bypass"
)

// Defaults.
const (
	DefaultTTL      = time.Hour
	DefaultMaxBytes = 64 << 20
)

// Exact configures the exact cache.
type Exact struct {
	// Enabled turns the exact cache off with false (default true).
	Enabled *bool `yaml:"enabled"`
	// TTL is how long an entry lives (default 1h).
	TTL config.Duration `yaml:"ttl"`
	// MaxBytes bounds the route's entries, compressed, with a fixed
	// overhead each (default 64MiB).
	MaxBytes config.Size `yaml:"max_bytes"`
}

// Stage holds the stage's settings; docs/cache.md documents each key.
type Stage struct {
	// Exact is the exact cache (on by default).
	Exact Exact `yaml:"exact"`
	// Semantic is the semantic cache (off unless set).
	Semantic *Semantic `yaml:"semantic"`
	// Nondeterministic caches requests without temperature 0 or a seed
	// too (default false: their answers are meant to vary).
	Nondeterministic bool `yaml:"nondeterministic"`
	// AllowTruncated stores answers cut off by max_tokens (finish_reason
	// length); by default they are not stored.
	AllowTruncated bool `yaml:"allow_truncated"`
	// Shared shares the cache across replicas through Redis.
	Shared Shared `yaml:"shared"`
	// Scope is whose requests share entries: tenant (default: the
	// caller's tenant, else its key), key, or global (everyone's; only
	// for routes without private data).
	Scope string `yaml:"scope"`

	m        *manager
	route    string
	ttl      time.Duration
	exact    *exactStore
	sem      *semStore
	shared   *sharedStore
	embedder embed.Embedder
	met      stageMetrics
	bufs     sync.Pool // *[]byte
}

type stageMetrics struct {
	hits, semHits, misses, bypass, stores, skipped *metrics.Counter
	falseHits                                      *metrics.Counter
	similarity                                     *metrics.PrometheusHistogram
	bytes, entries, semEntries                     *metrics.Gauge
	evictions                                      *metrics.Counter
}

// gauges updates the exact cache's size gauges.
func (s *Stage) gauges() {
	if s.exact != nil && s.met.bytes != nil {
		s.met.bytes.Set(float64(s.exact.bytes.Load()))
		s.met.entries.Set(float64(s.exact.entries.Load()))
		s.met.evictions.Set(uint64(s.exact.evictions.Load()))
	}
	if s.sem != nil && s.met.semEntries != nil {
		s.met.semEntries.Set(float64(s.sem.Len()))
	}
}

// Provision resolves the settings and takes the route's stores from the
// resource pool (so they survive reloads that keep their settings).
func (s *Stage) Provision(env *gateway.Env) error {
	switch s.Scope {
	case "", "tenant":
		s.Scope = "tenant"
	case "key", "global":
	default:
		return fmt.Errorf("scope: unknown %q (want tenant, key or global)", s.Scope)
	}
	s.route = env.Route
	s.ttl = s.Exact.TTL.D()
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.ttl < 0 {
		return errors.New("exact.ttl: must not be negative")
	}
	maxBytes := int64(s.Exact.MaxBytes)
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	if maxBytes < 0 {
		return errors.New("exact.max_bytes: must not be negative")
	}
	if s.Exact.Enabled == nil || *s.Exact.Enabled {
		key, err := respool.Key("cache.exact", struct {
			Route    string
			MaxBytes int64
		}{s.route, maxBytes})
		if err != nil {
			return err
		}
		if s.exact, err = gateway.Resource(env, key, func() (*exactStore, error) { return newExactStore(maxBytes) }); err != nil {
			return err
		}
	}
	if s.Semantic != nil {
		if err := s.provisionSemantic(env); err != nil {
			return fmt.Errorf("semantic: %w", err)
		}
	}
	if s.Shared.Redis != "" {
		if err := s.provisionShared(env); err != nil {
			return fmt.Errorf("shared: %w", err)
		}
	}
	if s.exact == nil && s.sem == nil {
		return errors.New("both the exact and the semantic cache are off")
	}
	q := `{route=` + strconv.Quote(s.route) + `}`
	s.met = stageMetrics{
		hits:      env.Metrics.Counter("switchyard_cache_hits_total"+q, "Answers served from the exact cache, by route."),
		semHits:   env.Metrics.Counter("switchyard_cache_semantic_hits_total"+q, "Answers served from the semantic cache, by route."),
		misses:    env.Metrics.Counter("switchyard_cache_misses_total"+q, "Cacheable requests not found in the cache, by route."),
		bypass:    env.Metrics.Counter("switchyard_cache_bypass_total"+q, "Requests the cache let through untouched (asked to, or not cacheable), by route."),
		stores:    env.Metrics.Counter("switchyard_cache_stores_total"+q, "Answers stored, by route."),
		falseHits: env.Metrics.Counter("switchyard_cache_false_hits_total"+q, "Cached answers reported wrong through /admin/cache/feedback, by route."),
		skipped:   env.Metrics.Counter("switchyard_cache_not_stored_total"+q, "Answers not stored (incomplete, failed, filtered, truncated or refused by the cache), by route."),
		similarity: env.Metrics.Histogram("switchyard_cache_semantic_similarity"+q,
			"Similarity of the best semantic candidate of each lookup, by route.",
			[]float64{0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.98, 0.99, 1}),
	}
	if s.exact != nil {
		s.met.bytes = env.Metrics.Gauge("switchyard_cache_bytes"+q, "Bytes held by the exact cache (compressed entries and their overhead), by route.")
		s.met.entries = env.Metrics.Gauge("switchyard_cache_entries"+q, "Entries in the exact cache, by route.")
		s.met.evictions = env.Metrics.Counter("switchyard_cache_evictions_total"+q, "Exact entries evicted to stay within max_bytes, by route.")
	}
	if s.sem != nil {
		s.met.semEntries = env.Metrics.Gauge("switchyard_cache_semantic_entries"+q, "Entries in the semantic cache, by route.")
	}
	s.gauges()
	s.m.add(s)
	return nil
}

// Close forgets the stage in the admin endpoints' list.
func (s *Stage) Close() error {
	s.m.remove(s)
	return nil
}

// mode is what the client asked of the cache.
type mode uint8

const (
	useCache mode = iota
	refresh       // do not serve from the cache, store the new answer
	bypass        // do not serve, do not store
)

func requestMode(x *gateway.Exchange) mode {
	switch v := x.Header(Header); {
	case bytes.EqualFold(v, []byte("bypass")):
		return bypass
	case bytes.EqualFold(v, []byte("refresh")):
		return refresh
	}
	cc := x.Header("Cache-Control")
	if len(cc) == 0 {
		return useCache
	}
	m := useCache
	for _, d := range bytes.Split(cc, []byte(",")) {
		d = bytes.TrimSpace(d)
		switch {
		case bytes.EqualFold(d, []byte("no-store")):
			return bypass
		case bytes.EqualFold(d, []byte("no-cache")), bytes.EqualFold(d, []byte("max-age=0")):
			m = refresh
		}
	}
	return m
}

// owner is who shares entries under the stage's scope.
func (s *Stage) owner(x *gateway.Exchange) string {
	p := x.Principal
	switch {
	case s.Scope == "global":
		return "global"
	case p == nil:
		return "anonymous"
	case s.Scope == "tenant" && p.Tenant != "":
		return "tenant:" + p.Tenant
	default:
		return "key:" + p.KeyID
	}
}

func (s *Stage) getBuf() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 4096)
	return &b
}

func (s *Stage) outcome(x *gateway.Exchange, v string) {
	x.ResponseHeaders = append(x.ResponseHeaders, gateway.Header{Key: Header, Value: v})
}

// Handle serves a hit, or continues and stores the answer.
func (s *Stage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	switch x.Op {
	case gateway.OpChat, gateway.OpCompletions, gateway.OpEmbeddings:
	default:
		return next.Handle(x)
	}
	md := requestMode(x)
	if md == bypass {
		s.met.bypass.Inc()
		s.outcome(x, Bypass)
		return next.Handle(x)
	}
	r, err := parse(x.Body)
	if err != nil || (!s.Nondeterministic && x.Op != gateway.OpEmbeddings && !r.deterministic()) {
		s.met.bypass.Inc()
		s.outcome(x, Bypass)
		return next.Handle(x)
	}
	sc := scope{Owner: s.owner(x), Route: s.route, Pool: x.Pool.Name, Op: x.Op.String()}
	sc.Epoch = s.m.epoch(sc.Owner, s.route)
	bp := s.getBuf()
	defer s.bufs.Put(bp)

	var key string
	if s.exact != nil {
		if key, *bp, err = keyOf(sc, r, *bp); err != nil {
			s.met.bypass.Inc()
			s.outcome(x, Bypass)
			return next.Handle(x)
		}
		if md == useCache {
			var body []byte
			var ok bool
			if body, _, ok = s.exact.get(key, (*bp)[:0]); ok {
				*bp = body
				s.met.hits.Inc()
				s.m.remember(x.RequestID, s, key, nil)
				return s.serve(x, body, Hit)
			}
			if s.shared != nil {
				if z, ttl, ok := s.shared.get(x.Context(), key); ok {
					if body, err := s.exact.dec.DecodeAll(z, (*bp)[:0]); err == nil {
						*bp = body
						s.exact.putZ(key, z, len(body), ttl)
						s.met.hits.Inc()
						s.m.remember(x.RequestID, s, key, nil)
						return s.serve(x, body, Hit)
					}
				}
			}
		}
	}
	var sem *semQuery
	if s.sem != nil && x.Op == gateway.OpChat {
		sem = s.semantic(x, sc, r, md == useCache)
		if sem != nil && sem.hit != nil {
			s.met.semHits.Inc()
			s.m.remember(x.RequestID, s, "", sem)
			return s.serve(x, sem.hit, SemanticHit)
		}
	}
	s.met.misses.Inc()
	s.outcome(x, Miss)
	s.storeAfter(x, key, sem)
	return next.Handle(x)
}

// serve answers x with a stored answer.
func (s *Stage) serve(x *gateway.Exchange, body []byte, outcome string) error {
	s.outcome(x, outcome)
	if x.Fields.Stream && x.Op != gateway.OpEmbeddings {
		src, err := gateway.Replay(x, body)
		if err != nil {
			return err
		}
		x.RespondStream(src)
		return nil
	}
	x.Respond(200, "application/json", body)
	return nil
}

// storeAfter arranges for x's answer to be stored when it is complete: a
// buffered answer as it came, a stream as the answer its chunks make.
func (s *Stage) storeAfter(x *gateway.Exchange, key string, sem *semQuery) {
	var asm *assembler
	var streamed atomic.Pointer[[]byte]
	if x.Fields.Stream {
		asm = &assembler{legacy: x.Op == gateway.OpCompletions}
		x.ObserveStream(&recorder{asm: asm, done: &streamed})
	}
	calls := x.Calls
	x.Defer(func(x *gateway.Exchange) {
		var body []byte
		switch {
		case x.Calls == calls || x.Status != 200:
			s.met.skipped.Inc()
			return
		case asm != nil:
			b := streamed.Load()
			if b == nil {
				s.met.skipped.Inc()
				return
			}
			body = *b
		case x.Streaming:
			s.met.skipped.Inc()
			return
		default:
			body = bytes.Clone(x.RespBody)
		}
		if err := storable(body, s.AllowTruncated); err != nil {
			s.met.skipped.Inc()
			return
		}
		stored := false
		if s.exact != nil && key != "" {
			z := s.exact.enc.EncodeAll(body, nil)
			if s.exact.putZ(key, z, len(body), s.ttl) {
				stored = true
			}
			if s.shared != nil {
				s.shared.put(key, z, s.ttl)
				stored = true
			}
		}
		if sem != nil {
			if e := s.sem.put(sem, body); e != nil {
				stored = true
				if s.shared != nil {
					s.shared.publish(e, s.shared.maxLen)
				}
			}
		}
		s.gauges()
		if stored {
			s.met.stores.Inc()
		} else {
			s.met.skipped.Inc()
		}
	})
}

// recorder is the stream observer of a miss: it passes every event on and
// assembles the answer; at a clean end it leaves the answer for the
// exchange's end hook.
type recorder struct {
	asm  *assembler
	done *atomic.Pointer[[]byte]
}

func (r *recorder) OnEvent(x *gateway.Exchange, dst, data []byte) ([]byte, error) {
	r.asm.add(data)
	return gateway.AppendEvent(dst, data), nil
}

func (r *recorder) OnEnd(x *gateway.Exchange, dst []byte, cause error) []byte {
	if cause != nil {
		return dst
	}
	u := x.Usage
	if b, err := r.asm.answer(u.PromptTokens, u.CompletionTokens); err == nil {
		r.done.Store(&b)
	}
	return dst
}
