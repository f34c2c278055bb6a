package router

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// breakerPool builds upstreams a, b, c, ... (n of them), a with spec a's
// settings and the others with FailureThreshold 1 and a 1s cool-down, in
// one round-robin pool "p". Transitions of every upstream are appended to
// *log as "name from->to reason".
func breakerPool(t testing.TB, a UpstreamSpec, n int, log *[]string) (*Router, *Pool) {
	t.Helper()
	a.Name = "a"
	spec := Spec{Upstreams: []UpstreamSpec{a}, Pools: []PoolSpec{{Name: "p"}}}
	spec.Pools[0].Targets = append(spec.Pools[0].Targets, TargetSpec{Upstream: "a"})
	for i := 1; i < n; i++ {
		name := string(rune('a' + i))
		spec.Upstreams = append(spec.Upstreams, UpstreamSpec{Name: name, FailureThreshold: 1, Cooldown: time.Second})
		spec.Pools[0].Targets = append(spec.Pools[0].Targets, TargetSpec{Upstream: name})
	}
	if log != nil {
		var mu sync.Mutex
		spec.OnTransition = func(u *Upstream, tr Transition) {
			mu.Lock()
			defer mu.Unlock()
			s := fmt.Sprintf("%s %v->%v", u.Name, tr.From, tr.To)
			if tr.Reason != ReasonNone {
				s += " " + tr.Reason.String()
			}
			if tr.Refused != NotRefused {
				s += " refused:" + tr.Refused.String()
			}
			if tr.To == Open {
				s += " " + tr.Cooldown.String()
			}
			*log = append(*log, s)
		}
	}
	r, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	return r, r.Pools()[0]
}

// pickOnly picks from p until it gets u's target (at most 2*len tries),
// and reports whether it did; other targets picked are released.
func pickOnly(p *Pool, u *Upstream) bool {
	for range 2 * len(p.Targets) {
		tg := p.Pick(nil, nil)
		if tg == nil {
			return false
		}
		if tg.Upstream == u {
			return true
		}
		tg.Upstream.Release()
	}
	return false
}

func wantState(t *testing.T, u *Upstream, br BreakerState, cooldown time.Duration, level int) {
	t.Helper()
	s := u.State(time.Now())
	if s.Breaker != br || s.Cooldown != cooldown || s.Level != level {
		t.Fatalf("%s: state %v, cooldown %v, level %d; want %v, %v, %d", u.Name, s.Breaker, s.Cooldown, s.Level, br, cooldown, level)
	}
}

// TestBackoffGrowsAndCaps: each failed probe doubles the cool-down, up to
// MaxCooldown; the transitions are reported in order.
func TestBackoffGrowsAndCaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log []string
		r, p := breakerPool(t, UpstreamSpec{FailureThreshold: 2, Cooldown: time.Second, MaxCooldown: 5 * time.Second, HalfOpenRequests: 1}, 2, &log)
		a := r.Upstream("a")
		if a.ReportFailure(time.Now()) != NotEjected || a.ReportFailure(time.Now()) != Ejected {
			t.Fatal("two failures did not eject a (threshold 2)")
		}
		wantState(t, a, Open, time.Second, 0)
		if s := a.State(time.Now()); s.Reason != ReasonFailures || s.Ejections != 1 || !s.Until.Equal(time.Now().Add(time.Second)) {
			t.Fatalf("state after the ejection: %+v", s)
		}
		for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
			time.Sleep(a.State(time.Now()).Cooldown - time.Millisecond)
			if pickOnly(p, a) {
				t.Fatalf("step %d: a picked before its cool-down ended", i)
			}
			time.Sleep(time.Millisecond)
			if !pickOnly(p, a) {
				t.Fatalf("step %d: no probe let through after the cool-down", i)
			}
			wantState(t, a, HalfOpen, a.State(time.Now()).Cooldown, a.State(time.Now()).Level)
			a.Release()
			if got := a.ReportFailure(time.Now()); got != Ejected {
				t.Fatalf("step %d: a failed probe: %v; want Ejected", i, got)
			}
			wantState(t, a, Open, want, min(i+1, 3))
			if s := a.State(time.Now()); s.Reason != ReasonProbe {
				t.Fatalf("step %d: reason %v; want probe", i, s.Reason)
			}
		}
		want := []string{"a closed->open failures 1s",
			"a open->half-open", "a half-open->open probe 2s",
			"a open->half-open", "a half-open->open probe 4s",
			"a open->half-open", "a half-open->open probe 5s",
			"a open->half-open", "a half-open->open probe 5s"}
		if fmt.Sprint(log) != fmt.Sprint(want) {
			t.Fatalf("transitions:\n%q\nwant:\n%q", log, want)
		}
	})
}

