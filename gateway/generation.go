package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"switchyard/backends"
	"switchyard/gateway/config"
	"switchyard/internal/httpname"
	"switchyard/internal/jsonscan"
	"switchyard/internal/respool"
	"switchyard/router"
)

// Generation is one loaded configuration with everything built from it: the
// router, the compiled chains, the upstream clients, the embedded
// simulators. It is immutable once built and shared by all requests that
// started under it; it is closed when it has been replaced and its last
// request has finished.
type Generation struct {
	Config *config.Config
	Router *router.Router
	ID     uint64
	Built  time.Time

	chains       []Handler               // by route index
	routeTimeout []time.Duration         // by route index; 0 = none
	clients      []*backends.Client      // by upstream index
	keys         map[[32]byte]*Principal // config keys; nil when the config has neither keys nor tenants
	adm          *admission
	health       *backends.HealthChecker
	scrapers     *backends.Scrapers
	closers      []Closer    // stages'
	stops        []io.Closer // what backend kinds started, e.g. embedded simulators
	models       []byte      // GET /v1/models body
	poolName     []string
	poolKey      [][]byte       // poolName as bytes, for matching without converting
	prefixHints  bool           // a pool scores prefix affinity: requests carry their prefix hashes
	batchers     []*poolBatcher // by pool index; nil where batching is off

	services       map[string]any // by service name (service.go)
	serviceClosers []Closer

	shared stageShared // the stages' context, resource lease and metric set

	inflight atomic.Int64
	retired  atomic.Bool
	done     chan struct{}
	doneOnce sync.Once
}

var genIDs atomic.Uint64

// BuildOptions are the process-level inputs of a generation.
type BuildOptions struct {
	Registry *Registry
	Log      *slog.Logger
	Metrics  *Metrics
	// StartSims starts what backend kinds need, such as the embedded
	// simulators of kind sim, and the active health checks. Validation
	// runs with it false: configs are checked without listening.
	StartSims bool
	// Resources is the server's resource pool, which keeps stages' state
	// (limiters, caches, clients...) and backends' live state (requests in
	// flight, ejections, health) across reloads; the generation holds a
	// lease on it until Close. Nil: stages use a pool shared by the whole
	// process, and backends' state is the generation's own.
	Resources *respool.Pool
	// Dispatcher is given to stages (Env.Dispatcher) for calling model
	// pools; the Server passes itself.
	Dispatcher Dispatcher
}

