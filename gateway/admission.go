package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"switchyard/gateway/config"
	"switchyard/internal/limit"
	"switchyard/internal/respool"
	"switchyard/internal/shed"
	"switchyard/internal/spend"
	"switchyard/router"
)

// Admission runs after routing and before the chain, for every request
// whatever its route: the caller's budget, the rate limits of its key, its
// tenant, the model pool and key x model, and the pool's capacity with
// priority shedding. What it takes (tokens reserved, a concurrency slot, a
// place in the pool) is given back when the exchange ends, in settle.

// admission is a generation's admission settings, compiled.
type admission struct {
	limiter    limit.Limiter
	poolChecks []limit.Check // by pool index; Name "" when the pool has no limits
	gates      []*shed.Gate  // by pool index; nil when the pool has no capacity
	prices     []*poolPrice  // by pool index; nil when unpriced
	wait       [shed.NumClasses]time.Duration
	tenants    map[string]*tenant
	reserveMax int64
	closed     bool // on_redis_error: closed
}

// tenant is a tenant's settings, compiled.
type tenant struct {
	name        string
	models      []router.Glob
	class       shed.Class
	check       limit.Check // Name "" without limits
	modelLimits []modelLimit
	budget      budget
	metadata    map[string]string
	softWarned  atomic.Int64 // start (unix) of the period last warned about
}

type modelLimit struct {
	glob  router.Glob
	check limit.Check
}

// budget is a spend cap in billionths of a USD.
type budget struct {
	period     spend.Period
	hard, soft int64
}

func (b budget) set() bool { return b.hard > 0 || b.soft > 0 }

// poolPrice is a pool's prices in USD per million tokens.
type poolPrice struct{ in, cached, out float64 }

// cost is the price of u in billionths of a USD.
func (p *poolPrice) cost(u Usage) int64 {
	if p == nil {
		return 0
	}
	cached := min(max(u.CachedTokens, 0), u.PromptTokens)
	// USD per million tokens = 1000 nano-USD per token.
	c := (float64(u.PromptTokens-cached)*p.in + float64(cached)*p.cached + float64(u.CompletionTokens)*p.out) * 1000
	if c > math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return int64(math.Round(c))
}

func nanoUSD(usd float64) int64 { return int64(math.Round(usd * 1e9)) }

func classOf(priority string) shed.Class {
	switch priority {
	case config.PriorityCritical:
		return shed.Critical
	case config.PrioritySheddable:
		return shed.Sheddable
	}
	return shed.Standard
}

// className is the metrics label and API name of c.
func className(c shed.Class) string {
	switch c {
	case shed.Critical:
		return config.PriorityCritical
	case shed.Sheddable:
		return config.PrioritySheddable
	}
	return config.PriorityStandard
}

func toLimit(l config.Limits) limit.Limit {
	return limit.Limit{RPM: l.RPM, RequestBurst: l.Burst, TPM: l.TPM, TokenBurst: l.TPMBurst, Concurrency: l.Concurrency}
}

func compileBudget(b config.Budget) budget {
	p := spend.Month
	if b.Period == config.PeriodDay {
		p = spend.Day
	}
	return budget{period: p, hard: nanoUSD(b.Hard), soft: nanoUSD(b.Soft)}
}

func compileModelLimits(prefix string, m map[string]config.Limits) ([]modelLimit, error) {
	var out []modelLimit
	for g, l := range m {
		gl, err := router.CompileGlob(g)
		if err != nil {
			return nil, fmt.Errorf("model_limits %q: %w", g, err)
		}
		out = append(out, modelLimit{glob: gl, check: limit.Check{Name: prefix + "|model:" + g, Limit: toLimit(l)}})
	}
	return out, nil
}

// keySettings are what a key carries, from the config or from the store
// (the JSON of a key made through the admin API).
type keySettings struct {
	Tenant      string                   `json:"tenant,omitempty"`
	Models      []string                 `json:"models,omitempty"`
	Priority    string                   `json:"priority,omitempty"`
	Limits      config.Limits            `json:"limits,omitzero"`
	ModelLimits map[string]config.Limits `json:"model_limits,omitempty"`
	Budget      config.Budget            `json:"budget,omitzero"`
	Metadata    map[string]string        `json:"metadata,omitempty"`
}

