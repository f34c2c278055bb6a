package router

import (
	"sync"
	"testing"
	"time"
)

// TestConcurrentPick runs picks, releases and health reports from several
// goroutines (meant for -race) and checks that slots are never overbooked.
func TestConcurrentPick(t *testing.T) {
	r, err := New(Spec{
		Upstreams: []UpstreamSpec{{Name: "a", MaxConcurrency: 3, FailureThreshold: 5, Cooldown: time.Second}, {Name: "b", MaxConcurrency: 2}},
		Pools: []PoolSpec{
			{Name: "rr", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}}},
			{Name: "w", Strategy: "weighted", Targets: []TargetSpec{{Upstream: "a", Weight: 3}, {Upstream: "b"}}},
			{Name: "lo", Strategy: "least_outstanding", Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			p := r.Pools()[g%3]
			for i := range 2000 {
				tg := p.Pick(nil, nil)
				if tg == nil {
					continue
				}
				if n := tg.Upstream.Inflight(); n > tg.Upstream.MaxConcurrency {
					t.Errorf("upstream %s has %d in flight; max %d", tg.Upstream.Name, n, tg.Upstream.MaxConcurrency)
				}
				if i%7 == 0 {
					tg.Upstream.ReportFailure(time.Now().Add(-time.Hour))
				} else {
					tg.Upstream.ReportSuccess(time.Now())
				}
				tg.Upstream.Release()
			}
		})
	}
	wg.Wait()
	for _, u := range r.Upstreams() {
		if n := u.Inflight(); n != 0 {
			t.Errorf("upstream %s: %d in flight after all released", u.Name, n)
		}
	}
}
