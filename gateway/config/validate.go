package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"switchyard/internal/httpname"
	"switchyard/router"
)

// Validate checks a defaulted config: references between backends, pools
// and routes, duplicates, URLs, enums, globs, hashes and numbers. It returns
// every problem at once as *Errors. Parse and Load call it; call it yourself
// (after SetDefaults) on a Config built in Go.
func (c *Config) Validate() error {
	errs := &errorList{file: c.File}
	c.validate(errs, nil)
	return errs.err()
}

type validator struct {
	c    *Config
	errs *errorList
	bad  []string // paths that already failed to decode
}

// namesIncomplete says whether some entry of list (e.g. "backends") failed
// to decode where its name lives, so that "unknown X" errors about it would
// be noise.
func (v *validator) namesIncomplete(list, field string) bool {
	for _, b := range v.bad {
		if !under(b, list) {
			continue
		}
		rest := b[len(list):]
		if rest == "" {
			return true
		}
		if i := strings.IndexByte(rest, ']'); rest[0] == '[' && i > 0 &&
			(rest[i+1:] == "" || rest[i+1:] == "."+field) {
			return true
		}
	}
	return false
}

func (v *validator) add(p, format string, args ...any) {
	for _, b := range v.bad {
		if under(p, b) {
			return
		}
	}
	v.errs.add(v.c.posOf(p), p, fmt.Sprintf(format, args...))
}

// under says whether path p is b or lies inside it.
func under(p, b string) bool {
	if b == "" || !strings.HasPrefix(p, b) {
		return false
	}
	return len(p) == len(b) || p[len(b)] == '.' || p[len(b)] == '['
}

// lineOf describes where path p is, for "first defined at line N" notes.
func (v *validator) lineOf(p string) string {
	if l := v.c.posOf(p).line; l > 0 {
		return fmt.Sprintf(" (first at line %d)", l)
	}
	return ""
}

func (c *Config) validate(errs *errorList, bad []string) {
	v := &validator{c: c, errs: errs, bad: bad}
	poolsIncomplete := v.namesIncomplete("models", "name")
	v.hostPort("listen", c.Listen, true)
	v.admin()
	v.server()
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "unknown level %q (want debug, info, warn or error)", c.Log.Level)
	}
	backends := v.backends()
	pools := v.models(backends, poolsIncomplete)
	v.routes(pools, poolsIncomplete)
	v.collections(pools, poolsIncomplete)
	v.tools()
	tenants := v.admission()
	v.keys(tenants)
}

func (v *validator) hostPort(p, addr string, required bool) {
	if addr == "" {
		if required {
			v.add(p, "required: an address host:port, such as \"127.0.0.1:8080\"")
		}
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(p, "invalid address %q: want host:port, such as \"127.0.0.1:8080\" or \":8080\"", addr)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		v.add(p, "invalid port %q in %q: want a number from 0 to 65535", port, addr)
	}
}

func (v *validator) admin() {
	a := &v.c.Admin
	if a.Listen == "" {
		return
	}
	v.hostPort("admin.listen", a.Listen, false)
	if a.Token == "" && !a.Insecure {
		v.add("admin.token", "required when admin.listen is set (give it by ${ENV} reference, or set admin.insecure: true to run the admin API without one)")
	}
	if a.Listen == v.c.Listen && !strings.HasSuffix(a.Listen, ":0") { // port 0: each gets its own free port
		v.add("admin.listen", "must differ from listen (%q)", v.c.Listen)
	}
}

func (v *validator) nonNeg(p string, n int) {
	if n < 0 {
		v.add(p, "must not be negative, got %d", n)
	}
}

func (v *validator) nonNegDur(p string, d Duration) {
	if d < 0 {
		v.add(p, "must not be negative, got %s", d)
	}
}

func (v *validator) positiveDur(p string, d Duration) {
	if d <= 0 {
		v.add(p, "must be positive, got %s", d)
	}
}

