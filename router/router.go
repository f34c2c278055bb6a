// Package router makes the gateway's pure routing decisions: which route a
// request matches, which pool serves it, which target in the pool takes each
// attempt, whether a retry fits the budget, and which upstreams are healthy.
// It does no I/O and does not know the gateway's config format: the gateway
// translates its config into a Spec and builds a Router per config
// generation. Upstream health and load live in atomics shared by all
// requests; Match and Pick allocate nothing.
//
// The gateway's dispatch loop, in outline:
//
//	rt := r.Match(&req)                  // nil: no route, answer 404
//	pool := rt.Pool                      // nil: pass through, r.Pool(req.Model)
//	pool.Retry.Request(now)              // once per client request
//	for _, p := range append([]*Pool{pool}, pool.Fallbacks...) {
//		var last *Target
//		for try := 0; try < p.Attempts; try++ {
//			if try > 0 && !p.Retry.AllowRetry(now) { break }
//			t := p.Pick(&req, last)      // nil: nothing usable, next pool
//			... send; t.Upstream.Release(); ReportSuccess or ReportFailure (or neither: no verdict) ...
//			last = t
//		}
//	}                                    // all failed: 502/503
package router

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"switchyard/internal/httpname"
)

// Spec is everything a Router is built from. The router has no defaults of
// its own: every zero value means what its field's comment says, and the
// gateway's config package fills in defaults before building a Spec.
type Spec struct {
	Upstreams []UpstreamSpec
	Pools     []PoolSpec
	Routes    []RouteSpec // in match order: the first match wins

	// OnTransition, when set, is called on every change of an upstream's
	// circuit breaker and on every refused ejection (see breaker.go): by
	// the report that ejects, re-opens or closes it, and by the first pick
	// that finds its cool-down over. It runs on a request's path with the
	// ejection lock held, so transitions reach it in order: it must be
	// quick and must not report outcomes itself.
	OnTransition func(u *Upstream, t Transition)

	// Strategies are the balancing strategies pools may name; nil = the
	// built-in ones (NewStrategies).
	Strategies *Strategies

	// EjectLock serialises ejection decisions (the rule that a pool keeps a
	// healthy target). Routers that share upstream states should share it
	// too; nil = a lock of this Router's own.
	EjectLock *sync.Mutex
}

// UpstreamSpec describes one backend server.
type UpstreamSpec struct {
	Name             string
	MaxConcurrency   int           // requests in flight at most; 0 = unlimited
	FailureThreshold int           // consecutive failures that eject it; 0 = never ejected passively
	Cooldown         time.Duration // how long a first ejection lasts; must be > 0 when FailureThreshold > 0 or LatencyFactor > 0
	// MaxCooldown caps the back-off of repeated ejections (breaker.go);
	// <= Cooldown = every ejection lasts Cooldown.
	MaxCooldown time.Duration
	// MaxEjectedPercent refuses an ejection that would leave more than
	// this share of one of the upstream's pools out; 1..100, 0 = 100 (only
	// the rule that a pool keeps a healthy target).
	MaxEjectedPercent int
	// HalfOpenRequests is how many probe requests at a time a half-open
	// upstream takes; 0 = no half-open state (back in full rotation when
	// the cool-down ends).
	HalfOpenRequests int
	// LatencyFactor ejects the upstream when its TTFT average is more than
	// this many times the median of its pools' other targets'; 0 = off,
	// else > 1. LatencyMin is the least average that may count as an
	// outlier, LatencyMinSamples the samples needed (>= 1 when
	// LatencyFactor > 0), of the upstream and of each target compared.
	LatencyFactor     float64
	LatencyMin        time.Duration
	LatencyMinSamples int
	// MetricsStale is how old a scrape of the backend's metrics may be and
	// still count (see Upstream.SetLoad); 0 = its metrics are not scraped.
	MetricsStale time.Duration
	// State is the upstream's live state, to share it with the same
	// backend's upstream in other Routers (a reload); nil = a new one.
	State *UpstreamState
}

// PoolSpec describes a set of targets serving one model.
type PoolSpec struct {
	Name      string
	Strategy  string // a name in Spec.Strategies: "round_robin" ("" too), "weighted", "least_outstanding", ...
	Targets   []TargetSpec
	Fallbacks []string // pool names, tried in order; must not form a cycle
	Retry     RetrySpec
	Balance   BalanceSpec // for the inference_aware and consistent_hash strategies
}

