//go:build !race

package backends

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExtractAllocs: reading a page's load allocates nothing, for every
// kind's saved page.
func TestExtractAllocs(t *testing.T) {
	for file, kind := range map[string]string{
		"vllm_aibrix_runtime.txt":            MetricsVLLM,
		"sglang_docs_production_metrics.txt": MetricsSGLang,
		"tgi_names_ibm_vllm_pr18.txt":        MetricsTGI,
		"triton_trtllm_backend_readme.txt":   MetricsTriton,
	} {
		page, err := os.ReadFile(filepath.Join("promtext", "testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		ex, _ := NewExtractor(kind)
		if _, err := ex.Extract(page); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(50, func() { _, _ = ex.Extract(page) }); n != 0 {
			t.Errorf("%s: Extract allocates %v times per page; want 0", file, n)
		}
	}
}