// TestBackoffDecay: a new ejection soon after the return doubles the
// cool-down; each whole MaxCooldown served closed takes one step off.
func TestBackoffDecay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const cd, maxCD = time.Second, 10 * time.Second
		r, p := breakerPool(t, UpstreamSpec{FailureThreshold: 1, Cooldown: cd, MaxCooldown: maxCD, HalfOpenRequests: 1}, 2, nil)
		a := r.Upstream("a")
		// eject fails a and, after its cool-down, closes it with a probe
		// success; then it waits for closedFor.
		cycle := func(closedFor time.Duration) {
			t.Helper()
			if a.ReportFailure(time.Now()) != Ejected {
				t.Fatal("not ejected")
			}
			time.Sleep(a.State(time.Now()).Cooldown)
			if !pickOnly(p, a) {
				t.Fatal("no probe after the cool-down")
			}
			a.Release()
			a.ReportSuccess(time.Now())
			wantState(t, a, Closed, a.State(time.Now()).Cooldown, a.State(time.Now()).Level)
			time.Sleep(closedFor)
		}
		cycle(time.Second) // level 0: 1s
		cycle(time.Second) // back soon: level 1, 2s
		cycle(time.Second) // level 2, 4s
		wantState(t, a, Closed, 4*time.Second, 2)
		cycle(maxCD) // back soon again: level 3, 8s; then one whole MaxCooldown closed
		wantState(t, a, Closed, 8*time.Second, 3)
		cycle(4 * maxCD) // 3+1-1 = level 3 again; then four MaxCooldowns closed
		wantState(t, a, Closed, 8*time.Second, 3)
		if a.ReportFailure(time.Now()) != Ejected {
			t.Fatal("not ejected")
		}
		wantState(t, a, Open, cd, 0) // 3+1-4 < 0: from the start
		if s := a.State(time.Now()); s.Ejections != 6 {
			t.Fatalf("ejections = %d; want 6", s.Ejections)
		}
	})
}

// TestNoHalfOpen: with HalfOpenRequests 0 the first pick after the
// cool-down closes the circuit, and the back-off still grows.
func TestNoHalfOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log []string
		r, p := breakerPool(t, UpstreamSpec{FailureThreshold: 1, Cooldown: time.Second, MaxCooldown: time.Minute}, 2, &log)
		a := r.Upstream("a")
		a.ReportFailure(time.Now())
		time.Sleep(time.Second)
		for range 3 { // no probe limit: several at once
			if !pickOnly(p, a) {
				t.Fatal("a not picked after its cool-down")
			}
		}
		wantState(t, a, Closed, time.Second, 0)
		a.ReportFailure(time.Now())
		wantState(t, a, Open, 2*time.Second, 1)
		if want := "[a closed->open failures 1s a open->closed a closed->open failures 2s]"; fmt.Sprint(log) != want {
			t.Fatalf("transitions %q; want %s", log, want)
		}
	})
}

// TestMaxEjectedPercent: an ejection that would put more than the share
// out is refused, and the last-healthy rule still holds at 100.
func TestMaxEjectedPercent(t *testing.T) {
	for _, tc := range []struct {
		pct  int
		want []Ejection // ejecting a, b, c, d in turn
		rule Refusal    // of every refusal
	}{
		{50, []Ejection{Ejected, Ejected, EjectionRefused, EjectionRefused}, RefusedMaxEjected},
		{25, []Ejection{Ejected, EjectionRefused, EjectionRefused, EjectionRefused}, RefusedMaxEjected},
		{74, []Ejection{Ejected, Ejected, EjectionRefused, EjectionRefused}, RefusedMaxEjected},
		{75, []Ejection{Ejected, Ejected, Ejected, EjectionRefused}, RefusedLastHealthy},
		{100, []Ejection{Ejected, Ejected, Ejected, EjectionRefused}, RefusedLastHealthy},
		{0, []Ejection{Ejected, Ejected, Ejected, EjectionRefused}, RefusedLastHealthy},
	} {
		t.Run(fmt.Sprint(tc.pct), func(t *testing.T) {
			names := []string{"a", "b", "c", "d"}
			spec := Spec{Pools: []PoolSpec{{Name: "p"}}}
			for _, n := range names {
				spec.Upstreams = append(spec.Upstreams, UpstreamSpec{Name: n, FailureThreshold: 1, Cooldown: time.Minute, MaxEjectedPercent: tc.pct})
				spec.Pools[0].Targets = append(spec.Pools[0].Targets, TargetSpec{Upstream: n})
			}
			spec.OnTransition = func(u *Upstream, tr Transition) {
				if tr.Refused != NotRefused {
					if tr.Refused != tc.rule || tr.Pool == nil || tr.Pool.Name != "p" || tr.To != Closed || tr.Reason != ReasonFailures {
						t.Errorf("refusal of %s: %+v; want by rule %v of pool p", u.Name, tr, tc.rule)
					}
				}
			}
			r, err := New(spec)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Unix(1_000_000, 0)
			for i, n := range names {
				if got := r.Upstream(n).ReportFailure(now); got != tc.want[i] {
					t.Fatalf("ejecting %s: %v; want %v", n, got, tc.want[i])
				}
			}
		})
	}
}

