package router

import (
	"testing"
	"time"
)

// BenchmarkReportSuccess is the breaker's cost per successful attempt:
// without the latency rule, and with it comparing against 15 peers (the
// backend's average above latency_min, so the pool is scanned each time).
func BenchmarkReportSuccess(b *testing.B) {
	for _, tc := range []struct {
		name   string
		factor float64
	}{{"plain", 0}, {"latency-16-targets", 3}} {
		b.Run(tc.name, func(b *testing.B) {
			r, _ := breakerPool(b, UpstreamSpec{FailureThreshold: 3, Cooldown: time.Second, HalfOpenRequests: 1,
				LatencyFactor: tc.factor, LatencyMin: time.Millisecond, LatencyMinSamples: 1}, 16, nil)
			for _, u := range r.Upstreams() {
				observe(u, 5, 100*time.Millisecond)
			}
			a := r.Upstream("a")
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				a.ReportSuccess(now)
			}
		})
	}
}
