package router_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"switchyard/router"
)

// sessionHash is a balancer written outside the package, as prefix
// affinity or consistent hashing will be: it starts at a hash of the
// request's session key and walks the ring from there.
type sessionHash struct{}

var _ router.Balancer = sessionHash{}

func (sessionHash) Pick(p *router.Pool, req *router.Request, avoid *router.Target, clk router.Clock) *router.Target {
	h := uint64(14695981039346656037) // FNV-1a
	for _, c := range req.SessionKey {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return p.TakeFrom(int(h%uint64(len(p.Targets))), avoid, &clk)
}

func sessionStrategies() *router.Strategies {
	s := router.NewStrategies()
	s.Register(router.Strategy{Name: "session_hash", New: func(*router.Pool) (router.Balancer, error) { return sessionHash{}, nil }})
	return s
}

func sessionPool(t *testing.T) (*router.Router, *router.Pool) {
	t.Helper()
	r, err := router.New(router.Spec{
		Strategies: sessionStrategies(),
		Upstreams:  []router.UpstreamSpec{{Name: "a", FailureThreshold: 1, Cooldown: time.Minute}, {Name: "b"}, {Name: "c"}, {Name: "d"}},
		Pools: []router.PoolSpec{{Name: "p", Strategy: "session_hash",
			Targets: []router.TargetSpec{{Upstream: "a"}, {Upstream: "b"}, {Upstream: "c"}, {Upstream: "d"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, r.Pools()[0]
}

// TestRegisteredBalancerSeesRequest: a strategy registered from outside
// decides by a field of the request, and Pick keeps its own rules around
// it (avoid, health).
func TestRegisteredBalancerSeesRequest(t *testing.T) {
	r, p := sessionPool(t)
	if p.Strategy != "session_hash" {
		t.Fatalf("pool strategy %q", p.Strategy)
	}
	pick := func(req *router.Request, avoid *router.Target, now time.Time) *router.Target {
		t.Helper()
		tg := p.PickAt(req, avoid, now)
		if tg == nil {
			t.Fatalf("PickAt(%q) = nil", req.SessionKey)
		}
		tg.Upstream.Release()
		return tg
	}
	now := time.Unix(1_000_000, 0)
	seen := map[string]bool{}
	for i := range 40 {
		req := &router.Request{SessionKey: fmt.Appendf(nil, "user-%d", i)}
		first := pick(req, nil, now)
		for range 5 {
			if again := pick(req, nil, now); again != first {
				t.Fatalf("session %q went to %s, then %s", req.SessionKey, first.Upstream.Name, again.Upstream.Name)
			}
		}
		seen[first.Upstream.Name] = true
		if other := pick(req, first, now); other == first {
			t.Fatalf("session %q: avoid %s was not avoided", req.SessionKey, first.Upstream.Name)
		}
	}
	if len(seen) < 3 {
		t.Fatalf("40 sessions went to %v only", seen)
	}

	// A session whose target is ejected moves on, and comes back after
	// the cool-down.
	var onA *router.Request
	for i := 0; onA == nil; i++ {
		req := &router.Request{SessionKey: fmt.Appendf(nil, "s%d", i)}
		if pick(req, nil, now).Upstream.Name == "a" {
			onA = req
		}
	}
	if r.Upstream("a").ReportFailure(now) != router.Ejected {
		t.Fatal("a was not ejected")
	}
	if got := pick(onA, nil, now); got.Upstream.Name == "a" {
		t.Fatal("picked the ejected a")
	}
	if got := pick(onA, nil, now.Add(2*time.Minute)); got.Upstream.Name != "a" {
		t.Fatalf("after the cool-down: %s; want a", got.Upstream.Name)
	}
	// A nil request is an empty one.
	if tg := p.Pick(nil, nil); tg == nil {
		t.Fatal("Pick(nil) = nil")
	} else {
		tg.Upstream.Release()
	}
}

type nilBalancer struct{}

func (nilBalancer) Pick(*router.Pool, *router.Request, *router.Target, router.Clock) *router.Target {
	return nil
}

func TestStrategyRegistry(t *testing.T) {
	reg := router.NewStrategies()
	reg.Register(router.Strategy{Name: "broken", New: func(*router.Pool) (router.Balancer, error) { return nil, errors.New("needs a ring size") }})
	reg.Register(router.Strategy{Name: "nothing", New: func(*router.Pool) (router.Balancer, error) { return nil, nil }})
	reg.Register(router.Strategy{Name: "shares", Weighted: true, New: func(*router.Pool) (router.Balancer, error) { return nilBalancer{}, nil }})
	if got, want := strings.Join(reg.Names(), ","), "broken,consistent_hash,inference_aware,least_outstanding,nothing,round_robin,shares,weighted"; got != want {
		t.Errorf("Names() = %s; want %s", got, want)
	}
	if st, ok := reg.Lookup(""); !ok || st.Name != router.DefaultStrategy {
		t.Errorf(`Lookup("") = %v, %v; want %s`, st.Name, ok, router.DefaultStrategy)
	}
	if st, ok := router.BuiltinStrategy("weighted"); !ok || !st.Weighted {
		t.Errorf("BuiltinStrategy(weighted) = %+v, %v", st, ok)
	}
	if _, ok := router.BuiltinStrategy("shares"); ok {
		t.Error("a strategy registered in one registry is built in")
	}
	tests := []struct {
		name, strategy string
		weight         int
		want           string // "" = builds
	}{
		{"registered", "shares", 1, ""},
		{"unknown", "random", 1, `pools[0] "p": unknown strategy "random" (want one of broken, consistent_hash, inference_aware, least_outstanding, nothing, round_robin, shares, weighted)`},
		{"new fails", "broken", 1, `pools[0] "p": strategy broken: needs a ring size`},
		{"no balancer", "nothing", 1, `pools[0] "p": strategy nothing made no balancer`},
		{"weighted, all zero", "shares", 0, `pools[0] "p": strategy shares needs a target with a positive weight`},
		{"builtin weighted, all zero", "weighted", 0, `pools[0] "p": strategy weighted needs a target with a positive weight`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := router.New(router.Spec{Strategies: reg, Upstreams: []router.UpstreamSpec{{Name: "a"}, {Name: "b"}},
				Pools: []router.PoolSpec{{Name: "p", Strategy: tc.strategy,
					Targets: []router.TargetSpec{{Upstream: "a", Weight: tc.weight}, {Upstream: "b"}}}}})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New error %v; want %q", err, tc.want)
			}
		})
	}
	for _, bad := range []router.Strategy{{Name: "round_robin", New: func(*router.Pool) (router.Balancer, error) { return nil, nil }}, {Name: "x"}, {}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q, New nil: %v) did not panic", bad.Name, bad.New == nil)
				}
			}()
			reg.Register(bad)
		}()
	}
}

// TestWeightedRuleAppliesToRegistered: the weight-0 rule follows
// Strategy.Weighted, not the strategy's name.
func TestWeightedRuleAppliesToRegistered(t *testing.T) {
	reg := router.NewStrategies()
	reg.Register(router.Strategy{Name: "shares", Weighted: true, New: func(*router.Pool) (router.Balancer, error) { return nilBalancer{}, nil }})
	r, err := router.New(router.Spec{Strategies: reg, Upstreams: []router.UpstreamSpec{{Name: "a"}, {Name: "b"}},
		Pools: []router.PoolSpec{{Name: "p", Strategy: "shares", Targets: []router.TargetSpec{{Upstream: "a", Weight: 1}, {Upstream: "b", Weight: 0}}}}})
	if err != nil {
		t.Fatal(err)
	}
	p := r.Pools()[0]
	var clk router.Clock
	if !p.Usable(p.Targets[0], &clk) || p.Usable(p.Targets[1], &clk) {
		t.Fatal("Usable ignores the weight-0 rule of a weighted strategy")
	}
	// The balancer finds nothing; avoid is given back as the last resort.
	if tg := p.Pick(nil, p.Targets[0]); tg != p.Targets[0] {
		t.Fatalf("Pick(avoid a) = %v; want a", tg)
	} else {
		tg.Upstream.Release()
	}
	if tg := p.Pick(nil, p.Targets[1]); tg != nil {
		t.Fatalf("Pick(avoid weight-0 b) = %s; want nil", tg.Upstream.Name)
	}
}