// TestMaxEjectedEachPool: the share is checked in every pool the upstream
// serves.
func TestMaxEjectedEachPool(t *testing.T) {
	r, err := New(Spec{
		Upstreams: []UpstreamSpec{
			{Name: "a", FailureThreshold: 1, Cooldown: time.Minute, MaxEjectedPercent: 50},
			{Name: "b", FailureThreshold: 1, Cooldown: time.Minute}, {Name: "c"}, {Name: "d"},
		},
		Pools: []PoolSpec{
			{Name: "big", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}, {Upstream: "c"}, {Upstream: "d"}}},
			{Name: "small", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}, {Upstream: "c"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	if r.Upstream("b").ReportFailure(now) != Ejected {
		t.Fatal("b not ejected")
	}
	// In big a would make 2 of 4 out (50%: allowed), in small 2 of 3.
	if got := r.Upstream("a").ReportFailure(now); got != EjectionRefused {
		t.Fatalf("a: %v; want EjectionRefused (pool small)", got)
	}
}

// observe gives u n TTFT samples of d.
func observe(u *Upstream, n int, d time.Duration) {
	for range n {
		u.ObserveTTFT(d)
	}
}

// TestLatencyOutlier: an upstream whose TTFT average is more than
// LatencyFactor times its peers' median is ejected on a success, with
// enough samples and above the floor, and comes back with a fresh average.
func TestLatencyOutlier(t *testing.T) {
	spec := func(factor float64) UpstreamSpec {
		return UpstreamSpec{Cooldown: time.Second, HalfOpenRequests: 1,
			LatencyFactor: factor, LatencyMin: 100 * time.Millisecond, LatencyMinSamples: 5}
	}
	t.Run("ejected", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var log []string
			r, p := breakerPool(t, spec(3), 4, &log)
			a := r.Upstream("a")
			observe(r.Upstream("b"), 5, 100*time.Millisecond)
			observe(r.Upstream("c"), 5, 120*time.Millisecond)
			observe(r.Upstream("d"), 5, 2*time.Second) // a slow peer does not move the median much
			observe(a, 4, time.Second)
			if got := a.ReportSuccess(time.Now()); got != NotEjected {
				t.Fatalf("with 4 samples: %v; want NotEjected", got)
			}
			observe(a, 1, time.Second)
			if got := a.ReportSuccess(time.Now()); got != Ejected {
				t.Fatalf("1s against a 120ms median: %v; want Ejected", got)
			}
			if s := a.State(time.Now()); s.Breaker != Open || s.Reason != ReasonLatency {
				t.Fatalf("state %+v; want open for latency", s)
			}
			if a.TTFT() != 0 {
				t.Fatalf("TTFT average %v kept after a latency ejection", a.TTFT())
			}
			time.Sleep(time.Second)
			if !pickOnly(p, a) {
				t.Fatal("no probe after the cool-down")
			}
			a.ObserveTTFT(time.Second) // one slow sample is not enough to judge
			a.Release()
			if got := a.ReportSuccess(time.Now()); got != NotEjected {
				t.Fatalf("probe success: %v; want NotEjected", got)
			}
			wantState(t, a, Closed, time.Second, 0)
			if want := "[a closed->open latency 1s a open->half-open a half-open->closed]"; fmt.Sprint(log) != want {
				t.Fatalf("transitions %q; want %s", log, want)
			}
		})
	})
	for _, tc := range []struct {
		name     string
		factor   float64
		a, peers time.Duration
	}{
		{"off", 0, 10 * time.Second, 100 * time.Millisecond},
		{"within the factor", 3, 290 * time.Millisecond, 100 * time.Millisecond},
		{"below the floor", 3, 90 * time.Millisecond, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := breakerPool(t, spec(tc.factor), 3, nil)
			observe(r.Upstream("b"), 5, tc.peers)
			observe(r.Upstream("c"), 5, tc.peers)
			a := r.Upstream("a")
			observe(a, 10, tc.a)
			if got := a.ReportSuccess(time.Now()); got != NotEjected {
				t.Fatalf("%v against %v: %v; want NotEjected", tc.a, tc.peers, got)
			}
		})
	}
	t.Run("peers without samples", func(t *testing.T) {
		r, _ := breakerPool(t, spec(3), 3, nil)
		observe(r.Upstream("b"), 4, time.Millisecond)
		a := r.Upstream("a")
		observe(a, 10, time.Second)
		if got := a.ReportSuccess(time.Now()); got != NotEjected {
			t.Fatalf("nothing to compare with: %v; want NotEjected", got)
		}
	})
	t.Run("refused: last healthy", func(t *testing.T) {
		r, _ := breakerPool(t, spec(3), 2, nil)
		b := r.Upstream("b")
		observe(b, 5, 100*time.Millisecond)
		b.ReportFailure(time.Now()) // b ejected: a is the pool's last
		a := r.Upstream("a")
		observe(a, 5, time.Second)
		if got := a.ReportSuccess(time.Now()); got != EjectionRefused {
			t.Fatalf("%v; want EjectionRefused", got)
		}
	})
	t.Run("every pool", func(t *testing.T) {
		// a serves a slow model next to b and a fast one next to c: next
		// to c it looks slow, next to b it does not.
		r, err := New(Spec{
			Upstreams: []UpstreamSpec{{Name: "a", Cooldown: time.Second, LatencyFactor: 3, LatencyMinSamples: 1}, {Name: "b"}, {Name: "c"}},
			Pools: []PoolSpec{{Name: "slow", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}}},
				{Name: "fast", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "c"}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		observe(r.Upstream("b"), 3, time.Second)
		observe(r.Upstream("c"), 3, 10*time.Millisecond)
		a := r.Upstream("a")
		observe(a, 3, time.Second)
		if got := a.ReportSuccess(time.Now()); got != NotEjected {
			t.Fatalf("%v; want NotEjected (not an outlier in pool slow)", got)
		}
	})
}

