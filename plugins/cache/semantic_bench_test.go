package cache

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	benchStores   = map[int]*semStore{}
	benchStoresMu sync.Mutex
	benchWords    = strings.Fields(`account address answer apple bank battery bill book booking bus cancel card city
code computer contract country credit customer data date delivery device doctor email error file flight
food form game garden health hotel house insurance invoice job key language laptop letter license loan
market meeting menu message money movie music network number office order package password payment phone
plan policy price product program project question refund report restaurant room salary school screen
server service shipping shop software sport store student subscription system table tax ticket time train
travel user vacation video weather website window work`)
)

// benchPrompt is a synthetic user question.
func benchPrompt(r *rand.Rand) string {
	n := 6 + r.IntN(10)
	w := make([]string, n)
	for i := range w {
		w[i] = benchWords[r.IntN(len(benchWords))]
	}
	return "how do I " + strings.Join(w, " ") + "?"
}

// benchStore is a semantic store of n entries in one partition (the worst
// case: one context shared by all), built once per size.
func benchStore(b *testing.B, n int) (*semStore, [32]byte) {
	benchStoresMu.Lock()
	defer benchStoresMu.Unlock()
	var part [32]byte
	if st := benchStores[n]; st != nil {
		return st, part
	}
	st, _ := newSemStore("", n+1)
	emb := builtin()
	r := rand.New(rand.NewPCG(1, uint64(n)))
	body := []byte(`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"An answer of a few words."},"finish_reason":"stop"}]}`)
	start := time.Now()
	for i := 0; i < n; i++ {
		text := benchPrompt(r)
		st.put(&semQuery{part: part, text: text, vec: emb.EmbedInto(text, nil), ttl: time.Hour}, body)
	}
	b.Logf("built %d entries in %v", n, time.Since(start))
	benchStores[n] = st
	return st, part
}

// BenchmarkSemanticLookup is a lookup end to end as the stage does it: the
// builtin embedding of the last user turn, the index search, the guard and
// the answer's decompression on a hit; p50 and p99 over the queries.
func BenchmarkSemanticLookup(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			if testing.Short() && n > 10000 {
				b.Skip("building 100k entries takes a minute")
			}
			st, part := benchStore(b, n)
			emb := builtin()
			r := rand.New(rand.NewPCG(2, 3))
			queries := make([]string, 1000)
			for i := range queries {
				queries[i] = benchPrompt(r)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				q := &semQuery{part: part, text: queries[i%len(queries)]}
				q.vec = emb.EmbedInto(q.text, nil)
				st.lookup(q, 0.45, nil)
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
			st.mu.RLock()
			bytes := st.parts[part].Bytes()
			var z int
			for _, e := range st.entries {
				z += len(e.Z) + len(e.Query) + 4*len(e.Vec) + 64
			}
			st.mu.RUnlock()
			b.ReportMetric(float64(bytes+int64(z))/float64(n), "bytes/entry")
		})
	}
}
