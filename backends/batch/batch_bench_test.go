package batch

import (
	"context"
	"testing"
)

// BenchmarkDo is the batcher's own cost per request: concurrent callers of
// one key, a runner that does nothing.
func BenchmarkDo(b *testing.B) {
	bt, err := New(Options{MaxBatchSize: 64, QueueSize: 4096, PriorityLevels: 1, MaxInFlight: 2},
		func(ctx context.Context, batch []*Request[result]) {
			for _, r := range batch {
				r.Result.Pos = len(r.Payload)
			}
		})
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	e := Entry{Key: []byte("k"), Payload: []byte("payload"), Items: 1, Tokens: 1}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		n := 0
		read := func(r *result) { n += r.Pos }
		for pb.Next() {
			if err := bt.Do(ctx, e, read); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