// TestHalfOpen: a half-open upstream takes at most HalfOpenRequests
// requests at a time; a slot freed without a verdict lets the next probe
// in; a success closes the circuit; a failure re-opens it.
func TestHalfOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, p := breakerPool(t, UpstreamSpec{FailureThreshold: 1, Cooldown: time.Second, MaxCooldown: time.Minute, HalfOpenRequests: 2}, 2, nil)
		a, b := r.Upstream("a"), r.Upstream("b")
		a.ReportFailure(time.Now())
		time.Sleep(time.Second)
		b.SetActiveHealth(false) // every pick now asks a
		for i := range 2 {
			if tg := p.Pick(nil, nil); tg == nil || tg.Upstream != a {
				t.Fatalf("probe %d not let through", i)
			}
		}
		if tg := p.Pick(nil, nil); tg != nil {
			t.Fatal("a third request let through with HalfOpenRequests 2")
		}
		if a.TryAcquire() {
			t.Fatal("TryAcquire past the half-open limit")
		}
		a.Release() // a probe ended without a verdict (the client left)
		wantState(t, a, HalfOpen, time.Second, 0)
		if tg := p.Pick(nil, nil); tg == nil {
			t.Fatal("the freed probe slot was not given to the next request")
		}
		a.Release()
		a.ReportSuccess(time.Now()) // a probe succeeded: closed
		wantState(t, a, Closed, time.Second, 0)
		for i := range 10 {
			if tg := p.Pick(nil, nil); tg == nil {
				t.Fatalf("request %d refused after the circuit closed", i)
			}
		}
		if n := a.Inflight(); n != 11 {
			t.Fatalf("in flight %d; want 11", n)
		}
		for range 11 {
			a.Release()
		}

		// Again, but the probe fails: open for twice the cool-down.
		b.SetActiveHealth(true)
		a.ReportFailure(time.Now())
		wantState(t, a, Open, 2*time.Second, 1)
		time.Sleep(2 * time.Second)
		if !pickOnly(p, a) {
			t.Fatal("no probe after the second cool-down")
		}
		a.Release()
		if a.ReportFailure(time.Now()) != Ejected {
			t.Fatal("a failed probe did not re-open the circuit")
		}
		wantState(t, a, Open, 4*time.Second, 2)
		if a.ReportSuccess(time.Now()); a.State(time.Now()).Breaker != Open {
			t.Fatal("a late success ended the ejection early")
		}
	})
}

