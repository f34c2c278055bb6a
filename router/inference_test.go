package router

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"
)

// awarePool builds a pool of n upstreams ("u0".."u<n-1>") under strategy
// with spec; metrics marks them as scraped (MetricsStale 1s).
func awarePool(t testing.TB, strategy string, n int, spec BalanceSpec, metrics bool) *Pool {
	t.Helper()
	s := Spec{}
	ps := PoolSpec{Name: "p", Strategy: strategy, Balance: spec}
	for i := range n {
		us := UpstreamSpec{Name: fmt.Sprintf("u%d", i)}
		if metrics {
			us.MetricsStale = time.Second
		}
		s.Upstreams = append(s.Upstreams, us)
		ps.Targets = append(ps.Targets, TargetSpec{Upstream: us.Name, Weight: 1})
	}
	s.Pools = []PoolSpec{ps}
	r, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	return r.Pools()[0]
}

func pickName(t testing.TB, p *Pool, req *Request, now time.Time) string {
	t.Helper()
	tg := p.PickAt(req, nil, now)
	if tg == nil {
		t.Fatal("no target")
	}
	tg.Upstream.Release()
	return tg.Upstream.Name
}

func TestAppendPrefixHashes(t *testing.T) {
	a := bytes.Repeat([]byte("a"), 3*PrefixBlockBytes+10)
	b := bytes.Clone(a)
	b[2*PrefixBlockBytes+1] = 'b' // the third block differs
	ha, hb := AppendPrefixHashes(nil, a), AppendPrefixHashes(nil, b)
	if len(ha) != 3 || len(hb) != 3 {
		t.Fatalf("blocks: %d %d, want 3 (the partial block is not hashed)", len(ha), len(hb))
	}
	if ha[0] != hb[0] || ha[1] != hb[1] || ha[2] == hb[2] {
		t.Fatalf("chains %x %x: want the first two equal, the third different", ha, hb)
	}
	// The chain depends on what came before: equal blocks at different
	// depths hash differently.
	if ha[0] == ha[1] {
		t.Fatal("equal blocks at depths 0 and 1 hash alike")
	}
	if n := len(AppendPrefixHashes(nil, make([]byte, (MaxPrefixBlocks+5)*PrefixBlockBytes))); n != MaxPrefixBlocks {
		t.Fatalf("%d blocks, want the cap %d", n, MaxPrefixBlocks)
	}
	if n := len(AppendPrefixHashes(nil, a[:PrefixBlockBytes-1])); n != 0 {
		t.Fatalf("a prompt shorter than a block: %d blocks", n)
	}
	dst := make([]uint64, 0, MaxPrefixBlocks)
	if allocs := testing.AllocsPerRun(100, func() { dst = AppendPrefixHashes(dst[:0], a) }); allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
}

func TestPrefixIndex(t *testing.T) {
	x := newPrefixIndex(64)
	if x.size != 64 {
		t.Fatalf("size %d", x.size)
	}
	chain := make([]uint64, 10)
	for i := range chain {
		chain[i] = mix64(uint64(i + 1))
	}
	if m := x.match(chain); m != 0 {
		t.Fatalf("empty index matched %d", m)
	}
	x.record(chain[:6])
	tests := []struct {
		name  string
		chain []uint64
		want  int
	}{
		{"the recorded prefix and more", chain, 6},
		{"a shorter prefix", chain[:3], 3},
		{"exactly the recorded", chain[:6], 6},
		{"none", []uint64{12345, 678}, 0},
		{"empty", nil, 0},
	}
	for _, tc := range tests {
		if m := x.match(tc.chain); m != tc.want {
			t.Errorf("%s: match %d, want %d", tc.name, m, tc.want)
		}
	}
}

// TestPrefixIndexEvictsLeastRecent: in a full set, a new hash replaces the
// slot used least recently; the hashes recorded again stay.
func TestPrefixIndexEvictsLeastRecent(t *testing.T) {
	x := newPrefixIndex(prefixWays) // one set
	var hs []uint64
	for i := range prefixWays {
		hs = append(hs, uint64(100+i))
		x.record(hs[i : i+1])
	}
	x.record(hs[:1]) // hs[0] is now the most recent; hs[1] the least
	x.record([]uint64{999})
	if !x.has(hs[0]) || !x.has(999) {
		t.Fatal("the recent hashes were evicted")
	}
	if x.has(hs[1]) {
		t.Fatal("the least recently used hash stayed")
	}
	for _, h := range hs[2:] {
		if !x.has(h) {
			t.Fatalf("%d was evicted", h)
		}
	}
}