// Build turns a validated config into a generation. Every error names its
// YAML location. On error nothing is left running.
func Build(cfg *config.Config, o BuildOptions) (g *Generation, err error) {
	g = &Generation{Config: cfg, ID: genIDs.Add(1), Built: time.Now(), done: make(chan struct{})}
	g.shared = newStageShared(o)
	partial := g // the error returns below set g to nil
	defer func() {
		if err != nil {
			partial.Close()
		}
	}()
	file := cfg.File
	log := o.Log
	if log == nil {
		log = slog.Default()
	}

	spec := router.Spec{OnTransition: onBreakerTransition(log, o.Metrics)}
	// Backends' live state (requests in flight, failures, ejections, active
	// health) is kept in the server's resource pool by backend name, so a
	// reload neither resets max_concurrency nor puts ejected backends back;
	// it lives while a generation names the backend.
	if o.Resources != nil {
		if spec.EjectLock, err = respool.Get(g.shared.lease, "router.eject-lock", func() (*sync.Mutex, error) { return new(sync.Mutex), nil }); err != nil {
			return nil, fmt.Errorf("%s: the router's ejection lock: %w", file, err)
		}
	}
	for _, b := range cfg.Backends {
		us := router.UpstreamSpec{
			Name:             b.Name,
			MaxConcurrency:   b.MaxConcurrency,
			FailureThreshold: b.Health.FailureThreshold,
			Cooldown:         b.Health.Cooldown.D(),
			// Outlier ejection and circuit breaking (docs/routing.md).
			MaxCooldown:       b.Health.MaxCooldown.D(),
			MaxEjectedPercent: b.Health.MaxEjectedPercent,
			HalfOpenRequests:  b.Health.HalfOpenRequests,
			LatencyFactor:     b.Health.LatencyFactor,
			LatencyMin:        b.Health.LatencyMin.D(),
			LatencyMinSamples: b.Health.LatencyMinSamples,
		}
		us.MetricsStale = metricsStale(b.Metrics)
		if o.Resources != nil {
			if us.State, err = respool.Get(g.shared.lease, "router.upstream-state:"+b.Name, func() (*router.UpstreamState, error) { return new(router.UpstreamState), nil }); err != nil {
				return nil, fmt.Errorf("%s:%d: backends %q: its live state: %w", file, b.Line, b.Name, err)
			}
		}
		spec.Upstreams = append(spec.Upstreams, us)
	}
	for _, m := range cfg.Models {
		ps := router.PoolSpec{Name: m.Name, Strategy: m.Strategy, Fallbacks: m.Fallbacks,
			Retry:   router.RetrySpec{Attempts: m.Retry.Attempts, Budget: m.Retry.Budget, MinPerSecond: m.Retry.MinPerSecond},
			Balance: balanceSpec(&m.Routing)}
		if m.Strategy == config.StrategyInferenceAware && m.Routing.Weights.Prefix > 0 {
			g.prefixHints = true
		}
		for _, t := range m.Targets {
			ps.Targets = append(ps.Targets, router.TargetSpec{Upstream: t.Backend, Model: t.Model, Weight: t.Weight})
		}
		spec.Pools = append(spec.Pools, ps)
	}
	for _, r := range cfg.Routes {
		spec.Routes = append(spec.Routes, router.RouteSpec{
			Name: r.Name, Models: r.Match.Model, Headers: r.Match.Header, Keys: r.Match.Key,
			Tenants: r.Match.Tenant, Metadata: r.Match.Metadata,
			MinPromptBytes: r.Match.MinPromptBytes, MaxPromptBytes: r.Match.MaxPromptBytes, Pool: r.To,
		})
	}
	if g.Router, err = router.New(spec); err != nil {
		return nil, fmt.Errorf("%s: building the router: %w", file, err)
	}
	for _, p := range g.Router.Pools() {
		g.poolName = append(g.poolName, p.Name)
		g.poolKey = append(g.poolKey, []byte(p.Name))
	}

	// Upstream clients, each after its backend kind has opened it. Every
	// backend error is reported, not just the first.
	var checks []backends.Check
	var scrapes []backends.Scrape
	var backendErrs []error
	env := &BackendEnv{Log: log, Start: o.StartSims}
	for i := range cfg.Backends {
		b := &cfg.Backends[i]
		be, err := o.Registry.openBackend(file, i, b, env)
		if err != nil {
			backendErrs = append(backendErrs, err)
			continue
		}
		if be.Closer != nil {
			g.stops = append(g.stops, be.Closer)
		}
		url := be.URL
		if url == "" && !o.StartSims {
			url = unstartedURL
		}
		c, err := backends.New(backends.Options{
			Name: b.Name, URL: url, APIKey: b.APIKey.Value(), MaxConns: b.MaxConns,
			ConnectTimeout: b.Timeouts.Connect.D(), FirstByte: b.Timeouts.FirstByte.D(),
			Idle: b.Timeouts.Idle.D(), Total: b.Timeouts.Total.D(),
		})
		if err != nil {
			backendErrs = append(backendErrs, fmt.Errorf("%s:%d: backends[%d]: %w", file, b.Line, i, err))
			continue
		}
		g.clients = append(g.clients, c)
		if a := b.Health.Active; a != nil {
			checks = append(checks, backends.Check{Client: c, Upstream: g.Router.Upstreams()[i], Path: a.Path, Interval: a.Interval.D(), Timeout: a.Timeout.D()})
		}
		if sc := scrapeOf(b, c, g.Router.Upstreams()[i]); sc != nil {
			scrapes = append(scrapes, *sc)
		}
	}
	if len(backendErrs) > 0 {
		return nil, errors.Join(backendErrs...)
	}

	// Admission (tenants, limits, gates, prices), then the API keys, which
	// refer to its tenants.
	if err := g.buildAdmission(o, log); err != nil {
		return nil, err
	}
	if len(cfg.Keys) > 0 || len(cfg.Tenants) > 0 {
		g.keys = map[[32]byte]*Principal{}
		for i := range cfg.Keys {
			k := &cfg.Keys[i]
			sum, err := config.ParseKeyHash(k.SHA256)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: keys[%d].sha256: %w", file, k.Line, i, err)
			}
			p, err := g.newPrincipal(k.ID, &keySettings{Tenant: k.Tenant, Models: k.Models, Priority: k.Priority,
				Limits: k.Limits, ModelLimits: k.ModelLimits, Budget: k.Budget, Metadata: k.Metadata})
			if err != nil {
				return nil, fmt.Errorf("%s:%d: keys[%d]: %w", file, k.Line, i, err)
			}
			g.keys[sum] = p
		}
	}

	// Services (retrieval's collections...), which stages may use.
	if err := g.openServices(o, Env{Log: log, Dispatcher: o.Dispatcher, Limiter: g.adm.limiter, DataDir: g.Config.DataPath(), ConfigDir: filepath.Dir(g.Config.File), Live: o.StartSims}); err != nil {
		return nil, err
	}

	// Chains, once per generation.
	// Every stage error is reported, not just the first.
	terminal := &proxy{gen: g, metrics: o.Metrics, log: log}
	var stageErrs []error
	for _, r := range cfg.Routes {
		var stages []Stage
		for _, ref := range r.Chain {
			st, err := o.Registry.build(file, ref, g.shared.env(Env{Log: log.With("route", r.Name, "stage", ref.Kind), Route: r.Name, Path: ref.Path, Dispatcher: o.Dispatcher, Limiter: g.adm.limiter, DataDir: g.Config.DataPath(), ConfigDir: filepath.Dir(g.Config.File), Live: o.StartSims, services: g.services}))
			if err != nil {
				stageErrs = append(stageErrs, err)
				continue
			}
			stages = append(stages, st)
			if c, ok := st.(Closer); ok {
				g.closers = append(g.closers, c)
			}
		}
		g.chains = append(g.chains, compileChain(stages, terminal))
		g.routeTimeout = append(g.routeTimeout, r.Timeout.D())
	}
	if len(stageErrs) > 0 {
		return nil, errors.Join(stageErrs...)
	}
	g.models = appendModelList(nil, g.poolName, nil, g.Built.Unix())
	if err := g.buildBatchers(cfg, o.Metrics, log); err != nil {
		return nil, err
	}
	if o.StartSims {
		g.health = backends.StartHealthChecks(log, checks)
		if g.scrapers, err = backends.StartScrapers(log, scrapes, o.Metrics.scrapeResult); err != nil {
			g.closeBatchers()
			return nil, fmt.Errorf("%s: starting the metrics scrapers: %w", file, err)
		}
	}
	return g, nil
}