// TestHalfOpenCountsEarlierRequests: requests begun before the ejection
// hold the half-open slots until they end.
func TestHalfOpenCountsEarlierRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, p := breakerPool(t, UpstreamSpec{FailureThreshold: 1, Cooldown: time.Second, HalfOpenRequests: 1}, 2, nil)
		a := r.Upstream("a")
		if !pickOnly(p, a) {
			t.Fatal("a not picked")
		}
		a.ReportFailure(time.Now()) // another request failed; this one is still running
		time.Sleep(time.Second)
		if pickOnly(p, a) {
			t.Fatal("a probe let through while a request begun before the ejection runs")
		}
		a.Release()
		if !pickOnly(p, a) {
			t.Fatal("no probe once it ended")
		}
		a.Release()
	})
}

// TestRefusedReopenCloses: a probe failure whose re-open would leave the
// pool without a healthy target closes the circuit instead.
func TestRefusedReopenCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log []string
		r, p := breakerPool(t, UpstreamSpec{FailureThreshold: 1, Cooldown: time.Second, HalfOpenRequests: 1}, 2, &log)
		a, b := r.Upstream("a"), r.Upstream("b")
		a.ReportFailure(time.Now())
		time.Sleep(time.Second)
		if !pickOnly(p, a) {
			t.Fatal("no probe")
		}
		a.Release()
		b.SetActiveHealth(false)
		if got := a.ReportFailure(time.Now()); got != EjectionRefused {
			t.Fatalf("%v; want EjectionRefused", got)
		}
		wantState(t, a, Closed, time.Second, 0)
		if want := "[a closed->open failures 1s a open->half-open a half-open->closed probe refused:last_healthy]"; fmt.Sprint(log) != want {
			t.Fatalf("transitions %q; want %s", log, want)
		}
	})
}

// TestBreakerConcurrent: many goroutines pick, fail and succeed on a
// breaker with a half-open state; the half-open limit holds and every slot
// is given back (run with -race).
func TestBreakerConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var probes, maxProbes [3]atomic.Int64 // by upstream index
		var transitions atomic.Int64
		spec := Spec{
			Upstreams: []UpstreamSpec{
				{Name: "a", FailureThreshold: 2, Cooldown: 10 * time.Millisecond, MaxCooldown: 80 * time.Millisecond, HalfOpenRequests: 2, MaxEjectedPercent: 50},
				{Name: "b", FailureThreshold: 2, Cooldown: 10 * time.Millisecond, MaxCooldown: 80 * time.Millisecond, HalfOpenRequests: 2, MaxEjectedPercent: 50},
				{Name: "c", FailureThreshold: 2, Cooldown: 10 * time.Millisecond, MaxCooldown: 80 * time.Millisecond, HalfOpenRequests: 2, MaxEjectedPercent: 50},
			},
			Pools:        []PoolSpec{{Name: "p", Strategy: "least_outstanding", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}, {Upstream: "c"}}}},
			OnTransition: func(*Upstream, Transition) { transitions.Add(1) },
		}
		r, err := New(spec)
		if err != nil {
			t.Fatal(err)
		}
		p := r.Pools()[0]
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 300 {
					tg := p.Pick(nil, nil)
					if tg == nil {
						time.Sleep(time.Millisecond)
						continue
					}
					u := tg.Upstream
					half := u.State(time.Now()).Breaker == HalfOpen
					if half {
						n := probes[u.Index].Add(1)
						for m := maxProbes[u.Index].Load(); n > m && !maxProbes[u.Index].CompareAndSwap(m, n); m = maxProbes[u.Index].Load() {
						}
					}
					time.Sleep(time.Millisecond)
					switch {
					case u.Name == "a" && i%3 != 0, (g+i)%5 == 0:
						u.ReportFailure(time.Now())
					case i%7 == 0: // no verdict
					default:
						u.ReportSuccess(time.Now())
					}
					if half {
						probes[u.Index].Add(-1)
					}
					u.Release()
				}
			})
		}
		wg.Wait()
		for _, u := range r.Upstreams() {
			if n := u.Inflight(); n != 0 {
				t.Errorf("%s: %d in flight after all released", u.Name, n)
			}
		}
		if transitions.Load() == 0 {
			t.Error("no transition at all")
		}
		seen := false
		for i := range maxProbes {
			if m := maxProbes[i].Load(); m > 2 {
				t.Errorf("%s: %d half-open requests at once; HalfOpenRequests is 2", r.Upstreams()[i].Name, m)
			} else if m > 0 {
				seen = true
			}
		}
		if !seen {
			t.Error("no half-open request at all")
		}
	})
}