func (v *validator) server() {
	s := &v.c.Server
	if s.MaxHeaderSize < 1<<10 {
		v.add("server.max_header_size", "must be at least 1KiB, got %d", s.MaxHeaderSize)
	}
	if s.MaxBodySize <= 0 {
		v.add("server.max_body_size", "must be positive, got %d", s.MaxBodySize)
	}
	v.nonNegDur("server.read_timeout", s.ReadTimeout)
	v.nonNegDur("server.write_timeout", s.WriteTimeout)
	v.nonNegDur("server.idle_timeout", s.IdleTimeout)
	v.nonNegDur("server.drain_timeout", s.DrainTimeout)
	v.nonNegDur("server.watch_interval", s.WatchInterval)
	v.nonNeg("server.max_conns", s.MaxConns)
	if s.Compression.MinSize < 0 {
		v.add("server.compression.min_size", "must not be negative, got %d", s.Compression.MinSize)
	}
}

// name checks a required, unique name; it returns false when the name is
// unusable.
func (v *validator) name(p, what, name string, seen map[string]string) bool {
	if name == "" {
		v.add(p, "required")
		return false
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
		v.add(p, "invalid %s %q: no spaces or control characters", what, name)
		return false
	}
	if first, dup := seen[name]; dup {
		v.add(p, "duplicate %s %q%s", what, name, v.lineOf(first))
		return false
	}
	seen[name] = p
	return true
}

// health checks the outlier ejection and circuit breaker keys of a
// backend's health block at p.
func (v *validator) health(p string, h *Health) {
	v.nonNegDur(p+".max_cooldown", h.MaxCooldown)
	if h.MaxCooldown >= 0 && h.MaxCooldown < h.Cooldown {
		v.add(p+".max_cooldown", "must be at least cooldown (%s), got %s", h.Cooldown, h.MaxCooldown)
	}
	if h.MaxEjectedPercent < 1 || h.MaxEjectedPercent > 100 {
		v.add(p+".max_ejected_percent", "must be from 1 to 100, got %d", h.MaxEjectedPercent)
	}
	v.nonNeg(p+".half_open_requests", h.HalfOpenRequests)
	if h.LatencyFactor != 0 && !(h.LatencyFactor > 1) {
		v.add(p+".latency_factor", "must be 0 (off) or above 1, got %v", h.LatencyFactor)
	}
	v.nonNegDur(p+".latency_min", h.LatencyMin)
	if h.LatencyMinSamples < 1 {
		v.add(p+".latency_min_samples", "must be at least 1, got %d", h.LatencyMinSamples)
	}
}

