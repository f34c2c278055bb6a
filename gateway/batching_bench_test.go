package gateway

import (
	"fmt"
	"strings"
	"testing"

	"switchyard/backends/batch"
)

// BenchmarkSplitEmbeddings is the cost of splitting one upstream answer of
// 32 embeddings (64 numbers each) back to 32 callers of one input each:
// what the gateway adds per batch besides the upstream call.
func BenchmarkSplitEmbeddings(b *testing.B) {
	const n, dim = 32, 64
	var sb strings.Builder
	sb.WriteString(`{"id":"embd-1","object":"list","created":1,"model":"sim-embed","data":[`)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"object":"embedding","index":%d,"embedding":[`, i)
		for j := range dim {
			if j > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "%.8f", float64(i*dim+j)/1e4-0.1)
		}
		sb.WriteString("]}")
	}
	sb.WriteString(`],"usage":{"prompt_tokens":320,"total_tokens":320}}`)
	up := []byte(sb.String())
	pb := &poolBatcher{}
	x := &Exchange{Status: 200, Backend: "gpu", RespBody: up}
	reqs := make([]*batch.Request[batchResult], n)
	counts, weights := make([]int, n), make([]int, n)
	for i := range reqs {
		reqs[i] = &batch.Request[batchResult]{}
		counts[i], weights[i] = 1, 10
	}
	b.SetBytes(int64(len(up)))
	b.ReportAllocs()
	for b.Loop() {
		if err := pb.splitList(x, reqs, counts, weights, "data", 1, false); err != nil {
			b.Fatal(err)
		}
	}
}