// TestPrefixIndexCapacity: an index keeps about its size in blocks: most of
// the last size hashes recorded are found, the first ones of a stream ten
// times larger are gone.
func TestPrefixIndexCapacity(t *testing.T) {
	const size = 4096
	x := newPrefixIndex(size)
	for i := range 10 * size {
		x.record([]uint64{mix64(uint64(i) + 1)})
	}
	recent, old := 0, 0
	for i := 9 * size; i < 10*size; i++ {
		if x.has(mix64(uint64(i) + 1)) {
			recent++
		}
	}
	for i := range size {
		if x.has(mix64(uint64(i) + 1)) {
			old++
		}
	}
	if recent < size*6/10 {
		t.Errorf("%d of the last %d hashes found, want most", recent, size)
	}
	if old > size/100 {
		t.Errorf("%d of the first %d hashes still found", old, size)
	}
}

func TestPrefixIndexSizing(t *testing.T) {
	p := awarePool(t, "inference_aware", 2, BalanceSpec{Weights: Weights{Prefix: 1}}, true)
	u := p.Targets[0].Upstream
	if got := u.prefixBlocksWanted(0); got != DefaultPrefixBlocks {
		t.Fatalf("no geometry: %d, want the default", got)
	}
	if got := u.prefixBlocksWanted(500); got != 500 {
		t.Fatalf("configured: %d", got)
	}
	u.SetLoad(Load{BlockSize: 16, GPUBlocks: 8192, KVUsage: -1}, time.Now())
	if got, want := u.prefixBlocksWanted(0), 16*8192/prefixBlockTokens; got != want {
		t.Fatalf("from cache_config_info: %d, want %d", got, want)
	}
	small := u.prefixIndexFor(100)
	if u.prefixIndexFor(50) != small {
		t.Fatal("a smaller size replaced the index")
	}
	if big := u.prefixIndexFor(1000); big == small || big.size < 1000 {
		t.Fatal("a larger size did not grow the index")
	}
}

// load sets u's scraped load at now.
func load(p *Pool, i int, waiting, kv float64, now time.Time) {
	p.Targets[i].Upstream.SetLoad(Load{Waiting: waiting, KVUsage: kv}, now)
}

func TestInferenceAwareScorers(t *testing.T) {
	now := time.Unix(1e9, 0)
	chain := AppendPrefixHashes(nil, bytes.Repeat([]byte("tenant context "), 200))
	tests := []struct {
		name    string
		weights Weights
		setup   func(p *Pool)
		req     Request
		want    string
	}{
		{"queue: the shortest queue", Weights{Queue: 1}, func(p *Pool) {
			load(p, 0, 9, 0.1, now)
			load(p, 1, 2, 0.1, now)
			load(p, 2, 5, 0.1, now)
			load(p, 3, 7, 0.1, now)
		}, Request{}, "u1"},
		{"queue counts requests sent since the scrape", Weights{Queue: 1}, func(p *Pool) {
			for i := range 4 {
				load(p, i, 3, 0.1, now)
			}
			for range 2 {
				p.Targets[2].Upstream.TryAcquire() // in flight on u2 after the scrape
			}
			load(p, 0, 4, 0.1, now)
		}, Request{}, "u1|u3"},
		{"kv: the least KV in use", Weights{KV: 1}, func(p *Pool) {
			load(p, 0, 0, 0.9, now)
			load(p, 1, 0, 0.5, now)
			load(p, 2, 0, 0.2, now)
			load(p, 3, 0, 0.7, now)
		}, Request{}, "u2"},
		{"prefix: where the prefix went before", Weights{Queue: 1, Prefix: 3}, func(p *Pool) {
			for i := range 4 {
				load(p, i, float64(i), 0.1, now)
			}
			p.Targets[3].Upstream.prefixIndexFor(DefaultPrefixBlocks).record(chain)
		}, Request{Prefix: chain}, "u3"},
		{"prefix loses to a much shorter queue with a low weight", Weights{Queue: 3, Prefix: 1}, func(p *Pool) {
			for i := range 4 {
				load(p, i, 10, 0.1, now)
			}
			load(p, 0, 0, 0.1, now)
			p.Targets[3].Upstream.prefixIndexFor(DefaultPrefixBlocks).record(chain)
		}, Request{Prefix: chain}, "u0"},
		{"tokens: the fewest tokens in flight", Weights{Tokens: 1}, func(p *Pool) {
			p.Targets[0].Upstream.AddTokens(5000)
			p.Targets[1].Upstream.AddTokens(300)
			p.Targets[2].Upstream.AddTokens(900)
			p.Targets[3].Upstream.AddTokens(4000)
		}, Request{}, "u1"},
		{"ttft: the fastest first byte", Weights{TTFT: 1}, func(p *Pool) {
			for i, d := range []time.Duration{300, 200, 50, 400} {
				p.Targets[i].Upstream.ObserveTTFT(d * time.Millisecond)
			}
		}, Request{}, "u2"},
		{"saturated backends are skipped", Weights{KV: 1}, func(p *Pool) {
			load(p, 0, 100, 0.0, now) // queue over the bound, however empty its KV
			load(p, 1, 0, 0.96, now)
			load(p, 2, 0, 0.6, now)
			load(p, 3, 0, 0.97, now)
		}, Request{}, "u2"},
		{"stale metrics count as saturated", Weights{KV: 1}, func(p *Pool) {
			load(p, 0, 0, 0.0, now.Add(-time.Minute))
			load(p, 1, 0, 0.5, now)
			load(p, 2, 0, 0.0, now.Add(-time.Minute))
			load(p, 3, 0, 0.6, now)
		}, Request{}, "u1"},
		{"all saturated: fail open", Weights{Queue: 1}, func(p *Pool) {
			for i, q := range []float64{80, 70, 90, 100} {
				load(p, i, q, 0.99, now)
			}
		}, Request{}, "u1"},
		{"no scrape at all: the gateway's own in-flight counts", Weights{Queue: 1}, func(p *Pool) {
			for i, n := range []int{3, 1, 4, 0} {
				for range n {
					p.Targets[i].Upstream.TryAcquire()
				}
			}
		}, Request{}, "u3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := awarePool(t, "inference_aware", 4, BalanceSpec{Weights: tc.weights, SaturatedQueue: 50, SaturatedKV: 0.95}, true)
			tc.setup(p)
			for range 20 {
				got := pickName(t, p, &tc.req, now)
				if !bytes.Contains([]byte("|"+tc.want+"|"), []byte("|"+got+"|")) {
					t.Fatalf("picked %s, want %s", got, tc.want)
				}
			}
		})
	}
}