func (v *validator) backends() map[string]bool {
	seen := map[string]string{}
	for i := range v.c.Backends {
		b := &v.c.Backends[i]
		p := indexPath("backends", i)
		v.name(p+".name", "backend name", b.Name, seen)
		switch b.Kind {
		case KindOpenAI, KindKServe:
			if b.URL == "" {
				v.add(p+".url", "required for kind %s: the server's base URL, such as \"http://127.0.0.1:8000/v1\"", b.Kind)
			} else if err := checkURL(b.URL); err != nil {
				v.add(p+".url", "%v", err)
			}
			if len(b.Sim) > 0 {
				v.add(p+".sim", "only allowed with kind sim")
			}
		case KindSim:
			if b.URL != "" {
				v.add(p+".url", "not allowed with kind sim: the simulator runs in process")
			}
			for k := range b.Sim {
				if k == "" {
					v.add(p+".sim", "empty option name")
				}
			}
		default:
			v.add(p+".kind", "unknown kind %q (want openai, kserve or sim)", b.Kind)
		}
		v.nonNeg(p+".max_concurrency", b.MaxConcurrency)
		v.nonNeg(p+".max_conns", b.MaxConns)
		v.nonNegDur(p+".timeouts.connect", b.Timeouts.Connect)
		v.nonNegDur(p+".timeouts.first_byte", b.Timeouts.FirstByte)
		v.nonNegDur(p+".timeouts.idle", b.Timeouts.Idle)
		v.nonNegDur(p+".timeouts.total", b.Timeouts.Total)
		v.nonNeg(p+".health.failure_threshold", b.Health.FailureThreshold)
		v.nonNegDur(p+".health.cooldown", b.Health.Cooldown)
		if h := &b.Health; h.Cooldown == 0 && (h.FailureThreshold > 0 || h.LatencyFactor > 0) {
			v.add(p+".health.cooldown", "must be positive while failure_threshold or latency_factor is above 0 (failure_threshold: 0 turns passive ejection off)")
		}
		v.health(p+".health", &b.Health)
		if a := b.Health.Active; a != nil {
			if !strings.HasPrefix(a.Path, "/") {
				v.add(p+".health.active.path", "must start with \"/\", got %q", a.Path)
			}
			v.positiveDur(p+".health.active.interval", a.Interval)
			v.positiveDur(p+".health.active.timeout", a.Timeout)
		}
		if m := b.Metrics; m != nil {
			if !strings.HasPrefix(m.Path, "/") {
				v.add(p+".metrics.path", "must start with \"/\", got %q", m.Path)
			}
			if m.Interval < MinMetricsInterval {
				v.add(p+".metrics.interval", "must be at least %s, got %s", MinMetricsInterval, m.Interval)
			}
			v.positiveDur(p+".metrics.timeout", m.Timeout)
			switch m.Kind {
			case MetricsKindVLLM, MetricsKindSGLang, MetricsKindTGI, MetricsKindTriton:
			default:
				v.add(p+".metrics.kind", "unknown kind %q (want vllm, sglang, tgi or triton)", m.Kind)
			}
		}
	}
	names := make(map[string]bool, len(seen))
	for n := range seen {
		names[n] = true
	}
	return names
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %v", s, errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("invalid URL %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return fmt.Errorf("invalid URL %q: no host", s)
	}
	if u.User != nil {
		return fmt.Errorf("invalid URL %q: no credentials in the URL; use api_key", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("invalid URL %q: no query or fragment", s)
	}
	if port := u.Port(); port != "" {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return fmt.Errorf("invalid URL %q: bad port %q", s, port)
		}
	}
	return nil
}

