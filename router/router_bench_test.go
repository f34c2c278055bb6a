package router

import (
	"fmt"
	"testing"
	"time"
)

// benchHeaders is an alloc-free HeaderGetter for benchmarks.
type benchHeaders struct{ team []byte }

func (h *benchHeaders) Peek(key string) []byte {
	if key == "X-Team" {
		return h.team
	}
	return nil
}

type benchMeta struct{ env []byte }

func (m *benchMeta) Metadata(key string) ([]byte, bool) {
	if key == "env" {
		return m.env, true
	}
	return nil, false
}

// benchSpec has 20 routes; the request matches the last specific one.
func benchSpec() Spec {
	s := Spec{Upstreams: []UpstreamSpec{{Name: "a", MaxConcurrency: 1000}, {Name: "b"}, {Name: "c"}, {Name: "d"}}}
	for i, st := range []string{"round_robin", "weighted", "least_outstanding"} {
		s.Pools = append(s.Pools, PoolSpec{Name: st, Strategy: st, Retry: RetrySpec{Attempts: 2},
			Targets: []TargetSpec{{Upstream: "a", Weight: 1 + i}, {Upstream: "b", Weight: 2}, {Upstream: "c"}, {Upstream: "d"}}})
	}
	for i := range 18 {
		s.Routes = append(s.Routes, RouteSpec{Name: fmt.Sprintf("r%d", i), Models: []string{fmt.Sprintf("team%d-*", i), "x?y*z"},
			Headers: map[string]string{"x-team": fmt.Sprintf("t%d", i)}, Pool: "round_robin"})
	}
	s.Routes = append(s.Routes,
		RouteSpec{Name: "target", Models: []string{"llama-*-instruct"}, Headers: map[string]string{"x-team": "search*"},
			Tenants: []string{"acme"}, Metadata: map[string]string{"env": "prod"}, MaxPromptBytes: 1 << 20, Pool: "weighted"},
		RouteSpec{Name: "pass"})
	return s
}

func benchRequest() *Request {
	return &Request{Model: []byte("llama-3.1-8b-instruct"), Header: &benchHeaders{team: []byte("search-eu")},
		Tenant: "acme", KeyID: "k1", Metadata: &benchMeta{env: []byte("prod")}, PromptBytes: 2048}
}

var sinkRoute *Route

func BenchmarkMatch(b *testing.B) {
	r, err := New(benchSpec())
	if err != nil {
		b.Fatal(err)
	}
	req := benchRequest()
	b.ReportAllocs()
	for b.Loop() {
		sinkRoute = r.Match(req)
	}
	if sinkRoute.Name != "target" {
		b.Fatalf("matched %q", sinkRoute.Name)
	}
}

func BenchmarkPick(b *testing.B) {
	r, err := New(benchSpec())
	if err != nil {
		b.Fatal(err)
	}
	req := benchRequest()
	for _, p := range r.Pools() {
		b.Run(p.Name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					t := p.Pick(req, nil)
					t.Upstream.Release()
				}
			})
		})
	}
}

func BenchmarkRetryBudget(b *testing.B) {
	rb := newRetryBudget(0.2, 3)
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rb.Request(now)
			_ = rb.AllowRetry(now)
		}
	})
}
