//go:build !race

package promtext

import "testing"

// TestParseAllocs: parsing allocates nothing per sample once the parser's
// buffer has grown, escaped label values and special values included.
func TestParseAllocs(t *testing.T) {
	page := []byte("# HELP a x\n# TYPE a gauge\n" +
		"vllm:num_requests_waiting{model_name=\"m\"} 3.0\n" +
		"vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"81767\"} 1.0\r\n" +
		"x{q=\"say \\\"hi\\\"\"} 1.74262400557e+09 1700074049000\n" +
		"y_bucket{le=\"+Inf\"} +Inf\nz NaN\n")
	var p Parser
	fn := func(s *Sample) error {
		sink += s.Value
		if v, ok := s.Label("q"); ok {
			sink += float64(len(v))
		}
		_, _ = s.Label("block_size")
		return nil
	}
	if err := p.Parse(page, fn); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = p.Parse(page, fn) }); n != 0 {
		t.Errorf("Parse allocates %v times per page; want 0", n)
	}
}