func (v *validator) models(backends map[string]bool, poolsIncomplete bool) map[string]int {
	seen := map[string]string{}
	pools := map[string]int{} // name -> index, for usable names
	for i := range v.c.Models {
		m := &v.c.Models[i]
		p := indexPath("models", i)
		if v.name(p+".name", "model pool name", m.Name, seen) {
			pools[m.Name] = i
		}
		// The router's strategies are the only strategies.
		st, stOK := router.BuiltinStrategy(m.Strategy)
		if !stOK {
			v.add(p+".strategy", "unknown strategy %q (want one of %s)", m.Strategy, strings.Join(router.BuiltinStrategyNames(), ", "))
		}
		if len(m.Targets) == 0 {
			v.add(p+".targets", "at least one target is required")
		}
		type bm struct{ backend, model string }
		targets := map[bm]string{}
		total := 0
		for j, t := range m.Targets {
			tp := indexPath(p+".targets", j)
			switch {
			case t.Backend == "":
				v.add(tp+".backend", "required: the name of a backend")
			case !backends[t.Backend] && !v.namesIncomplete("backends", "name"):
				v.add(tp+".backend", "unknown backend %q", t.Backend)
			}
			if t.Model == "" {
				v.add(tp+".model", "must not be empty")
			}
			if first, dup := targets[bm{t.Backend, t.Model}]; dup {
				v.add(tp, "duplicate target: backend %q, model %q%s", t.Backend, t.Model, v.lineOf(first))
			} else {
				targets[bm{t.Backend, t.Model}] = tp
			}
			v.nonNeg(tp+".weight", t.Weight)
			if t.Weight > 0 {
				total += t.Weight
			}
		}
		if stOK && st.Weighted && len(m.Targets) > 0 && total == 0 {
			v.add(p+".targets", "strategy %s needs a target with a positive weight", st.Name)
		}
		v.routing(p+".routing", m.Strategy, &m.Routing)
		r := &m.Retry
		if r.Attempts < 1 {
			v.add(p+".retry.attempts", "must be at least 1 (the first try), got %d", r.Attempts)
		}
		if math.IsNaN(r.Budget) || r.Budget < 0 || r.Budget > 1 {
			v.add(p+".retry.budget", "must be from 0 to 1, got %v", r.Budget)
		}
		v.nonNeg(p+".retry.min_per_second", r.MinPerSecond)
		v.problems(p+".limits", CheckLimits(m.Limits))
		v.prices(p+".prices", m.Prices)
		v.batching(p+".batching", m.Batching)
	}
	// Fallbacks, once every pool name is known.
	for i := range v.c.Models {
		m := &v.c.Models[i]
		dup := map[string]bool{}
		for j, f := range m.Fallbacks {
			fp := indexPath(indexPath("models", i)+".fallbacks", j)
			_, ok := pools[f]
			switch {
			case f == "":
				v.add(fp, "must name a model pool")
			case f == m.Name:
				v.add(fp, "a pool cannot fall back to itself")
			case !ok && !poolsIncomplete:
				v.add(fp, "unknown model pool %q", f)
			case dup[f]:
				v.add(fp, "duplicate fallback %q", f)
			}
			dup[f] = true
		}
	}
	v.fallbackCycles(pools)
	return pools
}

// fallbackCycles reports each loop in the fallback graph once, at the
// fallback entry that closes it (router.FallbackCycles finds them).
func (v *validator) fallbackCycles(pools map[string]int) {
	models := v.c.Models
	router.FallbackCycles(len(models), func(i int) []int {
		fbs := make([]int, len(models[i].Fallbacks))
		for j, f := range models[i].Fallbacks {
			if k, ok := pools[f]; ok && k != i {
				fbs[j] = k
			} else {
				fbs[j] = -1 // unknown or itself: reported as such
			}
		}
		return fbs
	}, func(i, j int, cycle []int) {
		names := make([]string, len(cycle))
		for n, k := range cycle {
			names[n] = models[k].Name
		}
		v.add(indexPath(indexPath("models", i)+".fallbacks", j), "fallback cycle: %s", strings.Join(names, " -> "))
	})
}

func (v *validator) globs(p string, l StringList) {
	if len(l) == 1 {
		v.glob(p, l[0])
		return
	}
	for i, g := range l {
		v.glob(indexPath(p, i), g)
	}
}

func (v *validator) glob(p, g string) {
	if err := ValidGlob(g); err != nil {
		v.add(p, "%v", err)
	}
}

// ValidGlob checks a match pattern. Patterns use Go's path.Match syntax: *
// (any run of characters except /), ? (one character), [a-z] and [^a-z]
// classes, and \ to escape.
func ValidGlob(g string) error {
	if g == "" {
		return errors.New("empty pattern (use \"*\" to match anything)")
	}
	// The router's rules are the only rules: '*' any run, '?' one character.
	if _, err := router.CompileGlob(g); err != nil {
		return err
	}
	return nil
}