// TestInferenceAwareTiesAtRandom: equal scores spread evenly.
func TestInferenceAwareTiesAtRandom(t *testing.T) {
	p := awarePool(t, "inference_aware", 4, BalanceSpec{Weights: Weights{Queue: 2, KV: 2, Prefix: 3}}, false)
	counts := map[string]int{}
	const n = 4000
	for range n {
		counts[pickName(t, p, &Request{}, time.Now())]++
	}
	for name, c := range counts {
		if math.Abs(float64(c)-n/4) > n/10 {
			t.Errorf("%s picked %d of %d times", name, c, n)
		}
	}
	if len(counts) != 4 {
		t.Errorf("picked %v", counts)
	}
}

// TestInferenceAwareSkipsUnavailable: the avoided, the full and the ejected
// are never picked; nil when none is left.
func TestInferenceAwareSkipsUnavailable(t *testing.T) {
	r, err := New(Spec{
		Upstreams: []UpstreamSpec{{Name: "a", MaxConcurrency: 1}, {Name: "b", FailureThreshold: 1, Cooldown: time.Minute}, {Name: "c"}},
		Pools: []PoolSpec{{Name: "p", Strategy: "inference_aware", Balance: BalanceSpec{Weights: Weights{Queue: 1}},
			Targets: []TargetSpec{{Upstream: "a"}, {Upstream: "b"}, {Upstream: "c"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := r.Pools()[0]
	a, b, c := p.Targets[0], p.Targets[1], p.Targets[2]
	a.Upstream.TryAcquire() // a is full
	now := time.Now()
	if e := b.Upstream.ReportFailure(now); e != Ejected {
		t.Fatalf("ejection: %v", e)
	}
	for range 10 {
		if got := p.PickAt(&Request{}, nil, now); got != c {
			t.Fatalf("picked %v, want c", got.Upstream.Name)
		} else {
			got.Upstream.Release()
		}
	}
	// Avoiding c leaves nobody but c itself (Pool.pick's last resort).
	if got := p.PickAt(&Request{}, c, now); got != c {
		t.Fatalf("avoiding the only usable one: %v", got)
	}
}

func TestInferenceAwareSession(t *testing.T) {
	p := awarePool(t, "inference_aware", 8, BalanceSpec{Weights: Weights{Queue: 1, Session: 5}, Session: SessionSpec{By: SessionUser}}, false)
	seen := map[string]bool{}
	for u := range 50 {
		req := &Request{SessionKey: fmt.Appendf(nil, "user-%d", u)}
		first := pickName(t, p, req, time.Now())
		for range 5 {
			if got := pickName(t, p, req, time.Now()); got != first {
				t.Fatalf("user-%d moved from %s to %s", u, first, got)
			}
		}
		seen[first] = true
	}
	if len(seen) < 6 {
		t.Errorf("50 users landed on %d of 8 targets", len(seen))
	}
}

func TestSessionSources(t *testing.T) {
	hdr := &benchHeaders{team: []byte("t1")}
	tests := []struct {
		spec SessionSpec
		req  Request
		ok   bool
	}{
		{SessionSpec{By: SessionUser}, Request{SessionKey: []byte("u")}, true},
		{SessionSpec{By: SessionUser}, Request{}, false},
		{SessionSpec{By: SessionHeader, Header: "X-Team"}, Request{Header: hdr}, true},
		{SessionSpec{By: SessionHeader, Header: "X-Other"}, Request{Header: hdr}, false},
		{SessionSpec{By: SessionHeader, Header: "X-Team"}, Request{}, false},
		{SessionSpec{By: SessionKey}, Request{KeyID: "k1"}, true},
		{SessionSpec{By: SessionKey}, Request{}, false},
		{SessionSpec{}, Request{SessionKey: []byte("u"), KeyID: "k"}, false},
	}
	for i, tc := range tests {
		if _, ok := tc.spec.sessionHash(&tc.req); ok != tc.ok {
			t.Errorf("%d %+v: ok %v, want %v", i, tc.spec, ok, tc.ok)
		}
	}
}

func TestConsistentHash(t *testing.T) {
	spec := BalanceSpec{Session: SessionSpec{By: SessionUser}}
	p := awarePool(t, "consistent_hash", 5, spec, false)
	place := map[string]string{}
	counts := map[string]int{}
	for u := range 2000 {
		req := &Request{SessionKey: fmt.Appendf(nil, "user-%d", u)}
		got := pickName(t, p, req, time.Now())
		if again := pickName(t, p, req, time.Now()); again != got {
			t.Fatalf("not stable: %s then %s", got, again)
		}
		place[string(req.SessionKey)] = got
		counts[got]++
	}
	for name, c := range counts {
		if c < 2000/5/2 || c > 2000/5*2 {
			t.Errorf("%s has %d of 2000 keys", name, c)
		}
	}
	// A sixth target takes about a sixth of the keys, from the others; no
	// key moves between the old five.
	p6 := awarePool(t, "consistent_hash", 6, spec, false)
	moved := 0
	for key, was := range place {
		got := pickName(t, p6, &Request{SessionKey: []byte(key)}, time.Now())
		if got != was {
			if got != "u5" {
				t.Fatalf("%s moved from %s to %s, not to the new target", key, was, got)
			}
			moved++
		}
	}
	if moved < 2000/6/2 || moved > 2000/6*2 {
		t.Errorf("%d of 2000 keys moved to the new target", moved)
	}
	// An unusable target's keys go to the next one on the ring, the rest
	// stay.
	tg := p.Targets[0]
	tg.Upstream.SetActiveHealth(false)
	for key, was := range place {
		got := pickName(t, p, &Request{SessionKey: []byte(key)}, time.Now())
		if was != "u0" && got != was || got == "u0" {
			t.Fatalf("%s: %s -> %s with u0 down", key, was, got)
		}
	}
}

func TestStrategyErrors(t *testing.T) {
	if _, err := New(Spec{Upstreams: []UpstreamSpec{{Name: "a"}, {Name: "b"}},
		Pools: []PoolSpec{{Name: "p", Strategy: "consistent_hash", Targets: []TargetSpec{{Upstream: "a", Weight: 1}, {Upstream: "b", Weight: 1}}}}}); err == nil ||
		!bytes.Contains([]byte(err.Error()), []byte("session key source")) {
		t.Fatalf("consistent_hash without a session source: %v", err)
	}
	s := Spec{}
	ps := PoolSpec{Name: "p", Strategy: "inference_aware"}
	for i := range maxAwareTargets + 1 {
		s.Upstreams = append(s.Upstreams, UpstreamSpec{Name: fmt.Sprint(i)})
		ps.Targets = append(ps.Targets, TargetSpec{Upstream: fmt.Sprint(i)})
	}
	s.Pools = []PoolSpec{ps}
	if _, err := New(s); err == nil {
		t.Fatal("inference_aware over its target bound")
	}
}

func TestPoolSaturated(t *testing.T) {
	now := time.Unix(1e9, 0)
	p := awarePool(t, "inference_aware", 2, BalanceSpec{SaturatedQueue: 10, SaturatedKV: 0.9}, true)
	if p.Saturated(now.UnixNano()) {
		t.Fatal("never scraped, yet saturated")
	}
	load(p, 0, 20, 0.1, now)
	load(p, 1, 0, 0.95, now)
	if !p.Saturated(now.UnixNano()) {
		t.Fatal("both over a bound, not saturated")
	}
	if p.Saturated(now.Add(2 * time.Second).UnixNano()) {
		t.Fatal("stale metrics count for shedding")
	}
	load(p, 1, 0, 0.5, now)
	if p.Saturated(now.UnixNano()) {
		t.Fatal("one target has room, yet saturated")
	}
}