// check returns the problems of settings made through the admin API, as
// validation finds them in the config.
func (k *keySettings) check(g *Generation) []string {
	var out []string
	if k.Tenant != "" && len(g.Config.Tenants) > 0 {
		if _, ok := g.adm.tenants[k.Tenant]; !ok {
			out = append(out, fmt.Sprintf("tenant: unknown tenant %q", k.Tenant))
		}
	}
	for _, m := range k.Models {
		if err := config.ValidGlob(m); err != nil {
			out = append(out, fmt.Sprintf("models: %q: %v", m, err))
		}
	}
	if s := config.CheckPriority(k.Priority); s != "" {
		out = append(out, "priority: "+s)
	}
	for _, s := range config.CheckLimits(k.Limits) {
		out = append(out, "limits."+s)
	}
	for _, s := range config.CheckModelLimits(k.ModelLimits) {
		out = append(out, "model_limits."+s)
	}
	for _, s := range config.CheckBudget(k.Budget) {
		out = append(out, "budget."+s)
	}
	for _, s := range config.CheckMetadata(k.Metadata) {
		out = append(out, "metadata: "+s)
	}
	return out
}

// newPrincipal compiles a key's settings against g: its allow-lists, its
// class, and the limit checks that apply to each of g's pools.
func (g *Generation) newPrincipal(id string, k *keySettings) (*Principal, error) {
	p := &Principal{KeyID: id, Tenant: k.Tenant, Metadata: k.Metadata}
	for _, m := range k.Models {
		gl, err := router.CompileGlob(m)
		if err != nil {
			return nil, fmt.Errorf("models: %w", err)
		}
		p.models = append(p.models, gl)
	}
	var t *tenant
	if g.adm != nil && k.Tenant != "" {
		t = g.adm.tenants[k.Tenant]
		if t == nil && len(g.Config.Tenants) > 0 {
			return nil, fmt.Errorf("unknown tenant %q", k.Tenant)
		}
	}
	p.tenant = t
	p.class = shed.Standard
	switch {
	case k.Priority != "":
		p.class = classOf(k.Priority)
	case t != nil:
		p.class = t.class
	}
	p.budget = compileBudget(k.Budget)
	if g.adm == nil {
		return p, nil
	}
	own := limit.Check{Name: "key:" + id, Limit: toLimit(k.Limits)}
	mls, err := compileModelLimits("key:"+id, k.ModelLimits)
	if err != nil {
		return nil, err
	}
	p.byPool = make([][]limit.Check, len(g.poolName))
	for i, name := range g.poolKey {
		var cs []limit.Check
		if !k.Limits.IsZero() {
			cs = append(cs, own)
		}
		if t != nil && t.check.Name != "" {
			cs = append(cs, t.check)
		}
		for _, ml := range mls {
			if ml.glob.Match(name) {
				cs = append(cs, ml.check)
			}
		}
		if t != nil {
			for _, ml := range t.modelLimits {
				if ml.glob.Match(name) {
					cs = append(cs, ml.check)
				}
			}
		}
		if len(cs) > limit.MaxChecks-1 { // one is the pool's
			cs = cs[:limit.MaxChecks-1]
		}
		p.byPool[i] = cs
	}
	return p, nil
}