func (v *validator) routes(pools map[string]int, poolsIncomplete bool) {
	seen := map[string]string{}
	catchAll := ""
	for i := range v.c.Routes {
		r := &v.c.Routes[i]
		p := indexPath("routes", i)
		v.name(p+".name", "route name", r.Name, seen)
		if catchAll != "" {
			v.add(p, "unreachable: route %q before it matches every request", catchAll)
		}
		m := &r.Match
		v.globs(p+".match.model", m.Model)
		v.globs(p+".match.key", m.Key)
		v.globs(p+".match.tenant", m.Tenant)
		lower := make(map[string]string, len(m.Header))
		for h := range m.Header {
			if other, dup := lower[strings.ToLower(h)]; dup {
				a, b := min(h, other), max(h, other)
				v.add(p+".match.header."+b, "header %q given twice (as %q; header names ignore case)", b, a)
			}
			lower[strings.ToLower(h)] = h
		}
		for h, g := range m.Header {
			hp := p + ".match.header." + h
			if !httpname.Valid(h) {
				v.add(hp, "invalid header name %q", h)
			}
			v.glob(hp, g)
		}
		for k, g := range m.Metadata {
			kp := p + ".match.metadata." + k
			if k == "" {
				v.add(kp, "empty metadata key")
			}
			v.glob(kp, g)
		}
		v.nonNeg(p+".match.min_prompt_bytes", m.MinPromptBytes)
		v.nonNeg(p+".match.max_prompt_bytes", m.MaxPromptBytes)
		if m.MaxPromptBytes > 0 && m.MaxPromptBytes < m.MinPromptBytes {
			v.add(p+".match.max_prompt_bytes", "must be at least min_prompt_bytes (%d), got %d", m.MinPromptBytes, m.MaxPromptBytes)
		}
		for j := range r.Chain {
			if r.Chain[j].Kind == "" {
				v.add(indexPath(p+".chain", j), "empty stage name")
			}
		}
		if r.To != "" {
			if _, ok := pools[r.To]; !ok && !poolsIncomplete {
				v.add(p+".to", "unknown model pool %q", r.To)
			}
		}
		if catchAll == "" && m.empty() {
			catchAll = r.Name
		}
	}
}

func (m *Match) empty() bool {
	return len(m.Model) == 0 && len(m.Header) == 0 && len(m.Key) == 0 && len(m.Tenant) == 0 &&
		len(m.Metadata) == 0 && m.MinPromptBytes == 0 && m.MaxPromptBytes == 0
}

func (v *validator) keys(tenants map[string]bool) {
	ids := map[string]string{}
	hashes := map[[32]byte]string{}
	for i := range v.c.Keys {
		k := &v.c.Keys[i]
		p := indexPath("keys", i)
		v.name(p+".id", "key id", k.ID, ids)
		if k.SHA256 == "" {
			v.add(p+".sha256", "required: the hex SHA-256 of the key")
		} else if sum, err := ParseKeyHash(k.SHA256); err != nil {
			v.add(p+".sha256", "%v", err)
		} else if first, dup := hashes[sum]; dup {
			v.add(p+".sha256", "duplicate key hash%s", v.lineOf(first))
		} else {
			hashes[sum] = p + ".sha256"
		}
		v.globs(p+".models", k.Models)
		// Without a tenants list a key's tenant is a free label (routes
		// match on it); with one, it must be listed.
		if k.Tenant != "" && len(v.c.Tenants) > 0 && !tenants[k.Tenant] {
			v.add(p+".tenant", "unknown tenant %q (tenants lists no such name)", k.Tenant)
		}
		if s := CheckPriority(k.Priority); s != "" {
			v.add(p+".priority", "%s", s)
		}
		v.problems(p+".limits", CheckLimits(k.Limits))
		v.modelLimits(p+".model_limits", k.ModelLimits)
		v.problems(p+".budget", CheckBudget(k.Budget))
		v.problems(p+".metadata", CheckMetadata(k.Metadata))
	}
}

// ParseKeyHash decodes a key's hex SHA-256 (keys[].sha256; either case):
// the one check of key hashes, used by validation and by the gateway.
func ParseKeyHash(s string) (sum [32]byte, err error) {
	if len(s) != 2*len(sum) {
		return sum, fmt.Errorf("invalid SHA-256: want 64 hex digits, got %d characters", len(s))
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, fmt.Errorf("invalid SHA-256: want 64 hex digits (0-9, a-f), got other characters")
	}
	return sum, nil
}

