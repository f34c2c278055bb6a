package backends

import (
	"os"
	"path/filepath"
	"testing"
)

var loadSink float64

// BenchmarkExtract reads the load out of a saved vLLM page, as each scrape
// does.
func BenchmarkExtract(b *testing.B) {
	page, err := os.ReadFile(filepath.Join("promtext", "testdata", "vllm_aibrix_runtime.txt"))
	if err != nil {
		b.Fatal(err)
	}
	ex, _ := NewExtractor(MetricsVLLM)
	b.ReportAllocs()
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		l, err := ex.Extract(page)
		if err != nil {
			b.Fatal(err)
		}
		loadSink += l.Waiting + float64(l.GPUBlocks)
	}
}
