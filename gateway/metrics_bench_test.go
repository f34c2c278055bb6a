package gateway

import (
	"testing"
	"time"

	"switchyard/router"
)

// metricsFixture is a generation with two routes, three pools and three
// upstreams, registered with a fresh Metrics as a reload would.
func metricsFixture(tb testing.TB) (*Metrics, *Generation) {
	tb.Helper()
	rt, err := router.New(router.Spec{
		Upstreams: []router.UpstreamSpec{{Name: "up-a"}, {Name: "up-b"}, {Name: "up-c"}},
		Pools: []router.PoolSpec{
			{Name: "chat", Targets: []router.TargetSpec{{Upstream: "up-a"}, {Upstream: "up-b"}}, Fallbacks: []string{"spare"}},
			{Name: "embed", Targets: []router.TargetSpec{{Upstream: "up-c"}}},
			{Name: "spare", Targets: []router.TargetSpec{{Upstream: "up-c"}}},
		},
		Routes: []router.RouteSpec{
			{Name: "team", Headers: map[string]string{"X-Team": "a"}, Pool: "chat"},
			{Name: "default"},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	g := &Generation{Router: rt, ID: genIDs.Add(1)}
	m := newMetrics()
	m.reloaded(true, g)
	return m, g
}

// metricsExchange is a finished non-streamed exchange of g: route "default",
// pool "chat", answered by the pool's first target.
func metricsExchange(g *Generation) *Exchange {
	pool := g.Router.Pools()[0]
	t := pool.Targets[0]
	return &Exchange{
		gen: g, Op: OpChat, Start: time.Now(), Route: g.Router.Routes()[1], Pool: pool,
		Status: 200, Backend: t.Upstream.Name, target: t, tries: 1, upDur: time.Millisecond,
		Usage: Usage{PromptTokens: 12, CompletionTokens: 34},
	}
}

// BenchmarkMetricsRequest is the recording of one finished request, as
// finish does it: request counter, duration and overhead histograms, tokens.
func BenchmarkMetricsRequest(b *testing.B) {
	m, g := metricsFixture(b)
	x := metricsExchange(g)
	m.request(x) // create the series
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m.request(x)
	}
}

// BenchmarkMetricsRequestParallel is the same from every core at once, where
// a shared lock would show.
func BenchmarkMetricsRequestParallel(b *testing.B) {
	m, g := metricsFixture(b)
	m.request(metricsExchange(g))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		x := metricsExchange(g)
		for pb.Next() {
			m.request(x)
		}
	})
}

// BenchmarkMetricsUpstream is one upstream attempt and a stream's histogram
// lookup, the other per-request recordings.
func BenchmarkMetricsUpstream(b *testing.B) {
	m, g := metricsFixture(b)
	x := metricsExchange(g)
	x.upStart = time.Now()
	m.upstreamResult(x, 200)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m.upstreamResult(x, 200)
		m.streamHistograms(x)
	}
}