// routing checks a pool's routing block.
func (v *validator) routing(p, strategy string, r *Routing) {
	w := &r.Weights
	for _, f := range []struct {
		key string
		v   float64
	}{{"queue", w.Queue}, {"kv", w.KV}, {"prefix", w.Prefix}, {"tokens", w.Tokens}, {"ttft", w.TTFT}, {"session", w.Session}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 || f.v > 1000 {
			v.add(p+".weights."+f.key, "must be from 0 to 1000, got %v", f.v)
		}
	}
	if q := r.Saturation.Queue; math.IsNaN(q) || q < 0 || math.IsInf(q, 0) {
		v.add(p+".saturation.queue", "must not be negative, got %v", q)
	}
	if kv := r.Saturation.KV; math.IsNaN(kv) || kv < 0 || kv > 1 {
		v.add(p+".saturation.kv", "must be from 0 to 1 (a fraction of the KV cache), got %v", kv)
	}
	if b := r.PrefixIndex.Blocks; b < 0 || b > 1<<26 {
		v.add(p+".prefix_index.blocks", "must be from 0 to %d, got %d", 1<<26, b)
	}
	if r.Replicas < 0 || r.Replicas > 10000 {
		v.add(p+".replicas", "must be from 1 to 10000, got %d", r.Replicas)
	}
	switch s := &r.Session; s.By {
	case "":
		if s.Header != "" {
			v.add(p+".session.header", "only with session.by: header")
		}
		if strategy == StrategyConsistentHash {
			v.add(p+".session.by", "required by strategy consistent_hash (user, header or key)")
		}
		if w.Session > 0 {
			v.add(p+".weights.session", "needs session.by (user, header or key)")
		}
	case SessionByUser, SessionByKey:
		if s.Header != "" {
			v.add(p+".session.header", "only with session.by: header")
		}
	case SessionByHeader:
		if !httpname.Valid(s.Header) {
			v.add(p+".session.header", "want a header name, such as x-session-id; got %q", s.Header)
		}
	default:
		v.add(p+".session.by", "unknown source %q (want user, header or key)", s.By)
	}
}

// batching checks a pool's batching block.
func (v *validator) batching(p string, b *Batching) {
	if b == nil {
		return
	}
	if b.MaxBatchSize < 1 || b.MaxBatchSize > MaxBatchSizeLimit {
		v.add(p+".max_batch_size", "must be from 1 to %d, got %d", MaxBatchSizeLimit, b.MaxBatchSize)
	}
	if b.MaxQueueDelay < 0 || b.MaxQueueDelay > MaxBatchQueueDelay {
		v.add(p+".max_queue_delay", "must be from 0 to %s, got %s", time.Duration(MaxBatchQueueDelay), time.Duration(b.MaxQueueDelay))
	}
	v.nonNeg(p+".max_tokens", b.MaxTokens)
	if b.QueueSize < 1 || b.QueueSize > MaxBatchQueueSizeLimit {
		v.add(p+".queue_size", "must be from 1 to %d, got %d", MaxBatchQueueSizeLimit, b.QueueSize)
	}
	if b.PriorityLevels < 1 || b.PriorityLevels > MaxBatchPriorityLevels {
		v.add(p+".priority_levels", "must be from 1 to %d, got %d", MaxBatchPriorityLevels, b.PriorityLevels)
	} else if b.DefaultPriority < 1 || b.DefaultPriority > b.PriorityLevels {
		v.add(p+".default_priority", "must be a level from 1 to priority_levels (%d), got %d", b.PriorityLevels, b.DefaultPriority)
	}
	if b.MaxInFlight < 1 || b.MaxInFlight > MaxBatchInFlightLimit {
		v.add(p+".max_in_flight", "must be from 1 to %d, got %d", MaxBatchInFlightLimit, b.MaxInFlight)
	}
}
