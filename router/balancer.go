package router

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
)

// Balancer chooses a pool's target for one attempt. The pool makes one per
// pool, from its Strategy, when the Router is built, and calls it from
// Pool.Pick, which handles a pool of one target and the "avoid is the only
// target left" case itself.
//
// Pick gets the request view (req is never nil; it must not be changed),
// the target to avoid (the one that just failed; may be nil) and the pick's
// clock, by value: a balancer passes &clk on to Pool.Take, Pool.TakeFrom or
// Pool.Usable so that the clock is read at most once, and only if an
// ejected upstream is looked at. It returns a target for which Take
// succeeded (so it holds a concurrency slot), or nil when none can take the
// request. It must be safe for concurrent use and should allocate nothing.
type Balancer interface {
	Pick(p *Pool, req *Request, avoid *Target, clk Clock) *Target
}

// Strategy is a named way to balance a pool: a config's `strategy`.
type Strategy struct {
	Name string
	// Weighted says the strategy reads Target.Weight. Then a target of
	// weight 0 is never picked (nor counted by the ejection rule as a
	// healthy target of its pool), and a pool needs a target of positive
	// weight.
	Weighted bool
	// New makes the balancer of one pool, once its targets are set. An
	// error is reported under the pool's name.
	New func(p *Pool) (Balancer, error)
}

// Strategies is a registry of strategies by name. Fill it before building
// Routers with it; it is read-only afterwards.
type Strategies struct{ m map[string]Strategy }

// NewStrategies returns a registry of the built-in strategies:
// round_robin, weighted, least_outstanding, inference_aware (inference.go)
// and consistent_hash (consistent.go).
func NewStrategies() *Strategies {
	s := &Strategies{m: map[string]Strategy{}}
	s.Register(Strategy{Name: "round_robin", New: newRoundRobin})
	s.Register(Strategy{Name: "weighted", Weighted: true, New: newWeighted})
	s.Register(Strategy{Name: "least_outstanding", New: func(*Pool) (Balancer, error) { return leastOutstanding{}, nil }})
	s.Register(Strategy{Name: "inference_aware", New: newInferenceAware})
	s.Register(Strategy{Name: "consistent_hash", Weighted: true, New: newConsistentHash})
	return s
}

// builtin serves Specs without Strategies; it is never registered into.
var builtin = NewStrategies()

// DefaultStrategy is the strategy of a pool that names none.
const DefaultStrategy = "round_robin"

// Register adds a strategy; an empty name, a nil New or a name registered
// twice panics (a wiring bug).
func (s *Strategies) Register(st Strategy) {
	switch {
	case st.Name == "" || st.New == nil:
		panic("router: strategy without a name or a New function")
	case s.m[st.Name].New != nil:
		panic("router: strategy registered twice: " + st.Name)
	}
	s.m[st.Name] = st
}

// Lookup returns the strategy of that name; "" is DefaultStrategy.
func (s *Strategies) Lookup(name string) (Strategy, bool) {
	if name == "" {
		name = DefaultStrategy
	}
	st, ok := s.m[name]
	return st, ok
}

// Names lists the registered strategies, sorted.
func (s *Strategies) Names() []string {
	names := make([]string, 0, len(s.m))
	for n := range s.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// BuiltinStrategy looks up a built-in strategy, for config validation.
func BuiltinStrategy(name string) (Strategy, bool) { return builtin.Lookup(name) }

// BuiltinStrategyNames lists the built-in strategies, sorted.
func BuiltinStrategyNames() []string { return builtin.Names() }

// roundRobin takes each target in turn (an atomic counter), skipping those
// that cannot take the request.
type roundRobin struct{ next atomic.Uint64 }

func newRoundRobin(*Pool) (Balancer, error) { return new(roundRobin), nil }

func (b *roundRobin) Pick(p *Pool, _ *Request, avoid *Target, clk Clock) *Target {
	return p.TakeFrom(int((b.next.Add(1)-1)%uint64(len(p.Targets))), avoid, &clk)
}

// weighted draws a target at random, proportionally to Target.Weight, and
// walks the ring from there when it cannot take the request.
type weighted struct {
	cum   []int // running sums of target weights
	total int
}

func newWeighted(p *Pool) (Balancer, error) {
	b := &weighted{cum: make([]int, len(p.Targets))}
	for i, t := range p.Targets {
		b.total += t.Weight
		b.cum[i] = b.total
	}
	if b.total <= 0 {
		return nil, fmt.Errorf("strategy weighted needs a target with a positive weight")
	}
	return b, nil
}

func (b *weighted) Pick(p *Pool, _ *Request, avoid *Target, clk Clock) *Target {
	r := rand.IntN(b.total)
	lo, hi := 0, len(b.cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if b.cum[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return p.TakeFrom(lo, avoid, &clk)
}

// leastOutstanding compares two distinct random targets and takes the one
// with fewer requests in flight (power of two choices on
// Upstream.Inflight); when neither can be used it falls back to the least
// loaded usable target overall.
type leastOutstanding struct{}

func (leastOutstanding) Pick(p *Pool, _ *Request, avoid *Target, clk Clock) *Target {
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
		if t != avoid && p.Take(t, &clk) {
			return t
		}
	}
	for {
		var best *Target
		for _, t := range p.Targets {
			if t != avoid && p.Usable(t, &clk) && !t.Upstream.full() &&
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