// acquire counts a request in; release counts it out and closes a retired
// generation after its last request.
func (g *Generation) acquire() { g.inflight.Add(1) }

func (g *Generation) release() {
	if g.inflight.Add(-1) == 0 && g.retired.Load() {
		g.doneOnce.Do(func() { close(g.done) })
	}
}

// retire marks the generation replaced; Done closes when it has no request left.
func (g *Generation) retire() {
	g.retired.Store(true)
	if g.inflight.Load() == 0 {
		g.doneOnce.Do(func() { close(g.done) })
	}
}

// close stops what the generation owns.
func (g *Generation) Close() {
	g.health.Close()
	g.scrapers.Close()
	g.shared.cancelContext()
	g.closeBatchers() // before the clients their batches use
	var errs []error
	for _, c := range g.closers {
		errs = append(errs, c.Close())
	}
	for _, c := range g.serviceClosers { // after the stages that use them
		errs = append(errs, c.Close())
	}
	errs = append(errs, g.shared.release()) // after the stages that used them
	for _, c := range g.clients {
		c.Close() // idle upstream connections; none is in use any more
	}
	for _, s := range g.stops {
		errs = append(errs, s.Close())
	}
	if err := errors.Join(errs...); err != nil {
		slog.Warn("closing a retired config generation", "generation", g.ID, "error", err)
	}
}

// pool returns the pool for a route: the route's own, or the one named like
// the requested model.
func (g *Generation) pool(r *router.Route, model []byte) *router.Pool {
	if r.Pool != nil {
		return r.Pool
	}
	return g.Router.Pool(model)
}

// appendModelList renders GET /v1/models for the given pool names, keeping
// only those allowed by p when p restricts models.
func appendModelList(dst []byte, names []string, p *Principal, created int64) []byte {
	dst = append(dst, `{"object":"list","data":[`...)
	first := true
	for _, n := range names {
		if p != nil && !p.allows([]byte(n)) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendModel(dst, []byte(n), created)
	}
	return append(dst, "]}"...)
}

// appendModel renders one model object, as GET /v1/models/{model} answers it.
func appendModel(dst, name []byte, created int64) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonscan.AppendString(dst, string(name))
	dst = append(dst, `,"object":"model","created":`...)
	dst = strconv.AppendInt(dst, created, 10)
	return append(dst, `,"owned_by":"switchyard"}`...)
}

// allowsPool reports whether the principal may use pool p of generation g;
// a nil principal (no keys configured) may use every pool.
func (p *Principal) allowsPool(g *Generation, pool *router.Pool) bool {
	return p == nil || p.allows(g.poolKey[pool.Index])
}

// allows reports whether the principal may use model: its key's globs and
// its tenant's must both allow it.
func (p *Principal) allows(model []byte) bool {
	if !anyGlob(p.models, model) {
		return false
	}
	return p.tenant == nil || anyGlob(p.tenant.models, model)
}

// anyGlob reports whether a glob of gs matches name; an empty list allows all.
func anyGlob(gs []router.Glob, name []byte) bool {
	if len(gs) == 0 {
		return true
	}
	for _, g := range gs {
		if g.Match(name) {
			return true
		}
	}
	return false
}

// HashKey returns the hex sha256 of an API key, as written under keys[].sha256.
func HashKey(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

// balanceSpec is the router's form of a pool's routing block.
func balanceSpec(r *config.Routing) router.BalanceSpec {
	w := r.Weights
	b := router.BalanceSpec{
		Weights:        router.Weights{Queue: w.Queue, KV: w.KV, Prefix: w.Prefix, Tokens: w.Tokens, TTFT: w.TTFT, Session: w.Session},
		SaturatedQueue: r.Saturation.Queue,
		SaturatedKV:    r.Saturation.KV,
		PrefixBlocks:   r.PrefixIndex.Blocks,
		Replicas:       r.Replicas,
		Session:        router.SessionSpec{By: r.Session.By},
	}
	if r.Session.By == config.SessionByHeader {
		b.Session.Header = httpname.Canonical(r.Session.Header)
	}
	return b
}