// buildAdmission compiles the admission settings of g. The limiter and the
// pools' gates come from the resource pool, so a reload keeps their state
// when their settings did not change.
func (g *Generation) buildAdmission(o BuildOptions, log *slog.Logger) error {
	cfg := g.Config
	a := &admission{tenants: map[string]*tenant{}, reserveMax: cfg.RateLimit.ReserveMaxTokens,
		closed: cfg.RateLimit.OnRedisError == "closed"}
	a.wait[shed.Critical] = cfg.Admission.Wait.Critical.D()
	a.wait[shed.Standard] = cfg.Admission.Wait.Standard.D()
	for i := range cfg.Tenants {
		ct := &cfg.Tenants[i]
		t := &tenant{name: ct.Name, class: classOf(ct.Priority), budget: compileBudget(ct.Budget), metadata: ct.Metadata}
		for _, m := range ct.Models {
			gl, err := router.CompileGlob(m)
			if err != nil {
				return fmt.Errorf("%s:%d: tenants[%d].models: %w", cfg.File, ct.Line, i, err)
			}
			t.models = append(t.models, gl)
		}
		if !ct.Limits.IsZero() {
			t.check = limit.Check{Name: "tenant:" + ct.Name, Limit: toLimit(ct.Limits)}
		}
		mls, err := compileModelLimits("tenant:"+ct.Name, ct.ModelLimits)
		if err != nil {
			return fmt.Errorf("%s:%d: tenants[%d]: %w", cfg.File, ct.Line, i, err)
		}
		t.modelLimits = mls
		a.tenants[ct.Name] = t
	}

	pools := g.Router.Pools()
	a.poolChecks = make([]limit.Check, len(pools))
	a.gates = make([]*shed.Gate, len(pools))
	a.prices = make([]*poolPrice, len(pools))
	byName := map[string]*config.Model{}
	for i := range cfg.Models {
		byName[cfg.Models[i].Name] = &cfg.Models[i]
	}
	backendCap := map[string]int{}
	for _, b := range cfg.Backends {
		backendCap[b.Name] = b.MaxConcurrency
	}
	for i, p := range pools {
		m := byName[p.Name]
		if m == nil {
			continue
		}
		if !m.Limits.IsZero() {
			a.poolChecks[i] = limit.Check{Name: "pool:" + m.Name, Limit: toLimit(m.Limits)}
		}
		if pr := m.Prices; pr != nil {
			pp := &poolPrice{in: pr.Input, cached: pr.Input, out: pr.Output}
			if pr.CachedInput != nil {
				pp.cached = *pr.CachedInput
			}
			a.prices[i] = pp
		}
		// The pool's capacity: its backends' max_concurrency summed; a
		// backend without one makes the pool's capacity unbounded.
		capacity := 0
		for _, t := range m.Targets {
			c := backendCap[t.Backend]
			if c <= 0 {
				capacity = 0
				break
			}
			capacity += c
		}
		if capacity > 0 && o.Resources != nil {
			queue := cfg.Admission.Queue
			gate, err := respool.Get(g.shared.lease, "admission.gate:"+m.Name+":"+strconv.Itoa(queue), func() (*shed.Gate, error) {
				return shed.New(capacity, queue, o.Metrics.admissionWait), nil
			})
			if err != nil {
				return fmt.Errorf("%s:%d: models %q: its admission gate: %w", cfg.File, m.Line, m.Name, err)
			}
			gate.SetCapacity(capacity)
			a.gates[i] = gate
		}
	}

	lim, err := g.limiter(o, log)
	if err != nil {
		return err
	}
	a.limiter = lim
	g.adm = a
	return nil
}

