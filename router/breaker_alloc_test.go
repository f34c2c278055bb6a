//go:build !race

package router

import (
	"testing"
	"time"
)

// TestBreakerZeroAllocs: reporting outcomes, with the latency check on,
// and picking a half-open upstream allocate nothing.
func TestBreakerZeroAllocs(t *testing.T) {
	r, p := breakerPool(t, UpstreamSpec{FailureThreshold: 3, Cooldown: time.Second, HalfOpenRequests: 1,
		LatencyFactor: 3, LatencyMin: time.Millisecond, LatencyMinSamples: 1}, 16, nil)
	for _, u := range r.Upstreams() {
		observe(u, 5, 100*time.Millisecond)
	}
	a := r.Upstream("a")
	now := time.Now()
	if n := testing.AllocsPerRun(200, func() {
		a.ReportSuccess(now)
		a.ReportFailure(now)
	}); n != 0 {
		t.Errorf("ReportSuccess + ReportFailure: %v allocs/op, want 0", n)
	}
	a.st.brk.gate.Store(gateHalfOpen)
	if n := testing.AllocsPerRun(200, func() {
		if tg := p.Pick(nil, nil); tg != nil {
			tg.Upstream.Release()
		}
	}); n != 0 {
		t.Errorf("Pick with a half-open upstream: %v allocs/op, want 0", n)
	}
}