// TargetSpec is one upstream in a pool, with the model id to ask it for.
type TargetSpec struct {
	Upstream string
	Model    string // backend's model id; "" = forward the requested model unchanged
	Weight   int    // share under a weighted strategy, >= 0; 0 = never picked by one; other strategies ignore it
}

// RetrySpec limits retries within one pool.
type RetrySpec struct {
	Attempts     int     // tries per pool, the first included; 0 = 1 (no retries)
	Budget       float64 // retries <= Budget * requests over a 10 s window; 0..1; 0 = only MinPerSecond
	MinPerSecond int     // retries per second always allowed, whatever the budget; 0 = none
}

// RouteSpec is one routing rule. All of its conditions must hold; within a
// list, any element may match. Empty conditions match everything.
type RouteSpec struct {
	Name     string
	Models   []string          // globs ('*', '?') on the requested model
	Headers  map[string]string // header name (case-insensitive) -> value glob; the header must be present and non-empty
	Keys     []string          // API key ids
	Tenants  []string          // tenant names
	Metadata map[string]string // request metadata key -> value glob; the key must be a string value
	// Prompt size bounds in bytes, inclusive; 0 = no bound.
	MinPromptBytes, MaxPromptBytes int
	Pool                           string // "" = pass through: the pool named like the requested model
}

// HeaderGetter reads a request header by name; *fasthttp.RequestHeader
// satisfies it. Names are passed in canonical form ("X-Team").
type HeaderGetter interface{ Peek(key string) []byte }

// MetadataGetter reads a string value of the request's metadata object.
type MetadataGetter interface {
	Metadata(key string) ([]byte, bool)
}

// Request is the view of a request that routing and balancing look at.
// Header and Metadata may be nil; routes that need them then do not match.
type Request struct {
	Model       []byte
	Header      HeaderGetter
	KeyID       string
	Tenant      string
	Metadata    MetadataGetter
	PromptBytes int

	// Hints for balancers (Balancer.Pick), filled by the caller when it
	// knows them; zero means unknown, and a balancer that needs one then
	// picks as if it had none. inference_aware and consistent_hash read them.
	Prefix     []uint64 // chained hashes of the prompt's leading blocks (AppendPrefixHashes), for prefix (KV-cache) affinity
	SessionKey []byte   // the request's "user" field, a stable caller identity for sticky sessions
	Tokens     int      // estimated prompt tokens, for load-aware scoring
}

// Route is a compiled routing rule.
type Route struct {
	Name  string
	Index int   // position in Router.Routes()
	Pool  *Pool // nil = pass through: look up the pool named like the model

	models   []glob
	headers  []headerCond
	keys     []string
	tenants  []string
	metadata []metaCond
	minBytes int
	maxBytes int
}

type headerCond struct {
	name  string // canonical form
	value glob
}

type metaCond struct {
	key   string
	value glob
}

// Router holds one config generation's routes, pools and upstreams. It is
// immutable after New except for the atomics in upstreams, pools and retry
// budgets, and is safe for concurrent use.
type Router struct {
	routes     []*Route
	pools      []*Pool
	upstreams  []*Upstream
	poolByName map[string]*Pool
	upByName   map[string]*Upstream
	ejectMu    *sync.Mutex // serialises ejection decisions; Spec.EjectLock
}

