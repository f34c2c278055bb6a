package router

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Strategy is how a pool spreads requests over its targets.
type Strategy uint8

// Balancing strategies.
const (
	RoundRobin       Strategy = iota // "round_robin": each target in turn (atomic counter)
	Weighted                         // "weighted": random, proportional to Target.Weight
	LeastOutstanding                 // "least_outstanding": power of two random choices on Upstream.Inflight
)

var strategyNames = [...]string{RoundRobin: "round_robin", Weighted: "weighted", LeastOutstanding: "least_outstanding"}

// String returns the strategy's config name.
func (s Strategy) String() string {
	if int(s) < len(strategyNames) {
		return strategyNames[s]
	}
	return "unknown"
}

func parseStrategy(s string) (Strategy, bool) {
	if s == "" {
		return RoundRobin, true
	}
	for i, name := range strategyNames {
		if s == name {
			return Strategy(i), true
		}
	}
	return 0, false
}

// Target is one way to serve a pool's requests: an upstream and the model id
// to ask it for.
type Target struct {
	Upstream *Upstream
	Model    string // the backend's model id; "" = forward the requested model unchanged
	Weight   int    // >= 0; under Weighted, 0 = never picked (other strategies ignore it)
	Index    int    // position in Pool.Targets
}

// Pool is a set of targets serving one model, with a balancing strategy,
// fallback pools and a retry policy.
type Pool struct {
	Name      string
	Index     int // position in Router.Pools()
	Strategy  Strategy
	Targets   []*Target
	Fallbacks []*Pool      // tried in order when this pool cannot serve
	Attempts  int          // tries per pool, the first one included; >= 1
	Retry     *RetryBudget // nil when Attempts == 1

	next        atomic.Uint64 // round robin position
	cumWeight   []int         // running sums of target weights
	totalWeight int
}

// Pick chooses a target whose upstream is healthy and below its maximum
// concurrency, avoiding avoid (the target that just failed; may be nil)
// unless it is the only one left. It returns nil when no target can take the
// request; the gateway then answers 503 (there is no fail-open "panic mode":
// an all-ejected pool serves nothing until a cool-down ends or an active
// check succeeds).
//
// On success Pick has taken a concurrency slot on the target's upstream: the
// caller must call t.Upstream.Release() exactly once when the attempt ends.
// Pick reads the clock only if some upstream it looks at was ejected. It is
// safe for concurrent use and allocates nothing.
func (p *Pool) Pick(avoid *Target) *Target {
	var clk lazyClock
	return p.pick(avoid, &clk)
}

// PickAt is Pick with an explicit clock, for tests and simulations.
func (p *Pool) PickAt(avoid *Target, now time.Time) *Target {
	clk := lazyClock{now: now.UnixNano(), set: true}
	return p.pick(avoid, &clk)
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

// serves reports whether t may be picked at all: under Weighted, a target
// of weight 0 never is.
func (p *Pool) serves(t *Target) bool { return p.Strategy != Weighted || t.Weight > 0 }

func (p *Pool) pick(avoid *Target, clk *lazyClock) *Target {
	n := len(p.Targets)
	if n == 1 {
		if t := p.Targets[0]; t.Upstream.healthy(clk) && t.Upstream.TryAcquire() {
			return t
		}
		return nil
	}
	var t *Target
	switch p.Strategy {
	case Weighted:
		t = p.scan(p.weightedIndex(), avoid, clk)
	case LeastOutstanding:
		t = p.leastOutstanding(avoid, clk)
	default:
		t = p.scan(int((p.next.Add(1)-1)%uint64(n)), avoid, clk)
	}
	if t == nil && avoid != nil && avoid.Index < n && p.Targets[avoid.Index] == avoid && p.serves(avoid) &&
		avoid.Upstream.healthy(clk) && avoid.Upstream.TryAcquire() {
		return avoid
	}
	return t
}

// scan takes the first usable target from start on, in ring order.
func (p *Pool) scan(start int, avoid *Target, clk *lazyClock) *Target {
	n := len(p.Targets)
	for k := 0; k < n; k++ {
		i := start + k
		if i >= n {
			i -= n
		}
		if t := p.Targets[i]; t != avoid && p.serves(t) && t.Upstream.healthy(clk) && t.Upstream.TryAcquire() {
			return t
		}
	}
	return nil
}

// weightedIndex draws a target index with probability proportional to its
// weight.
func (p *Pool) weightedIndex() int {
	r := rand.IntN(p.totalWeight)
	lo, hi := 0, len(p.cumWeight)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.cumWeight[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// leastOutstanding compares two distinct random targets and takes the one
// with fewer requests in flight; when neither can be used it falls back to
// the least loaded usable target overall.
func (p *Pool) leastOutstanding(avoid *Target, clk *lazyClock) *Target {
	n := len(p.Targets)
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := p.Targets[i], p.Targets[j]
	if b.Upstream.Inflight() < a.Upstream.Inflight() {
		a, b = b, a
	}
	for _, t := range [2]*Target{a, b} {
		if t != avoid && t.Upstream.healthy(clk) && t.Upstream.TryAcquire() {
			return t
		}
	}
	for {
		var best *Target
		for _, t := range p.Targets {
			if t != avoid && t.Upstream.healthy(clk) && !t.Upstream.full() &&
				(best == nil || t.Upstream.Inflight() < best.Upstream.Inflight()) {
				best = t
			}
		}
		if best == nil {
			return nil
		}
		if best.Upstream.TryAcquire() {
			return best
		}
		// Lost a race for its last slot; look again.
	}
}