// limiter returns the rate limiter the config names: kept in the resource
// pool while its settings stay. Without a resource pool (validation) it is
// the generation's own local one.
func (g *Generation) limiter(o BuildOptions, log *slog.Logger) (limit.Limiter, error) {
	rl := g.Config.RateLimit
	if o.Resources == nil || !o.StartSims || rl.Backend != config.RateLimitRedis {
		if o.Resources == nil {
			return limit.NewLocal(limit.LocalOptions{}), nil
		}
		return respool.Get(g.shared.lease, "admission.limiter:local", func() (limit.Limiter, error) {
			return limit.NewLocal(limit.LocalOptions{}), nil
		})
	}
	key, err := respool.Key("admission.limiter:redis", struct {
		URL    string
		Closed bool
	}{rl.Redis.URL.Value(), rl.OnRedisError == "closed"})
	if err != nil {
		return nil, err
	}
	return respool.Get(g.shared.lease, key, func() (limit.Limiter, error) {
		closed := rl.OnRedisError == "closed"
		r, err := limit.NewRedis(limit.RedisOptions{
			URL: rl.Redis.URL.Value(), Closed: closed, Fallback: limit.NewLocal(limit.LocalOptions{}),
			OnStateChange: func(err error) {
				if err != nil {
					log.Error("rate limits: Redis is unreachable", "on_redis_error", rl.OnRedisError, "error", err.Error())
				} else {
					log.Warn("rate limits: Redis is reachable again", "on_redis_error", rl.OnRedisError)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("%s: ratelimit.redis: %w", g.Config.File, err)
		}
		return r, nil
	})
}

// exchangeAdmission is what admission took for one exchange, given back by
// settle.
type exchangeAdmission struct {
	req      limit.Request
	checks   [limit.MaxChecks]limit.Check
	res      limit.Result
	limiter  limit.Limiter // set while tokens are reserved
	gate     *shed.Gate    // set while a slot is held
	limited  bool          // x-ratelimit-* headers to write
	reserved int64
	prices   *poolPrice
	spendOn  bool
}

// admit runs admission for x, routed under gen.
func (s *Server) admit(x *Exchange, gen *Generation) error {
	a := gen.adm
	if a == nil || x.Pool == nil {
		return nil
	}
	pi := x.Pool.Index
	p := x.Principal
	ad := &x.adm
	ad.prices = a.prices[pi]
	now := time.Now()

	if p != nil && s.ledger != nil {
		if err := s.checkBudgets(p, now); err != nil {
			return err
		}
		ad.spendOn = true
	}
	// A pool whose every backend reports, in fresh metrics, a queue or KV
	// cache over its saturation bounds (inference_aware) sheds sheddable
	// requests at once, before they take tokens or a slot.
	if p != nil && p.class == shed.Sheddable && x.Pool.Saturated(now.UnixNano()) {
		s.metrics.shed(x.Pool, shed.Sheddable)
		return &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1,
			Message: "The model `" + x.Pool.Name + "` is saturated (every backend's queue or KV cache is over its bound) and this request's priority (sheddable) does not wait; please retry."}
	}

	checks := ad.checks[:0]
	if p != nil && p.byPool != nil && pi < len(p.byPool) {
		checks = append(checks, p.byPool[pi]...)
	}
	if c := a.poolChecks[pi]; c.Name != "" {
		checks = append(checks, c)
	}
	if len(checks) > 0 {
		r := &ad.req
		r.Checks = checks
		r.Tokens = x.tokenEstimate(a.reserveMax)
		if err := a.limiter.Admit(x.Context(), r, &ad.res); err != nil {
			return asError(err)
		}
		ad.limited = true
		if !ad.res.OK {
			s.metrics.rateLimited(ad.res.Kind, &checks[ad.res.Denied])
			return refusal(&ad.res, &checks[ad.res.Denied], r.Tokens)
		}
		ad.limiter, ad.reserved = a.limiter, r.Tokens
	}

	if g := a.gates[pi]; g != nil {
		class := shed.Standard
		if p != nil {
			class = p.class
		}
		if err := g.Acquire(x.Context(), class, a.wait[class]); err != nil {
			s.settleLimits(x, true)
			return s.shedError(x, class, err)
		}
		ad.gate = g
	}
	return nil
}

// tokenEstimate is what a request reserves against TPM limits: its prompt
// (about 4 bytes a token) and its completion bound.
func (x *Exchange) tokenEstimate(reserveMax int64) int64 {
	n := int64(len(x.Body)+3) / 4
	switch x.Op {
	case OpEmbeddings:
		return n
	}
	switch {
	case x.Fields.HasMaxCompletionTokens && x.Fields.MaxCompletionTokens > 0:
		n += x.Fields.MaxCompletionTokens
	case x.Fields.HasMaxTokens && x.Fields.MaxTokens > 0:
		n += x.Fields.MaxTokens
	default:
		n += reserveMax
	}
	return n
}

// settle gives back what admission took and records the exchange's spend.
// finish calls it once, after the last byte.
func (s *Server) settle(x *Exchange) {
	ad := &x.adm
	if ad.gate != nil {
		ad.gate.Release()
		ad.gate = nil
	}
	s.settleLimits(x, x.Calls == 0)
	if ad.spendOn && x.Principal != nil && s.ledger != nil {
		u := x.TotalUsage()
		if u.PromptTokens > 0 || u.CompletionTokens > 0 {
			s.recordSpend(x.Principal, ad.prices.cost(u), u, time.Now())
		}
	}
}

// settleLimits settles the tokens reserved: with the real usage when the
// upstream reported it, all of it refunded when nothing was dispatched
// (refund), kept whole when usage is unknown after a call (the upstream
// may have spent it).
func (s *Server) settleLimits(x *Exchange, refund bool) {
	ad := &x.adm
	if ad.limiter == nil {
		return
	}
	var delta int64
	u := x.TotalUsage()
	switch {
	case refund:
		delta = -ad.reserved
	case u.PromptTokens > 0 || u.CompletionTokens > 0:
		delta = u.PromptTokens + u.CompletionTokens - ad.reserved
	}
	ad.limiter.Settle(&ad.req, delta)
	ad.limiter = nil
}

// checkBudgets refuses a caller whose key or tenant spent its hard budget,
// and reports one past its soft budget once per period.
func (s *Server) checkBudgets(p *Principal, now time.Time) error {
	if b := p.budget; b.set() {
		spent := s.ledger.Spent(spend.Key, p.KeyID, b.period, now)
		if err := s.budgetCheck("key", p.KeyID, p.Tenant, b, spent, &p.softWarned, now); err != nil {
			return err
		}
	}
	if t := p.tenant; t != nil && t.budget.set() {
		spent := s.ledger.Spent(spend.Tenant, t.name, t.budget.period, now)
		if err := s.budgetCheck("tenant", t.name, t.name, t.budget, spent, &t.softWarned, now); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) budgetCheck(scope, id, tenantName string, b budget, spent int64, warned *atomic.Int64, now time.Time) error {
	if b.hard > 0 && spent >= b.hard {
		s.metrics.budgetRefused(scope, tenantName)
		return &Error{Status: fasthttp.StatusTooManyRequests, Code: CodeInsufficientQuota, Type: "insufficient_quota",
			Message: fmt.Sprintf("You exceeded your current quota: %s %s has spent %s of its %s budget of %s. It resets at the start of the next %s (UTC).",
				scope, quoted(id), usd(spent), periodName(b.period), usd(b.hard), periodName(b.period))}
	}
	if b.soft > 0 && spent >= b.soft {
		s.metrics.budgetSoft(scope, tenantName)
		start := periodStart(b.period, now).Unix()
		if warned.Swap(start) != start {
			s.log.Warn("budget: soft cap passed", "scope", scope, "id", id, "period", periodName(b.period),
				"spent_usd", float64(spent)/1e9, "soft_usd", float64(b.soft)/1e9)
		}
	}
	return nil
}

func periodName(p spend.Period) string {
	if p == spend.Day {
		return config.PeriodDay
	}
	return config.PeriodMonth
}

func periodStart(p spend.Period, now time.Time) time.Time {
	now = now.UTC()
	if p == spend.Day {
		return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	}
	return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func usd(nano int64) string { return "$" + strconv.FormatFloat(float64(nano)/1e9, 'f', 2, 64) }

func quoted(s string) string { return "`" + s + "`" }

// recordSpend adds one exchange's cost and tokens to its key and tenant.
func (s *Server) recordSpend(p *Principal, nano int64, u Usage, now time.Time) {
	s.ledger.Add(spend.Key, p.KeyID, now, nano, u.PromptTokens, u.CompletionTokens)
	if p.Tenant != "" {
		s.ledger.Add(spend.Tenant, p.Tenant, now, nano, u.PromptTokens, u.CompletionTokens)
	}
	s.metrics.tenantUsage(p.Tenant, nano, u)
}

// refusal is the 429 for a refused admission, worded as OpenAI words its own.
func refusal(res *limit.Result, c *limit.Check, requested int64) *Error {
	retry := int(math.Ceil(res.RetryAfter.Seconds()))
	if retry < 1 {
		retry = 1
	}
	scope := scopeOf(c.Name)
	switch res.Kind {
	case limit.Tokens:
		return &Error{Status: fasthttp.StatusTooManyRequests, Code: CodeRateLimited, Type: "tokens", RetryAfter: retry,
			Message: fmt.Sprintf("Rate limit reached for %s on tokens per min (TPM): Limit %d, Remaining %d, Requested %d. Please try again in %s.",
				scope, c.Limit.TPM, max(res.Tokens.Remaining, 0), requested, roundRetry(res.RetryAfter))}
	case limit.TooLarge:
		burst := c.Limit.TokenBurst
		if burst == 0 {
			burst = c.Limit.TPM
		}
		return &Error{Status: fasthttp.StatusTooManyRequests, Code: CodeRateLimited, Type: "tokens",
			Message: fmt.Sprintf("Request too large for %s on tokens per min (TPM): Limit %d, Requested %d. The input or output tokens must be reduced (lower max_tokens) in order to run successfully.",
				scope, burst, requested)}
	case limit.Concurrency:
		return &Error{Status: fasthttp.StatusTooManyRequests, Code: CodeRateLimited, Type: "requests", RetryAfter: retry,
			Message: fmt.Sprintf("Rate limit reached for %s on requests in flight: Limit %d. Please try again when one of them has finished.", scope, c.Limit.Concurrency)}
	case limit.Unavailable:
		return &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: retry,
			Message: "Rate limits cannot be checked right now (their shared store is unreachable); please retry."}
	}
	return &Error{Status: fasthttp.StatusTooManyRequests, Code: CodeRateLimited, Type: "requests", RetryAfter: retry,
		Message: fmt.Sprintf("Rate limit reached for %s on requests per min (RPM): Limit %d, Remaining %d. Please try again in %s.",
			scope, c.Limit.RPM, max(res.Requests.Remaining, 0), roundRetry(res.RetryAfter))}
}

// scopeOf words a bucket name for a client: "key `k1`", "tenant `acme`",
// "model `sim-chat`", "key `k1` on models `gpt-*`".
func scopeOf(name string) string {
	kind, rest, _ := cut(name, ':')
	id, model, hasModel := cutStr(rest, "|model:")
	var w string
	switch kind {
	case "key":
		w = "key " + quoted(id)
	case "tenant":
		w = "tenant " + quoted(id)
	case "pool":
		w = "model " + quoted(id)
	case "route":
		// route:<route>|<by>=<value>: a ratelimit stage's bucket
		r, by, _ := cut(id, '|')
		w = "route " + quoted(r)
		if by != "" {
			w += " per " + by
		}
	default:
		w = kind + " " + quoted(id)
	}
	if hasModel {
		w += " on models " + quoted(model)
	}
	return w
}

func cut(s string, c byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func cutStr(s, sep string) (before, after string, found bool) {
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

func roundRetry(d time.Duration) string {
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return string(appendReset(nil, d))
}

// shedError is the answer to a request the pool's gate refused.
func (s *Server) shedError(x *Exchange, class shed.Class, err error) error {
	switch {
	case errors.Is(err, shed.ErrShed):
		s.metrics.shed(x.Pool, class)
		return &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1,
			Message: "The model `" + x.Pool.Name + "` is at capacity and this request's priority (" + className(class) + ") does not wait; please retry."}
	case errors.Is(err, shed.ErrTimeout):
		s.metrics.shed(x.Pool, class)
		return &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1,
			Message: "The model `" + x.Pool.Name + "` stayed at capacity for the longest wait of " + className(class) + " requests; please retry."}
	}
	return asError(err)
}

// appendReset appends d as OpenAI writes its x-ratelimit-reset-* values
// ("20ms", "1.5s", "6m0s", "1h2m3s").
func appendReset(dst []byte, d time.Duration) []byte {
	if d <= 0 {
		return append(dst, "0s"...)
	}
	if d < time.Second {
		ms := (d + time.Millisecond - 1) / time.Millisecond
		dst = strconv.AppendInt(dst, int64(ms), 10)
		return append(dst, "ms"...)
	}
	d = (d + time.Millisecond - 1) / time.Millisecond * time.Millisecond
	if h := d / time.Hour; h > 0 {
		dst = strconv.AppendInt(dst, int64(h), 10)
		dst = append(dst, 'h')
		d -= h * time.Hour
		m := d / time.Minute
		dst = strconv.AppendInt(dst, int64(m), 10)
		dst = append(dst, 'm')
		d -= m * time.Minute
	} else if m := d / time.Minute; m > 0 {
		dst = strconv.AppendInt(dst, int64(m), 10)
		dst = append(dst, 'm')
		d -= m * time.Minute
	}
	sec := d / time.Second
	dst = strconv.AppendInt(dst, int64(sec), 10)
	if ms := (d - sec*time.Second) / time.Millisecond; ms > 0 {
		dst = append(dst, '.')
		var b [3]byte
		b[0], b[1], b[2] = byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10)
		n := 3
		for n > 1 && b[n-1] == '0' {
			n--
		}
		dst = append(dst, b[:n]...)
	}
	return append(dst, 's')
}

// rateLimitHeaders calls set with the x-ratelimit-* headers of x's
// admission, when a limit applied to it: the tightest request limit and
// the tightest token limit among its checks.
func (x *Exchange) rateLimitHeaders(buf []byte, set func(k string, v []byte)) []byte {
	ad := &x.adm
	if !ad.limited {
		return buf
	}
	q := ad.res.Requests
	if q.Limit > 0 {
		buf = strconv.AppendInt(buf[:0], q.Limit, 10)
		set("x-ratelimit-limit-requests", buf)
		buf = strconv.AppendInt(buf[:0], min(max(q.Remaining, 0), q.Limit), 10)
		set("x-ratelimit-remaining-requests", buf)
		buf = appendReset(buf[:0], q.Reset)
		set("x-ratelimit-reset-requests", buf)
	}
	q = ad.res.Tokens
	if q.Limit > 0 {
		buf = strconv.AppendInt(buf[:0], q.Limit, 10)
		set("x-ratelimit-limit-tokens", buf)
		buf = strconv.AppendInt(buf[:0], min(max(q.Remaining, 0), q.Limit), 10)
		set("x-ratelimit-remaining-tokens", buf)
		buf = appendReset(buf[:0], q.Reset)
		set("x-ratelimit-reset-tokens", buf)
	}
	return buf
}

// limitScope is the metrics label of a bucket's scope.
func limitScope(name string) string {
	kind, rest, _ := cut(name, ':')
	_, _, perModel := cutStr(rest, "|model:")
	switch {
	case kind == "key" && perModel:
		return "key_model"
	case kind == "tenant" && perModel:
		return "tenant_model"
	}
	return kind
}

func limitType(k limit.Kind) string {
	switch k {
	case limit.Tokens:
		return "tokens"
	case limit.Concurrency:
		return "concurrency"
	case limit.TooLarge:
		return "too_large"
	case limit.Unavailable:
		return "unavailable"
	}
	return "requests"
}

func (m *Metrics) rateLimited(k limit.Kind, c *limit.Check) {
	if m == nil {
		return
	}
	m.counter(seriesKey{name: "switchyard_ratelimit_refused_total", l: [4]string{limitScope(c.Name), limitType(k)}}).Inc()
}

func (m *Metrics) budgetRefused(scope, tenantName string) {
	if m == nil {
		return
	}
	m.counter(seriesKey{name: "switchyard_budget_refused_total", l: [4]string{scope, tenantName}}).Inc()
}

func (m *Metrics) budgetSoft(scope, tenantName string) {
	if m == nil {
		return
	}
	m.counter(seriesKey{name: "switchyard_budget_soft_exceeded_total", l: [4]string{scope, tenantName}}).Inc()
}

func (m *Metrics) tenantUsage(tenantName string, nano int64, u Usage) {
	if m == nil {
		return
	}
	if nano > 0 {
		k := seriesKey{name: "switchyard_tenant_spend_usd_total", l: [4]string{tenantName}}
		m.get(k, func(n string) any { return m.set.GetOrCreateFloatCounter(n) }).(*metrics.FloatCounter).Add(float64(nano) / 1e9)
	}
	if u.PromptTokens > 0 {
		m.counter(seriesKey{name: "switchyard_tenant_tokens_total", l: [4]string{tenantName, "prompt"}}).Add(int(u.PromptTokens))
	}
	if u.CompletionTokens > 0 {
		m.counter(seriesKey{name: "switchyard_tenant_tokens_total", l: [4]string{tenantName, "completion"}}).Add(int(u.CompletionTokens))
	}
}

func (m *Metrics) shed(p *router.Pool, c shed.Class) {
	if m == nil {
		return
	}
	m.counter(seriesKey{name: "switchyard_admission_shed_total", l: [4]string{p.Name, className(c)}}).Inc()
}

// admissionWait records a waiter's wait; the gates call it.
func (m *Metrics) admissionWait(c shed.Class, d time.Duration) {
	if m == nil {
		return
	}
	m.histogram(seriesKey{name: "switchyard_admission_wait_seconds", l: [4]string{className(c)}}).Update(d.Seconds())
}

// watchAdmission registers the gauges of the limiter and of the pools'
// gates; they read the current generation when scraped.
func (m *Metrics) watchAdmission(s *Server) {
	if m == nil {
		return
	}
	stats := func() limit.Stats {
		if a := s.gen.Load().adm; a != nil && a.limiter != nil {
			return a.limiter.Stats()
		}
		return limit.Stats{StoreUp: true}
	}
	m.reloadMu.Lock()
	first := !m.watchedNames["\x00admission"]
	m.watchedNames["\x00admission"] = true
	m.reloadMu.Unlock()
	if first {
		m.set.GetOrCreateGauge("switchyard_ratelimit_store_up", func() float64 {
			if stats().StoreUp {
				return 1
			}
			return 0
		})
		// Counters the limiter keeps, copied in before each scrape (a new
		// limiter after a reload that changed the store starts again at 0,
		// which Prometheus reads as a counter reset).
		errs := m.set.GetOrCreateCounter("switchyard_ratelimit_store_errors_total")
		falls := m.set.GetOrCreateCounter("switchyard_ratelimit_fallbacks_total")
		m.reloadMu.Lock()
		m.beforeWrite = append(m.beforeWrite, func() {
			st := stats()
			errs.Set(uint64(st.StoreErrors))
			falls.Set(uint64(st.Fallbacks))
		})
		m.reloadMu.Unlock()
	}
	g := s.gen.Load()
	if g.adm == nil {
		return
	}
	for i, gate := range g.adm.gates {
		if gate == nil {
			continue
		}
		name := g.poolName[i]
		m.reloadMu.Lock()
		seen := m.watchedNames["\x00gate:"+name]
		m.watchedNames["\x00gate:"+name] = true
		m.reloadMu.Unlock()
		if seen {
			continue
		}
		gateStats := func() shed.Stats {
			g := s.gen.Load()
			for i, n := range g.poolName {
				if n == name && g.adm != nil && g.adm.gates[i] != nil {
					return g.adm.gates[i].Stats()
				}
			}
			return shed.Stats{}
		}
		q := strconv.Quote(name)
		m.set.GetOrCreateGauge("switchyard_admission_inflight{model="+q+"}", func() float64 { return float64(gateStats().InFlight) })
		for c := shed.Critical; c < shed.Sheddable; c++ {
			c := c
			m.set.GetOrCreateGauge("switchyard_admission_queue_length{model="+q+",class="+strconv.Quote(className(c))+"}", func() float64 {
				return float64(gateStats().Queued[c])
			})
		}
	}
}

// writeRateLimitHeaders sets the x-ratelimit-* headers of x's admission on h.
func (x *Exchange) writeRateLimitHeaders(h *fasthttp.ResponseHeader) {
	if !x.adm.limited {
		return
	}
	var buf [32]byte
	x.rateLimitHeaders(buf[:0], func(k string, v []byte) { h.SetBytesV(k, v) })
}

// TokenEstimate is what x reserves against a TPM limit: its prompt (about
// 4 bytes a token) and its completion bound (max_completion_tokens,
// max_tokens, else ratelimit.reserve_max_tokens).
func (x *Exchange) TokenEstimate() int64 {
	reserve := int64(config.DefaultReserveMaxTokens)
	if x.gen != nil && x.gen.adm != nil {
		reserve = x.gen.adm.reserveMax
	}
	return x.tokenEstimate(reserve)
}

// MergeLimits adds a stage's admission result to x's x-ratelimit-*
// headers: for requests and for tokens, the limit with less remaining wins.
func (x *Exchange) MergeLimits(res *limit.Result) {
	ad := &x.adm
	if !ad.limited {
		ad.res.Requests, ad.res.Tokens = res.Requests, res.Tokens
		ad.limited = true
		return
	}
	if q := res.Requests; q.Limit > 0 && (ad.res.Requests.Limit == 0 || q.Remaining < ad.res.Requests.Remaining) {
		ad.res.Requests = q
	}
	if q := res.Tokens; q.Limit > 0 && (ad.res.Tokens.Limit == 0 || q.Remaining < ad.res.Tokens.Remaining) {
		ad.res.Tokens = q
	}
}

// RateLimitError is the answer to a request refused by check c (429 with
// OpenAI's wording, type and retry-after; 503 when the limiter's store is
// unreachable), as admission answers its own refusals. requested is the
// tokens the request asked for.
func RateLimitError(res *limit.Result, c *limit.Check, requested int64) *Error {
	return refusal(res, c, requested)
}
