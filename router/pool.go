package router

import (
	"time"
)

// Target is one way to serve a pool's requests: an upstream and the model id
// to ask it for.
type Target struct {
	Upstream *Upstream
	Model    string // the backend's model id; "" = forward the requested model unchanged
	Weight   int    // >= 0; under a weighted strategy 0 = never picked (other strategies ignore it)
	Index    int    // position in Pool.Targets
}

// Pool is a set of targets serving one model, with a balancing strategy,
// fallback pools and a retry policy.
type Pool struct {
	Name      string
	Index     int    // position in Router.Pools()
	Strategy  string // the strategy's name
	Targets   []*Target
	Fallbacks []*Pool      // tried in order when this pool cannot serve
	Attempts  int          // tries per pool, the first one included; >= 1
	Retry     *RetryBudget // nil when Attempts == 1
	Balance   BalanceSpec  // PoolSpec.Balance, read by the strategies that use it

	bal      Balancer
	weighted bool // Strategy.Weighted: weight-0 targets are out
}

// Pick chooses a target for one attempt of req: its pool's balancer decides
// among the targets whose upstream is healthy and below its maximum
// concurrency, avoiding avoid (the target that just failed; may be nil)
// unless it is the only one left. req is the request's view, as for
// Router.Match; nil is taken as an empty one. Pick returns nil when no
// target can take the request; the gateway then answers 503 (there is no
// fail-open "panic mode": an all-ejected pool serves nothing until a
// cool-down ends or an active check succeeds). A pool of one target does
// not ask its balancer.
//
// On success Pick has taken a concurrency slot on the target's upstream: the
// caller must call t.Upstream.Release() exactly once when the attempt ends.
// Pick reads the clock only if some upstream it looks at was ejected. It is
// safe for concurrent use and allocates nothing (req escapes: pass one that
// lives in something pooled, as the gateway's exchange does).
func (p *Pool) Pick(req *Request, avoid *Target) *Target {
	return p.pick(req, avoid, Clock{})
}

// PickAt is Pick with an explicit clock, for tests and simulations.
func (p *Pool) PickAt(req *Request, avoid *Target, now time.Time) *Target {
	return p.pick(req, avoid, ClockAt(now))
}

// noRequest stands for a nil request; balancers never change requests.
var noRequest Request

func (p *Pool) pick(req *Request, avoid *Target, clk Clock) *Target {
	if len(p.Targets) == 1 {
		if t := p.Targets[0]; p.Take(t, &clk) {
			return t
		}
		return nil
	}
	if req == nil {
		req = &noRequest
	}
	if t := p.bal.Pick(p, req, avoid, clk); t != nil {
		return t
	}
	if avoid != nil && avoid.Index < len(p.Targets) && p.Targets[avoid.Index] == avoid && p.Take(avoid, &clk) {
		return avoid
	}
	return nil
}

// Healthy reports whether at least one target that may be picked has a
// healthy upstream at now. It does not look at concurrency.
func (p *Pool) Healthy(now time.Time) bool {
	for _, t := range p.Targets {
		if p.serves(t) && t.Upstream.Healthy(now) {
			return true
		}
	}
	return false
}

// serves reports whether t may be picked at all: under a weighted
// strategy, a target of weight 0 never is.
func (p *Pool) serves(t *Target) bool { return !p.weighted || t.Weight > 0 }

// Usable reports whether t may take a request at clk: its weight allows it
// (see Strategy.Weighted) and its upstream is healthy. It does not look at
// concurrency. An upstream whose ejection is found over goes back into
// rotation here.
func (p *Pool) Usable(t *Target, clk *Clock) bool {
	return p.serves(t) && t.Upstream.healthy(clk)
}

// Take is Usable and then a concurrency slot on t's upstream: on true the
// caller holds the slot (see Pick).
func (p *Pool) Take(t *Target, clk *Clock) bool {
	return p.Usable(t, clk) && t.Upstream.TryAcquire()
}

// TakeFrom takes the first target from index start on, in ring order,
// that is not avoid and for which Take succeeds; nil when there is none.
// start must be in [0, len(p.Targets)).
func (p *Pool) TakeFrom(start int, avoid *Target, clk *Clock) *Target {
	n := len(p.Targets)
	for k := 0; k < n; k++ {
		i := start + k
		if i >= n {
			i -= n
		}
		if t := p.Targets[i]; t != avoid && p.Take(t, clk) {
			return t
		}
	}
	return nil
}
