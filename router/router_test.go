package router

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// headers is a case-insensitive HeaderGetter, like fasthttp's.
type headers map[string]string

func (h headers) Peek(key string) []byte {
	for k, v := range h {
		if strings.EqualFold(k, key) {
			return []byte(v)
		}
	}
	return nil
}

type metadata map[string]string

func (m metadata) Metadata(key string) ([]byte, bool) {
	v, ok := m[key]
	return []byte(v), ok
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"gpt-4o", "gpt-4o", true},
		{"gpt-4o", "gpt-4o-mini", false},
		{"gpt-4o", "GPT-4o", false},
		{"gpt-*", "gpt-4o", true},
		{"gpt-*", "gpt-", true},
		{"gpt-*", "gpt", false},
		{"*-mini", "gpt-4o-mini", true},
		{"*-mini", "mini", false},
		{"*llama*", "meta-llama-3", true},
		{"*llama*", "llama", true},
		{"*llama*", "lla", false},
		{"gpt-?o", "gpt-4o", true},
		{"gpt-?o", "gpt-40o", false},
		{"?", "é", true},
		{"??", "é", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a*b?c", "ab-bxc", true},
		{"a**b", "ab", true},
		{"llama-*-instruct", "llama-3-instruct", true},
		{"llama-*-instruct", "llama--instruct", true},
		{"llama-*-instruct", "llama-instruct", false},
		{"ab*ba", "aba", false},
		{"ab*ba", "abba", true},
		{"*a*a*a*a*b", strings.Repeat("a", 60), false},
		{"*?", "", false},
		{"*?", "x", true},
		{"*é?", "xéy", true},
		{"x?y", "x\xffy", true},
	}
	for _, tc := range tests {
		g, err := compileGlob(tc.pattern)
		if err != nil {
			t.Fatalf("compileGlob(%q): %v", tc.pattern, err)
		}
		if got := g.match([]byte(tc.s)); got != tc.want {
			t.Errorf("glob %q match %q = %v; want %v", tc.pattern, tc.s, got, tc.want)
		}
		if got := matchGlob(g.pattern, []byte(tc.s)); got != tc.want {
			t.Errorf("general matcher %q match %q = %v; want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
	for _, bad := range []string{"", "a[bc]", `a\*`, "x]", "\xff"} {
		if _, err := compileGlob(bad); err == nil {
			t.Errorf("compileGlob(%q) succeeded; want an error", bad)
		}
	}
}

func testSpec() Spec {
	return Spec{
		Upstreams: []UpstreamSpec{{Name: "a"}, {Name: "b"}, {Name: "c"}},
		Pools: []PoolSpec{
			{Name: "chat", Targets: []TargetSpec{{Upstream: "a", Model: "llama"}, {Upstream: "b", Model: "llama"}}},
			{Name: "big", Targets: []TargetSpec{{Upstream: "c"}}},
			{Name: "gpt-4o", Targets: []TargetSpec{{Upstream: "a"}}},
		},
		Routes: []RouteSpec{
			{Name: "by-key", Keys: []string{"k1", "k2"}, Pool: "big"},
			{Name: "by-tenant", Tenants: []string{"acme"}, Models: []string{"chat-*"}, Pool: "big"},
			{Name: "by-header", Headers: map[string]string{"x-Team": "search*"}, Pool: "big"},
			{Name: "by-meta", Metadata: map[string]string{"env": "prod", "tier": "gold"}, Pool: "big"},
			{Name: "large", MinPromptBytes: 1000, Models: []string{"chat-*"}, Pool: "big"},
			{Name: "small", MaxPromptBytes: 10, Models: []string{"chat-*", "support-?"}, Pool: "chat"},
			{Name: "chat", Models: []string{"chat-*"}, Pool: "chat"},
			{Name: "pass"},
		},
	}
}

func TestMatch(t *testing.T) {
	r, err := New(testSpec())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"key", Request{Model: []byte("x"), KeyID: "k2"}, "by-key"},
		{"key wins over later routes", Request{Model: []byte("chat-1"), KeyID: "k1", Tenant: "acme"}, "by-key"},
		{"unknown key", Request{Model: []byte("x"), KeyID: "k3"}, "pass"},
		{"tenant and model", Request{Model: []byte("chat-1"), Tenant: "acme", PromptBytes: 50}, "by-tenant"},
		{"tenant but not model", Request{Model: []byte("other"), Tenant: "acme"}, "pass"},
		{"header case-insensitive", Request{Model: []byte("x"), Header: headers{"X-TEAM": "search-eu"}}, "by-header"},
		{"header value mismatch", Request{Model: []byte("x"), Header: headers{"x-team": "ads"}}, "pass"},
		{"header value is case-sensitive", Request{Model: []byte("x"), Header: headers{"x-team": "Search"}}, "pass"},
		{"header empty", Request{Model: []byte("x"), Header: headers{"x-team": ""}}, "pass"},
		{"no header getter", Request{Model: []byte("x")}, "pass"},
		{"metadata all", Request{Model: []byte("x"), Metadata: metadata{"env": "prod", "tier": "gold"}}, "by-meta"},
		{"metadata partial", Request{Model: []byte("x"), Metadata: metadata{"env": "prod"}}, "pass"},
		{"large prompt", Request{Model: []byte("chat-1"), PromptBytes: 1000}, "large"},
		{"small prompt", Request{Model: []byte("chat-1"), PromptBytes: 10}, "small"},
		{"small prompt second glob", Request{Model: []byte("support-x"), PromptBytes: 3}, "small"},
		{"mid prompt", Request{Model: []byte("chat-1"), PromptBytes: 500}, "chat"},
		{"pass through", Request{Model: []byte("gpt-4o")}, "pass"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Match(&tc.req)
			if got == nil || got.Name != tc.want {
				t.Fatalf("Match(%+v) = %v; want route %q", tc.req, got, tc.want)
			}
		})
	}
	pass := r.Match(&Request{Model: []byte("gpt-4o")})
	if pass.Pool != nil {
		t.Fatalf("pass-through route has pool %q", pass.Pool.Name)
	}
	if p := r.Pool([]byte("gpt-4o")); p == nil || p.Name != "gpt-4o" {
		t.Fatalf("Pool(gpt-4o) = %v", p)
	}
	if p := r.Pool([]byte("nope")); p != nil {
		t.Fatalf("Pool(nope) = %v; want nil", p)
	}
	if got := r.Match(&Request{Model: []byte("x")}); got.Index != 7 {
		t.Fatalf("pass route index = %d", got.Index)
	}

	none, err := New(Spec{Upstreams: []UpstreamSpec{{Name: "a"}},
		Pools:  []PoolSpec{{Name: "p", Targets: []TargetSpec{{Upstream: "a"}}}},
		Routes: []RouteSpec{{Name: "only", Models: []string{"m"}, Pool: "p"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := none.Match(&Request{Model: []byte("other")}); got != nil {
		t.Fatalf("Match with no matching route = %q; want nil", got.Name)
	}
}

func TestSpecErrors(t *testing.T) {
	base := func() Spec {
		return Spec{
			Upstreams: []UpstreamSpec{{Name: "a"}, {Name: "b"}},
			Pools: []PoolSpec{
				{Name: "p1", Targets: []TargetSpec{{Upstream: "a"}}},
				{Name: "p2", Targets: []TargetSpec{{Upstream: "b"}}},
			},
			Routes: []RouteSpec{{Name: "r1", Pool: "p1"}},
		}
	}
	tests := []struct {
		name   string
		modify func(*Spec)
		want   []string
	}{
		{"upstream empty name", func(s *Spec) { s.Upstreams = append(s.Upstreams, UpstreamSpec{}) }, []string{"upstreams[2]: name is empty"}},
		{"upstream duplicate", func(s *Spec) { s.Upstreams = append(s.Upstreams, UpstreamSpec{Name: "a"}) }, []string{`upstreams[2] "a": duplicate name (also upstreams[0])`}},
		{"upstream negatives", func(s *Spec) {
			s.Upstreams[0] = UpstreamSpec{Name: "a", MaxConcurrency: -1, FailureThreshold: -1, Cooldown: -1}
		}, []string{"max concurrency -1", "failure threshold -1", "cooldown -1ns"}},
		{"pool duplicate", func(s *Spec) { s.Pools = append(s.Pools, PoolSpec{Name: "p1", Targets: []TargetSpec{{Upstream: "a"}}}) }, []string{`pools[2] "p1": duplicate name (also pools[0])`}},
		{"pool empty name", func(s *Spec) { s.Pools = append(s.Pools, PoolSpec{}) }, []string{"pools[2]: name is empty"}},
		{"bad strategy", func(s *Spec) { s.Pools[1].Strategy = "random" }, []string{`pools[1] "p2": unknown strategy "random"`}},
		{"no targets", func(s *Spec) { s.Pools[1].Targets = nil }, []string{`pools[1] "p2": no targets`}},
		{"dangling upstream", func(s *Spec) { s.Pools[0].Targets = append(s.Pools[0].Targets, TargetSpec{Upstream: "zz"}) }, []string{`pools[0] "p1": targets[1]: no upstream "zz"`}},
		{"negative weight", func(s *Spec) { s.Pools[0].Targets[0].Weight = -2 }, []string{"targets[0]: weight -2 must be >= 0"}},
		{"retry", func(s *Spec) { s.Pools[0].Retry = RetrySpec{Attempts: -1} }, []string{"retry attempts -1"}},
		{"retry budget", func(s *Spec) { s.Pools[0].Retry = RetrySpec{Budget: 1.5} }, []string{"retry budget 1.5"}},
		{"dangling fallback", func(s *Spec) { s.Pools[0].Fallbacks = []string{"nope"} }, []string{`pools[0] "p1": fallbacks[0]: no pool "nope"`}},
		{"self fallback", func(s *Spec) { s.Pools[0].Fallbacks = []string{"p1"} }, []string{"cannot fall back to itself"}},
		{"twice fallback", func(s *Spec) { s.Pools[0].Fallbacks = []string{"p2", "p2"} }, []string{`fallbacks[1]: "p2" is listed twice`}},
		{"fallback cycle", func(s *Spec) {
			s.Pools = append(s.Pools, PoolSpec{Name: "p3", Targets: []TargetSpec{{Upstream: "a"}}, Fallbacks: []string{"p1"}})
			s.Pools[0].Fallbacks = []string{"p2"}
			s.Pools[1].Fallbacks = []string{"p3"}
		}, []string{"fallback cycle p1 -> p2 -> p3 -> p1"}},
		{"route empty name", func(s *Spec) { s.Routes = append(s.Routes, RouteSpec{}) }, []string{"routes[1]: name is empty"}},
		{"route duplicate", func(s *Spec) { s.Routes = append(s.Routes, RouteSpec{Name: "r1"}) }, []string{`routes[1] "r1": duplicate name (also routes[0])`}},
		{"dangling pool", func(s *Spec) { s.Routes[0].Pool = "zz" }, []string{`routes[0] "r1": no pool "zz"`}},
		{"bad model glob", func(s *Spec) { s.Routes[0].Models = []string{"ok", "a[b]"} }, []string{`routes[0] "r1": models[1]: pattern "a[b]"`}},
		{"empty model glob", func(s *Spec) { s.Routes[0].Models = []string{""} }, []string{"models[0]: empty pattern"}},
		{"bad header name", func(s *Spec) { s.Routes[0].Headers = map[string]string{"x team": "a"} }, []string{`invalid header name "x team"`}},
		{"same header twice", func(s *Spec) { s.Routes[0].Headers = map[string]string{"X-A": "a", "x-a": "b"} }, []string{`"X-A" and "x-a" are the same header`}},
		{"bad header glob", func(s *Spec) { s.Routes[0].Headers = map[string]string{"x-a": ""} }, []string{`headers["x-a"]: empty pattern`}},
		{"bad metadata", func(s *Spec) { s.Routes[0].Metadata = map[string]string{"": "a", "k": "["} }, []string{"metadata: empty key", `metadata["k"]`}},
		{"empty key and tenant", func(s *Spec) { s.Routes[0].Keys = []string{""}; s.Routes[0].Tenants = []string{""} }, []string{"keys: empty key id", "tenants: empty tenant"}},
		{"prompt bounds", func(s *Spec) { s.Routes[0].MinPromptBytes = 10; s.Routes[0].MaxPromptBytes = 5 }, []string{"min prompt bytes 10 > max prompt bytes 5"}},
		{"negative prompt bound", func(s *Spec) { s.Routes[0].MinPromptBytes = -1 }, []string{"prompt byte bounds must be >= 0"}},
	}
	if _, err := New(base()); err != nil {
		t.Fatalf("base spec: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.modify(&s)
			r, err := New(s)
			if err == nil {
				t.Fatalf("New succeeded (%v); want errors %q", r, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestZeroValues: the router has no defaults; zero values mean what the
// Spec's comments say.
func TestZeroValues(t *testing.T) {
	r, err := New(Spec{
		Upstreams: []UpstreamSpec{{Name: "a"}},
		Pools: []PoolSpec{
			{Name: "p", Targets: []TargetSpec{{Upstream: "a", Model: "m"}}},
			{Name: "q", Targets: []TargetSpec{{Upstream: "a"}}, Retry: RetrySpec{Attempts: 3}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, q := r.Pools()[0], r.Pools()[1]
	if p.Strategy != DefaultStrategy || p.Attempts != 1 || p.Retry != nil || p.Targets[0].Weight != 0 {
		t.Errorf("pool zero values: %+v", p)
	}
	if q.Attempts != 3 || q.Retry == nil || q.Retry.budget != 0 || q.Retry.minPerSec != 0 {
		t.Errorf("retry zero values: %+v %+v", q, q.Retry)
	}
	now := time.Unix(1_000_000, 0)
	q.Retry.Request(now)
	if q.Retry.AllowRetry(now) {
		t.Error("budget 0 with min per second 0 allowed a retry")
	}
	u := r.Upstream("a")
	if u.Cooldown != 0 || u.FailureThreshold != 0 || u.MaxConcurrency != 0 || u != r.Upstreams()[0] {
		t.Errorf("upstream zero values: %+v", u)
	}
	for range 100 {
		if u.ReportFailure(now) != NotEjected {
			t.Fatal("failure threshold 0 ejected the upstream")
		}
	}
	if len(r.Routes()) != 0 {
		t.Errorf("routes: %v", r.Routes())
	}
}

// poolOf builds a router with one pool "p". Under "weighted", targets
// given without a weight get weight 1.
func poolOf(t *testing.T, strategy string, ups []UpstreamSpec, targets []TargetSpec) (*Router, *Pool) {
	t.Helper()
	if strategy == "weighted" {
		targets = slices.Clone(targets)
		for i := range targets {
			if targets[i].Weight == 0 {
				targets[i].Weight = 1
			}
		}
	}
	r, err := New(Spec{Upstreams: ups, Pools: []PoolSpec{{Name: "p", Strategy: strategy, Targets: targets}}})
	if err != nil {
		t.Fatal(err)
	}
	return r, r.Pools()[0]
}

func threeUpstreams() []UpstreamSpec {
	return []UpstreamSpec{{Name: "a"}, {Name: "b"}, {Name: "c"}}
}

func TestRoundRobinExact(t *testing.T) {
	_, p := poolOf(t, "", threeUpstreams(), []TargetSpec{{Upstream: "a"}, {Upstream: "b"}, {Upstream: "c"}})
	var got []string
	for range 7 {
		tg := p.Pick(nil, nil)
		got = append(got, tg.Upstream.Name)
		tg.Upstream.Release()
	}
	if s := strings.Join(got, ""); s != "abcabca" {
		t.Fatalf("round robin order = %s; want abcabca", s)
	}
}

func TestWeightedDistribution(t *testing.T) {
	_, p := poolOf(t, "weighted", threeUpstreams(),
		[]TargetSpec{{Upstream: "a", Weight: 1}, {Upstream: "b", Weight: 3}, {Upstream: "c", Weight: 6}})
	const n = 10000
	counts := map[string]int{}
	for range n {
		tg := p.Pick(nil, nil)
		counts[tg.Upstream.Name]++
		tg.Upstream.Release()
	}
	for name, share := range map[string]float64{"a": 0.1, "b": 0.3, "c": 0.6} {
		// 5 standard deviations: fails by chance about once in 3.5 million runs.
		sd := math.Sqrt(n * share * (1 - share))
		if got := float64(counts[name]); math.Abs(got-n*share) > 5*sd {
			t.Errorf("target %s picked %v times; want %v ± %.0f", name, got, n*share, 5*sd)
		}
	}
}

func TestLeastOutstanding(t *testing.T) {
	r, p := poolOf(t, "least_outstanding", threeUpstreams(),
		[]TargetSpec{{Upstream: "a"}, {Upstream: "b"}, {Upstream: "c"}})
	a, b := r.Upstream("a"), r.Upstream("b")
	for range 10 {
		a.TryAcquire()
	}
	for range 5 {
		b.TryAcquire()
	}
	counts := map[string]int{}
	for range 3000 {
		tg := p.Pick(nil, nil)
		counts[tg.Upstream.Name]++
		tg.Upstream.Release()
	}
	// a is never less loaded than the other candidate, so never chosen; b
	// only when paired with a (1/3 of pairs), c whenever it is drawn (2/3).
	if counts["a"] != 0 || counts["c"] < 1800 || counts["b"] < 700 {
		t.Fatalf("picks %v; want a never, c about 2000, b about 1000", counts)
	}
	// Held picks spread the load evenly.
	a.st.inflight.Store(0)
	b.st.inflight.Store(0)
	for range 30 {
		p.Pick(nil, nil)
	}
	for _, u := range r.Upstreams() {
		// Power of two choices keeps the spread tight, but not exactly:
		// a target left undrawn several picks in a row falls behind.
		if n := u.Inflight(); n < 5 || n > 15 {
			t.Errorf("upstream %s has %d in flight after 30 held picks; want about 10", u.Name, n)
		}
	}
}

func TestPickAvoidAndHealth(t *testing.T) {
	for _, strategy := range []string{"round_robin", "weighted", "least_outstanding"} {
		t.Run(strategy, func(t *testing.T) {
			r, p := poolOf(t, strategy, []UpstreamSpec{{Name: "a", FailureThreshold: 2, Cooldown: time.Minute}, {Name: "b"}},
				[]TargetSpec{{Upstream: "a"}, {Upstream: "b"}})
			ta, tb := p.Targets[0], p.Targets[1]
			now := time.Unix(1_000_000, 0)
			for range 20 {
				if got := p.PickAt(nil, ta, now); got != tb {
					t.Fatalf("PickAt(avoid a) = %v; want b", got.Upstream.Name)
				}
				tb.Upstream.Release()
			}
			a := r.Upstream("a")
			a.ReportFailure(now)
			if !a.Healthy(now) {
				t.Fatal("ejected after one failure; threshold is 2")
			}
			a.ReportSuccess(now)
			a.ReportFailure(now) // the success reset the count
			if !a.Healthy(now) {
				t.Fatal("ejected after non-consecutive failures")
			}
			a.ReportFailure(now)
			if a.Healthy(now) || !a.Healthy(now.Add(time.Minute)) || a.Healthy(now.Add(time.Minute-1)) {
				t.Fatal("ejection window wrong")
			}
			if got := a.EjectedUntil(); !got.Equal(now.Add(time.Minute)) {
				t.Fatalf("EjectedUntil = %v", got)
			}
			for range 20 {
				if got := p.PickAt(nil, nil, now.Add(time.Second)); got != tb {
					t.Fatalf("picked %s while a is ejected", got.Upstream.Name)
				}
				tb.Upstream.Release()
			}
			// b is the one to avoid but a is ejected: b is still returned.
			if got := p.PickAt(nil, tb, now.Add(time.Second)); got != tb {
				t.Fatalf("PickAt(avoid b) with a ejected = %v; want b", got)
			}
			tb.Upstream.Release()
			r.Upstream("b").SetActiveHealth(false)
			if got := p.PickAt(nil, nil, now.Add(time.Second)); got != nil {
				t.Fatalf("PickAt with every upstream down = %s; want nil", got.Upstream.Name)
			}
			if p.Healthy(now.Add(time.Second)) {
				t.Fatal("pool healthy with every upstream down")
			}
			// Cool-down over: a recovers.
			later := now.Add(time.Minute)
			if !p.Healthy(later) {
				t.Fatal("pool not healthy after the cool-down")
			}
			if got := p.PickAt(nil, nil, later); got != ta {
				t.Fatalf("after cool-down PickAt = %v; want a", got)
			}
			ta.Upstream.Release()
			if !a.EjectedUntil().IsZero() {
				t.Fatal("expired ejection not cleared by the pick")
			}
			r.Upstream("b").SetActiveHealth(true)
			if !r.Upstream("b").Healthy(later) {
				t.Fatal("b not healthy after SetActiveHealth(true)")
			}
		})
	}
}

func TestPickWallClock(t *testing.T) {
	// b is healthy but full, so a may be ejected and nothing is left.
	r, p := poolOf(t, "", []UpstreamSpec{{Name: "a", FailureThreshold: 1, Cooldown: time.Hour}, {Name: "b", MaxConcurrency: 1}},
		[]TargetSpec{{Upstream: "a"}, {Upstream: "b"}})
	if !r.Upstream("b").TryAcquire() {
		t.Fatal("b has no free slot")
	}
	if got := r.Upstream("a").ReportFailure(time.Now()); got != Ejected {
		t.Fatalf("ReportFailure = %v; want Ejected", got)
	}
	if got := p.Pick(nil, nil); got != nil {
		t.Fatal("Pick returned an ejected upstream")
	}
	r.Upstream("a").st.brk.gate.Store(time.Now().Add(-time.Second).UnixNano()) // the cool-down has just ended
	if got := p.Pick(nil, nil); got == nil || got.Upstream.Name != "a" {
		t.Fatal("Pick did not return an upstream whose ejection ended")
	}
}

func TestMaxConcurrency(t *testing.T) {
	for _, strategy := range []string{"round_robin", "weighted", "least_outstanding"} {
		t.Run(strategy, func(t *testing.T) {
			r, p := poolOf(t, strategy, []UpstreamSpec{{Name: "a", MaxConcurrency: 2}, {Name: "b", MaxConcurrency: 1}},
				[]TargetSpec{{Upstream: "a"}, {Upstream: "b"}})
			var held []*Target
			for range 3 {
				tg := p.Pick(nil, nil)
				if tg == nil {
					t.Fatalf("Pick = nil with %d of 3 slots held", len(held))
				}
				held = append(held, tg)
			}
			if tg := p.Pick(nil, nil); tg != nil {
				t.Fatalf("Pick = %s with every slot held; want nil", tg.Upstream.Name)
			}
			if a, b := r.Upstream("a").Inflight(), r.Upstream("b").Inflight(); a != 2 || b != 1 {
				t.Fatalf("inflight a=%d b=%d; want 2 and 1", a, b)
			}
			held[0].Upstream.Release()
			if tg := p.Pick(nil, nil); tg != held[0] {
				t.Fatalf("after a release Pick = %v; want %s", tg, held[0].Upstream.Name)
			}
		})
	}
	r1, err := New(Spec{Upstreams: []UpstreamSpec{{Name: "u", MaxConcurrency: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	u := r1.Upstream("u")
	if !u.TryAcquire() || u.TryAcquire() {
		t.Fatal("TryAcquire ignores MaxConcurrency")
	}
	u.Release()
	if !u.TryAcquire() {
		t.Fatal("TryAcquire after Release failed")
	}
}

func TestSingleTargetPool(t *testing.T) {
	r, p := poolOf(t, "least_outstanding", []UpstreamSpec{{Name: "a", MaxConcurrency: 1}}, []TargetSpec{{Upstream: "a"}})
	tg := p.Pick(nil, p.Targets[0])
	if tg == nil {
		t.Fatal("single target avoided although it is the only one")
	}
	if p.Pick(nil, nil) != nil {
		t.Fatal("single target over its concurrency")
	}
	tg.Upstream.Release()
	r.Upstream("a").SetActiveHealth(false)
	if p.Pick(nil, nil) != nil {
		t.Fatal("single target picked while down")
	}
}

func TestRetryBudget(t *testing.T) {
	b := newRetryBudget(0.2, 2)
	start := time.Unix(1_700_000_000, 0)
	allowed := make([]int, 60) // retries allowed per second
	for sec := range 60 {
		for i := range 100 { // 100 requests a second, each wanting a retry
			now := start.Add(time.Duration(sec)*time.Second + time.Duration(i)*10*time.Millisecond)
			b.Request(now)
			if b.AllowRetry(now) {
				allowed[sec]++
			}
		}
	}
	for sec := range 60 {
		// Over any 10 s window: at most 20% of the requests, plus the floor.
		lo := max(0, sec-9)
		var retries int
		for s := lo; s <= sec; s++ {
			retries += allowed[s]
		}
		requests := (sec - lo + 1) * 100
		if float64(retries) > 0.2*float64(requests)+2*float64(sec-lo+1) {
			t.Fatalf("second %d: %d retries for %d requests in the window", sec, retries, requests)
		}
		if allowed[sec] < 2 {
			t.Fatalf("second %d: %d retries; the floor is 2", sec, allowed[sec])
		}
	}
	// Steady state: the window holds 1000 requests, so about 20 retries/s.
	if got := allowed[59]; got < 15 || got > 25 {
		t.Fatalf("steady state: %d retries/s; want about 20", got)
	}

	// Quiet pool: no requests, the floor still allows MinPerSecond a second.
	q := newRetryBudget(0.2, 3)
	now := start
	n := 0
	for range 10 {
		if q.AllowRetry(now) {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("quiet pool allowed %d retries in one second; want 3", n)
	}
	if !q.AllowRetry(now.Add(time.Second)) {
		t.Fatal("floor did not reset in the next second")
	}

	// Old requests leave the window.
	w := newRetryBudget(0.5, 0)
	for range 10 {
		w.Request(start)
	}
	if !w.AllowRetry(start.Add(9 * time.Second)) {
		t.Fatal("requests 9 s ago should still count")
	}
	if w.AllowRetry(start.Add(10 * time.Second)) {
		t.Fatal("requests 10 s ago should have left the window")
	}

	var nilBudget *RetryBudget
	nilBudget.Request(now)
	if nilBudget.AllowRetry(now) {
		t.Fatal("nil budget allowed a retry")
	}
}

func TestSharedState(t *testing.T) {
	sa, sb, lock := new(UpstreamState), new(UpstreamState), new(sync.Mutex)
	spec := Spec{EjectLock: lock, Upstreams: []UpstreamSpec{{Name: "a", FailureThreshold: 1, Cooldown: time.Minute, State: sa}, {Name: "b", MaxConcurrency: 2, State: sb}}}
	old, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	if got := old.Upstream("a").ReportFailure(now); got != Ejected {
		t.Fatalf("ReportFailure = %v; want Ejected (a serves no pool)", got)
	}
	old.Upstream("b").SetActiveHealth(false)
	ob := old.Upstream("b")
	for range 2 {
		if !ob.TryAcquire() {
			t.Fatal("old b: no free slot")
		}
	}
	next, err := New(Spec{EjectLock: lock,
		Upstreams: []UpstreamSpec{{Name: "b", MaxConcurrency: 3, State: sb}, {Name: "a", FailureThreshold: 1, Cooldown: time.Minute, State: sa}, {Name: "c"}},
		Pools:     []PoolSpec{{Name: "p", Targets: []TargetSpec{{Upstream: "b"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if next.Upstream("a").Healthy(now) || next.Upstream("b").Healthy(now) || !next.Upstream("c").Healthy(now) {
		t.Fatal("health not carried over by name")
	}
	nb := next.Upstream("b")
	nb.SetActiveHealth(true)
	if ob.Healthy(now) != true {
		t.Error("active health set on the new router not seen by the old one")
	}
	// The two requests of the old router count against the new limit of 3.
	if n := nb.Inflight(); n != 2 {
		t.Fatalf("new b in flight = %d; want the old router's 2", n)
	}
	p := next.Pools()[0]
	if p.PickAt(nil, nil, now) == nil {
		t.Fatal("no third slot under the new limit of 3")
	}
	if p.PickAt(nil, nil, now) != nil {
		t.Fatal("a fourth slot was given: the old router's requests were not counted")
	}
	ob.Release() // an old request ends: its slot frees the new router's counter
	if p.PickAt(nil, nil, now) == nil {
		t.Fatal("the slot released through the old router is not free in the new one")
	}
	if nb.MaxConcurrency != 3 || ob.MaxConcurrency != 2 {
		t.Errorf("limits must stay each router's own: new %d, old %d", nb.MaxConcurrency, ob.MaxConcurrency)
	}
}

// TestEjectionRule: an ejection that would leave a pool with no healthy
// target is refused.
func TestEjectionRule(t *testing.T) {
	up := func(name string) UpstreamSpec {
		return UpstreamSpec{Name: name, FailureThreshold: 2, Cooldown: time.Minute}
	}
	now := time.Unix(1_000_000, 0)
	tests := []struct {
		name  string
		pools []PoolSpec
		setup func(r *Router)
		want  Ejection
	}{
		{"only target of its pool", []PoolSpec{{Name: "p", Targets: []TargetSpec{{Upstream: "a"}}}}, nil, EjectionRefused},
		{"another healthy target", []PoolSpec{{Name: "p", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}}}}, nil, Ejected},
		{"the other target ejected", []PoolSpec{{Name: "p", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}}}},
			func(r *Router) { r.Upstream("b").st.brk.gate.Store(now.Add(time.Second).UnixNano()) }, EjectionRefused},
		{"the other target's ejection over", []PoolSpec{{Name: "p", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}}}},
			func(r *Router) { r.Upstream("b").st.brk.gate.Store(now.UnixNano()) }, Ejected},
		{"the other target down by active check", []PoolSpec{{Name: "p", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}}}},
			func(r *Router) { r.Upstream("b").SetActiveHealth(false) }, EjectionRefused},
		{"the same upstream twice, for two models", []PoolSpec{{Name: "p", Targets: []TargetSpec{{Upstream: "a", Model: "x"}, {Upstream: "a", Model: "y"}}}}, nil, EjectionRefused},
		{"weighted: the other target has weight 0", []PoolSpec{{Name: "p", Strategy: "weighted", Targets: []TargetSpec{{Upstream: "a", Weight: 1}, {Upstream: "b"}}}}, nil, EjectionRefused},
		{"weighted: the other target has weight 1", []PoolSpec{{Name: "p", Strategy: "weighted", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b", Weight: 1}}}}, nil, Ejected},
		{"round robin: weight 0 does not matter", []PoolSpec{{Name: "p", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}}}}, nil, Ejected},
		{"last of a second pool", []PoolSpec{
			{Name: "p", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}}},
			{Name: "q", Targets: []TargetSpec{{Upstream: "a"}}},
		}, nil, EjectionRefused},
		{"serves no pool", []PoolSpec{{Name: "p", Targets: []TargetSpec{{Upstream: "b"}}}}, nil, Ejected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(Spec{Upstreams: []UpstreamSpec{up("a"), up("b")}, Pools: tc.pools})
			if err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(r)
			}
			a := r.Upstream("a")
			if got := a.ReportFailure(now); got != NotEjected {
				t.Fatalf("first failure: %v; want NotEjected (threshold 2)", got)
			}
			if got := a.ReportFailure(now); got != tc.want {
				t.Fatalf("second failure: %v; want %v", got, tc.want)
			}
			if healthy := a.Healthy(now); healthy != (tc.want != Ejected) {
				t.Fatalf("healthy after %v = %v", tc.want, healthy)
			}
			// A refused ejection starts the count again.
			if got := a.ReportFailure(now); got != NotEjected {
				t.Fatalf("third failure: %v; want NotEjected", got)
			}
		})
	}
}

// TestOnReturn: the first pick after the cool-down, and only it, reports
// the upstream's return (to closed, without a half-open state).
func TestOnReturn(t *testing.T) {
	var returned []string
	r, err := New(Spec{
		Upstreams: []UpstreamSpec{{Name: "a", FailureThreshold: 1, Cooldown: time.Minute}, {Name: "b"}},
		Pools:     []PoolSpec{{Name: "p", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}}}},
		OnTransition: func(u *Upstream, tr Transition) {
			if tr.From == Open && tr.To == Closed {
				returned = append(returned, u.Name)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := r.Pools()[0]
	now := time.Unix(1_000_000, 0)
	if got := r.Upstream("a").ReportFailure(now); got != Ejected {
		t.Fatalf("ReportFailure = %v; want Ejected", got)
	}
	for i := range 4 {
		if tg := p.PickAt(nil, nil, now.Add(time.Second)); tg != nil {
			tg.Upstream.Release()
		}
		if i == 3 && len(returned) != 0 {
			t.Fatalf("OnReturn called during the cool-down: %v", returned)
		}
	}
	for range 4 {
		if tg := p.PickAt(nil, nil, now.Add(time.Minute)); tg != nil {
			tg.Upstream.Release()
		}
	}
	if !slices.Equal(returned, []string{"a"}) {
		t.Fatalf("OnReturn calls = %v; want exactly one for a", returned)
	}
}

func TestFallbackCycles(t *testing.T) {
	type edge struct{ i, j int }
	tests := []struct {
		name  string
		graph [][]int
		want  map[edge]string // closing entry -> cycle
	}{
		{"none", [][]int{{1, 2}, {2}, {}}, map[edge]string{}},
		{"two", [][]int{{1}, {0}}, map[edge]string{{1, 0}: "[0 1 0]"}},
		{"three, closed late", [][]int{{-1, 1}, {2}, {0}}, map[edge]string{{2, 0}: "[0 1 2 0]"}},
		{"two loops", [][]int{{1}, {0, 2}, {3}, {2}}, map[edge]string{{1, 0}: "[0 1 0]", {3, 0}: "[2 3 2]"}},
		{"unknown and out of range skipped", [][]int{{-1, 7}, {1}}, map[edge]string{{1, 0}: "[1 1]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[edge]string{}
			FallbackCycles(len(tc.graph), func(i int) []int { return tc.graph[i] }, func(i, j int, cycle []int) {
				if _, dup := got[edge{i, j}]; dup {
					t.Errorf("entry %d.%d reported twice", i, j)
				}
				got[edge{i, j}] = fmt.Sprint(cycle)
			})
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("graph %v: cycles %v, want %v", tc.graph, got, tc.want)
			}
		})
	}
}