// New validates s and builds a Router. The error lists every problem found,
// each naming its place, e.g. `pools[2] "chat": fallbacks[0]: no pool "x"`.
func New(s Spec) (*Router, error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	r := &Router{
		poolByName: make(map[string]*Pool, len(s.Pools)),
		upByName:   make(map[string]*Upstream, len(s.Upstreams)),
		ejectMu:    s.EjectLock,
	}
	if r.ejectMu == nil {
		r.ejectMu = new(sync.Mutex)
	}
	strategies := s.Strategies
	if strategies == nil {
		strategies = builtin
	}

	for i, us := range s.Upstreams {
		at := fmt.Sprintf("upstreams[%d] %q", i, us.Name)
		switch {
		case us.Name == "":
			fail("upstreams[%d]: name is empty", i)
			continue
		case r.upByName[us.Name] != nil:
			fail("%s: duplicate name (also upstreams[%d])", at, r.upByName[us.Name].Index)
			continue
		}
		if us.MaxConcurrency < 0 {
			fail("%s: max concurrency %d must be >= 0", at, us.MaxConcurrency)
		}
		if us.FailureThreshold < 0 {
			fail("%s: failure threshold %d must be >= 0", at, us.FailureThreshold)
		}
		if us.Cooldown < 0 || us.Cooldown == 0 && (us.FailureThreshold > 0 || us.LatencyFactor > 0) {
			fail("%s: cooldown %v must be > 0 when the failure threshold or the latency factor is > 0", at, us.Cooldown)
		}
		if us.MaxCooldown < 0 {
			fail("%s: max cooldown %v must be >= 0", at, us.MaxCooldown)
		}
		if us.MaxEjectedPercent < 0 || us.MaxEjectedPercent > 100 {
			fail("%s: max ejected percent %d must be from 0 to 100", at, us.MaxEjectedPercent)
		}
		if us.HalfOpenRequests < 0 {
			fail("%s: half-open requests %d must be >= 0", at, us.HalfOpenRequests)
		}
		if us.LatencyFactor != 0 && !(us.LatencyFactor > 1) {
			fail("%s: latency factor %v must be 0 (off) or > 1", at, us.LatencyFactor)
		}
		if us.LatencyMin < 0 {
			fail("%s: latency min %v must be >= 0", at, us.LatencyMin)
		}
		if us.LatencyMinSamples < 0 || us.LatencyFactor > 0 && us.LatencyMinSamples < 1 {
			fail("%s: latency min samples %d must be >= 1 when the latency factor is > 0", at, us.LatencyMinSamples)
		}
		u := &Upstream{
			Name: us.Name, Index: len(r.upstreams),
			MaxConcurrency: int64(us.MaxConcurrency), FailureThreshold: int64(us.FailureThreshold), Cooldown: us.Cooldown,
			MetricsStale: us.MetricsStale,
			MaxCooldown:  us.MaxCooldown, MaxEjectedPercent: us.MaxEjectedPercent, HalfOpenRequests: int64(us.HalfOpenRequests),
			LatencyFactor: us.LatencyFactor, LatencyMin: us.LatencyMin, LatencyMinSamples: us.LatencyMinSamples,
			st: us.State, ejectMu: r.ejectMu, onTransition: s.OnTransition,
		}
		if u.st == nil {
			u.st = new(UpstreamState)
		}
		r.upstreams = append(r.upstreams, u)
		r.upByName[u.Name] = u
	}

	// Pools first by name, so that fallbacks may point forward.
	built := make([]*Pool, len(s.Pools)) // nil where the spec was rejected
	for i, ps := range s.Pools {
		at := fmt.Sprintf("pools[%d] %q", i, ps.Name)
		if ps.Name == "" {
			fail("pools[%d]: name is empty", i)
			continue
		}
		if prev := r.poolByName[ps.Name]; prev != nil {
			fail("%s: duplicate name (also pools[%d])", at, prev.Index)
			continue
		}
		p := &Pool{Name: ps.Name, Index: len(r.pools), Balance: ps.Balance}
		built[i] = p
		r.pools = append(r.pools, p)
		r.poolByName[p.Name] = p
		st, ok := strategies.Lookup(ps.Strategy)
		if !ok {
			fail("%s: unknown strategy %q (want one of %s)", at, ps.Strategy, strings.Join(strategies.Names(), ", "))
		}
		p.Strategy, p.weighted = st.Name, st.Weighted
		if len(ps.Targets) == 0 {
			fail("%s: no targets", at)
		}
		total, targetsOK := 0, true
		for j, ts := range ps.Targets {
			u := r.upByName[ts.Upstream]
			if u == nil {
				fail("%s: targets[%d]: no upstream %q", at, j, ts.Upstream)
				targetsOK = false
				continue
			}
			if ts.Weight < 0 {
				fail("%s: targets[%d]: weight %d must be >= 0", at, j, ts.Weight)
				targetsOK = false
				continue
			}
			t := &Target{Upstream: u, Model: ts.Model, Weight: ts.Weight, Index: len(p.Targets)}
			p.Targets = append(p.Targets, t)
			total += t.Weight
			if !slices.Contains(u.pools, p) {
				u.pools = append(u.pools, p)
			}
		}
		switch {
		case !ok || !targetsOK || len(p.Targets) == 0:
		case st.Weighted && total == 0:
			fail("%s: strategy %s needs a target with a positive weight", at, st.Name)
		default:
			var err error
			if p.bal, err = st.New(p); err != nil {
				fail("%s: strategy %s: %v", at, st.Name, err)
			} else if p.bal == nil {
				fail("%s: strategy %s made no balancer", at, st.Name)
			}
		}
		rs := ps.Retry
		switch {
		case rs.Attempts < 0:
			fail("%s: retry attempts %d must be >= 1", at, rs.Attempts)
		case rs.Budget < 0 || rs.Budget > 1:
			fail("%s: retry budget %v must be between 0 and 1", at, rs.Budget)
		case rs.MinPerSecond < 0:
			fail("%s: retry min per second %d must be >= 0", at, rs.MinPerSecond)
		}
		p.Attempts = max(rs.Attempts, 1)
		if p.Attempts > 1 {
			p.Retry = newRetryBudget(rs.Budget, rs.MinPerSecond)
		}
	}
	for i, ps := range s.Pools {
		p := built[i]
		if p == nil {
			continue // reported above
		}
		at := fmt.Sprintf("pools[%d] %q", i, ps.Name)
		for j, name := range ps.Fallbacks {
			fb := r.poolByName[name]
			switch {
			case fb == nil:
				fail("%s: fallbacks[%d]: no pool %q", at, j, name)
			case fb == p:
				fail("%s: fallbacks[%d]: a pool cannot fall back to itself", at, j)
			case slices.Contains(p.Fallbacks, fb):
				fail("%s: fallbacks[%d]: %q is listed twice", at, j, name)
			default:
				p.Fallbacks = append(p.Fallbacks, fb)
			}
		}
	}
	if cycle := fallbackCycle(r.pools); cycle != nil {
		fail("pools: fallback cycle %s", strings.Join(cycle, " -> "))
	}

	routeNames := make(map[string]int, len(s.Routes))
	for i, rs := range s.Routes {
		at := fmt.Sprintf("routes[%d] %q", i, rs.Name)
		if rs.Name == "" {
			at = fmt.Sprintf("routes[%d]", i)
			fail("%s: name is empty", at)
		} else if j, dup := routeNames[rs.Name]; dup {
			fail("%s: duplicate name (also routes[%d])", at, j)
		} else {
			routeNames[rs.Name] = i
		}
		rt := &Route{Name: rs.Name, Index: i, keys: slices.Clone(rs.Keys), tenants: slices.Clone(rs.Tenants),
			minBytes: rs.MinPromptBytes, maxBytes: rs.MaxPromptBytes}
		for j, m := range rs.Models {
			g, err := compileGlob(m)
			if err != nil {
				fail("%s: models[%d]: %v", at, j, err)
				continue
			}
			rt.models = append(rt.models, g)
		}
		seen := make(map[string]string, len(rs.Headers))
		for _, name := range sortedKeys(rs.Headers) {
			canon := httpname.Canonical(name)
			if canon == "" {
				fail("%s: headers: invalid header name %q", at, name)
				continue
			}
			if other, dup := seen[canon]; dup {
				fail("%s: headers: %q and %q are the same header", at, other, name)
				continue
			}
			seen[canon] = name
			g, err := compileGlob(rs.Headers[name])
			if err != nil {
				fail("%s: headers[%q]: %v", at, name, err)
				continue
			}
			rt.headers = append(rt.headers, headerCond{name: canon, value: g})
		}
		for _, key := range sortedKeys(rs.Metadata) {
			if key == "" {
				fail("%s: metadata: empty key", at)
				continue
			}
			g, err := compileGlob(rs.Metadata[key])
			if err != nil {
				fail("%s: metadata[%q]: %v", at, key, err)
				continue
			}
			rt.metadata = append(rt.metadata, metaCond{key: key, value: g})
		}
		if slices.Contains(rs.Keys, "") {
			fail("%s: keys: empty key id", at)
		}
		if slices.Contains(rs.Tenants, "") {
			fail("%s: tenants: empty tenant", at)
		}
		if rs.MinPromptBytes < 0 || rs.MaxPromptBytes < 0 {
			fail("%s: prompt byte bounds must be >= 0", at)
		} else if rs.MaxPromptBytes > 0 && rs.MinPromptBytes > rs.MaxPromptBytes {
			fail("%s: min prompt bytes %d > max prompt bytes %d", at, rs.MinPromptBytes, rs.MaxPromptBytes)
		}
		if rs.Pool != "" {
			if rt.Pool = r.poolByName[rs.Pool]; rt.Pool == nil {
				fail("%s: no pool %q", at, rs.Pool)
			}
		}
		r.routes = append(r.routes, rt)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("router: %w", errors.Join(errs...))
	}
	return r, nil
}

