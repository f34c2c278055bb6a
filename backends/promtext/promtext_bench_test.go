package promtext

import (
	"os"
	"testing"
)

var sink float64

// BenchmarkParse parses a saved vLLM page (gauges, counters and a
// histogram), reading one label of each sample, as a scrape does.
func BenchmarkParse(b *testing.B) {
	page, err := os.ReadFile("testdata/vllm_aibrix_runtime.txt")
	if err != nil {
		b.Fatal(err)
	}
	var p Parser
	b.ReportAllocs()
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		err := p.Parse(page, func(s *Sample) error {
			sink += s.Value
			if v, ok := s.Label("model_name"); ok {
				sink += float64(len(v))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
