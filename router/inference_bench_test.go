package router

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"
)

// benchAwarePool is a 16-target inference_aware pool with fresh metrics on
// every target and the default weights plus session affinity; half of the
// targets hold the request's prefix, to different depths.
func benchAwarePool(b testing.TB, strategy string) (*Pool, *Request) {
	spec := BalanceSpec{Weights: Weights{Queue: 2, KV: 2, Prefix: 3, Tokens: 1, TTFT: 1, Session: 1},
		SaturatedQueue: 1000, SaturatedKV: 0.99, Session: SessionSpec{By: SessionUser}}
	p := awarePool(b, strategy, 16, spec, true)
	// An 8 KiB prompt: 32 blocks.
	chain := AppendPrefixHashes(nil, bytes.Repeat([]byte("a shared tenant context of many words "), 8192/38+1))
	now := time.Now()
	for i, t := range p.Targets {
		u := t.Upstream
		u.SetLoad(Load{Waiting: float64(i % 5), Running: 8, KVUsage: 0.1 * float64(i%9), BlockSize: 16, GPUBlocks: 8192}, now)
		u.ObserveTTFT(time.Duration(50+i) * time.Millisecond)
		u.AddTokens(100 * i)
		if i%2 == 0 {
			u.prefixIndexFor(u.prefixBlocksWanted(0)).record(chain[:i*2])
		}
	}
	return p, &Request{Prefix: chain, SessionKey: []byte("user-42"), Tokens: 2048}
}

// BenchmarkInferenceAwarePick is one decision over 16 targets, prefix
// recording included; p50-ns and p99-ns are the per-decision latencies.
func BenchmarkInferenceAwarePick(b *testing.B) {
	for _, st := range []string{"inference_aware", "consistent_hash", "least_outstanding", "round_robin"} {
		b.Run(st, func(b *testing.B) {
			p, req := benchAwarePool(b, st)
			lat := make([]time.Duration, 0, min(b.N, 1<<20))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				t := p.Pick(req, nil)
				d := time.Since(t0)
				t.Upstream.Release()
				if len(lat) < cap(lat) {
					lat = append(lat, d)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
			}
		})
	}
}

// BenchmarkPrefixHashes is the gateway's per-request hashing of an 8 KiB
// prompt.
func BenchmarkPrefixHashes(b *testing.B) {
	prompt := bytes.Repeat([]byte("x"), 8192)
	dst := make([]uint64, 0, MaxPrefixBlocks)
	b.ReportAllocs()
	b.SetBytes(int64(len(prompt)))
	for i := 0; i < b.N; i++ {
		dst = AppendPrefixHashes(dst[:0], prompt)
	}
	_ = fmt.Sprint(len(dst))
}