// FallbackCycles finds the cycles of a fallback graph of n pools: the
// router's, and the config package's, which reports them with their YAML
// places. fallbacks(i) lists the pools pool i falls back to, by index, in
// order; a negative index (an unknown pool) is skipped. The graph is walked
// depth first from pool 0 on, and found is called for each fallback entry
// (pool i's j-th) that closes a cycle, with the pools along it, from the
// pool the entry points to round to it again. Each cycle is reported once.
func FallbackCycles(n int, fallbacks func(i int) []int, found func(i, j int, cycle []int)) {
	const (
		unseen = iota
		active
		done
	)
	state := make([]uint8, n)
	var stack []int
	var visit func(i int)
	visit = func(i int) {
		state[i] = active
		stack = append(stack, i)
		for j, k := range fallbacks(i) {
			if k < 0 || k >= n {
				continue
			}
			switch state[k] {
			case unseen:
				visit(k)
			case active:
				at := slices.Index(stack, k)
				found(i, j, append(slices.Clone(stack[at:]), k))
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
	}
	for i := range n {
		if state[i] == unseen {
			visit(i)
		}
	}
}

// fallbackCycle returns the pool names along the first fallback cycle, or
// nil.
func fallbackCycle(pools []*Pool) []string {
	var names []string
	FallbackCycles(len(pools), func(i int) []int {
		fbs := make([]int, len(pools[i].Fallbacks))
		for j, fb := range pools[i].Fallbacks {
			fbs[j] = fb.Index
		}
		return fbs
	}, func(_, _ int, cycle []int) {
		if names == nil {
			for _, k := range cycle {
				names = append(names, pools[k].Name)
			}
		}
	})
	return names
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Match returns the first route whose conditions all hold for req, or nil.
// It allocates nothing.
func (r *Router) Match(req *Request) *Route {
	for _, rt := range r.routes {
		if rt.matches(req) {
			return rt
		}
	}
	return nil
}

func (rt *Route) matches(req *Request) bool {
	if rt.minBytes > 0 && req.PromptBytes < rt.minBytes {
		return false
	}
	if rt.maxBytes > 0 && req.PromptBytes > rt.maxBytes {
		return false
	}
	if len(rt.keys) > 0 && !slices.Contains(rt.keys, req.KeyID) {
		return false
	}
	if len(rt.tenants) > 0 && !slices.Contains(rt.tenants, req.Tenant) {
		return false
	}
	if len(rt.models) > 0 {
		ok := false
		for i := range rt.models {
			if rt.models[i].match(req.Model) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(rt.headers) > 0 {
		if req.Header == nil {
			return false
		}
		for i := range rt.headers {
			h := &rt.headers[i]
			v := req.Header.Peek(h.name)
			if len(v) == 0 || !h.value.match(v) {
				return false
			}
		}
	}
	if len(rt.metadata) > 0 {
		if req.Metadata == nil {
			return false
		}
		for i := range rt.metadata {
			m := &rt.metadata[i]
			v, ok := req.Metadata.Metadata(m.key)
			if !ok || !m.value.match(v) {
				return false
			}
		}
	}
	return true
}

// Pool returns the pool with the given name, or nil. It allocates nothing.
func (r *Router) Pool(name []byte) *Pool { return r.poolByName[string(name)] }

// Upstream returns the upstream with the given name, or nil.
func (r *Router) Upstream(name string) *Upstream { return r.upByName[name] }

// Pools returns all pools in spec order. The slice must not be modified.
func (r *Router) Pools() []*Pool { return r.pools }

// Upstreams returns all upstreams in spec order. The slice must not be
// modified.
func (r *Router) Upstreams() []*Upstream { return r.upstreams }

// Routes returns all routes in match order. The slice must not be modified.
func (r *Router) Routes() []*Route { return r.routes }
