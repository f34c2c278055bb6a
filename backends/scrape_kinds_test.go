package backends

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"switchyard/backends/promtext"
	"switchyard/router"
)

// TestExtractRealPages reads the saved pages of real servers (their sources
// are in promtext/testdata/README.md) with the kind's names.
func TestExtractRealPages(t *testing.T) {
	cases := []struct {
		file, kind string
		want       router.Load
	}{
		// vLLM V0-era names: gpu_cache_usage_perc, and cache_config_info's
		// geometry.
		{"vllm_aibrix_runtime.txt", MetricsVLLM, router.Load{Waiting: 0, Running: 0, KVUsage: 0, BlockSize: 16, GPUBlocks: 81767}},
		{"vllm_production_stack_318.txt", MetricsVLLM, router.Load{KVUsage: 0}},
		{"sglang_docs_production_metrics.txt", MetricsSGLang, router.Load{Waiting: 2826, Running: 162, KVUsage: 0.28}},
		{"sglang_issue_13485.txt", MetricsSGLang, router.Load{Running: 1, KVUsage: 0}},
		// No KV-cache gauge: unknown.
		{"tgi_names_ibm_vllm_pr18.txt", MetricsTGI, router.Load{KVUsage: -1}},
		// No fraction on this page: used / max blocks.
		{"triton_trtllm_backend_readme.txt", MetricsTriton, router.Load{Waiting: 0, Running: 0, KVUsage: 1.0 / 6239, BlockSize: 64, GPUBlocks: 6239}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			page, err := os.ReadFile(filepath.Join("promtext", "testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			ex, err := NewExtractor(c.kind)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ex.Extract(page)
			if err != nil {
				t.Fatalf("Extract(%s, %s): %v", c.kind, c.file, err)
			}
			if !sameLoad(got, c.want) {
				t.Errorf("Extract(%s, %s) = %+v; want %+v", c.kind, c.file, got, c.want)
			}
		})
	}
}

// TestExtractSGLangMaxTokens: a page with only the pool size (an early
// SGLang) gives its geometry but no queue: not a load.
func TestExtractSGLangMaxTokens(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("promtext", "testdata", "sglang_pr1853_max_tokens.txt"))
	if err != nil {
		t.Fatal(err)
	}
	ex, _ := NewExtractor(MetricsSGLang)
	if _, err := ex.Extract(page); !errors.Is(err, ErrNoLoadMetrics) {
		t.Errorf("a page without queue or running gauges: %v; want ErrNoLoadMetrics", err)
	}
	withQueue := append([]byte("sglang:num_queue_reqs{name=\"x\"} 3\n"), page...)
	got, err := ex.Extract(withQueue)
	if err != nil {
		t.Fatal(err)
	}
	if want := (router.Load{Waiting: 3, KVUsage: -1, BlockSize: 1, GPUBlocks: 570979}); !sameLoad(got, want) {
		t.Errorf("got %+v; want %+v", got, want)
	}
}

// TestExtractSeveralLabelSets: counts are summed over label sets (models,
// engines), the KV use is the largest. Hand-written pages in the shape of
// vLLM V1's (an engine label; kv_cache_usage_perc, which wins over the
// older gpu_cache_usage_perc), TRT-LLM's with a waiting type and a
// fraction, and TGI's.
func TestExtractSeveralLabelSets(t *testing.T) {
	cases := []struct {
		name, kind, page string
		want             router.Load
	}{
		{"vllm V1, two engines", MetricsVLLM, `
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
vllm:num_requests_waiting{engine="0",model_name="m"} 4.0
vllm:num_requests_waiting{engine="1",model_name="m"} 1.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.42
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.61
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.99
vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="1000"} 1.0
vllm:cache_config_info{block_size="16",engine="1",num_gpu_blocks="1000"} 1.0
`, router.Load{Waiting: 5, Running: 5, KVUsage: 0.61, BlockSize: 16, GPUBlocks: 2000}},
		{"vllm num_gpu_blocks None", MetricsVLLM, `vllm:num_requests_waiting 1
vllm:cache_config_info{block_size="16",num_gpu_blocks="None"} 1`, router.Load{Waiting: 1, KVUsage: -1, BlockSize: 16}},
		{"vllm NaN and negative", MetricsVLLM, `vllm:num_requests_waiting NaN
vllm:num_requests_running -1
vllm:kv_cache_usage_perc NaN`, router.Load{KVUsage: -1}},
		{"vllm KV above 1", MetricsVLLM, "vllm:num_requests_running 1\nvllm:kv_cache_usage_perc +Inf", router.Load{Running: 1, KVUsage: 1}},
		{"sglang two models", MetricsSGLang, `sglang:num_queue_reqs{model_name="a"} 2
sglang:num_queue_reqs{model_name="b"} 3
sglang:num_running_reqs{model_name="a"} 1
sglang:token_usage{model_name="a"} 0.2
sglang:token_usage{model_name="b"} 0.7`, router.Load{Waiting: 5, Running: 1, KVUsage: 0.7}},
		{"triton two models, TRT-LLM waiting and fraction", MetricsTriton, `
nv_inference_pending_request_count{model="ensemble",version="1"} 9
nv_inference_pending_request_count{model="tensorrt_llm",version="1"} 2
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="waiting",version="1"} 3
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 7
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="max",version="1"} 512
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="tensorrt_llm",version="1"} 0.6
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="tensorrt_llm",version="1"} 2000
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="tensorrt_llm",version="1"} 8000
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per",model="tensorrt_llm",version="1"} 32
`, router.Load{Waiting: 3, Running: 7, KVUsage: 0.6, BlockSize: 32, GPUBlocks: 8000}},
		{"triton without TRT-LLM", MetricsTriton, `nv_inference_pending_request_count{model="a",version="1"} 2
nv_inference_pending_request_count{model="b",version="2"} 5`, router.Load{Waiting: 7, KVUsage: -1}},
		{"tgi", MetricsTGI, "# TYPE tgi_queue_size gauge\ntgi_queue_size 4\n# TYPE tgi_batch_current_size gauge\ntgi_batch_current_size 12\ntgi_batch_current_max_tokens 9000\n", router.Load{Waiting: 4, Running: 12, KVUsage: -1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ex, _ := NewExtractor(c.kind)
			got, err := ex.Extract([]byte(c.page))
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if !sameLoad(got, c.want) {
				t.Errorf("Extract(%s) = %+v; want %+v", c.kind, got, c.want)
			}
		})
	}
}

func TestExtractErrors(t *testing.T) {
	var se *promtext.SyntaxError
	ex, _ := NewExtractor(MetricsVLLM)
	if _, err := ex.Extract([]byte("<html>502 Bad Gateway</html>")); !errors.As(err, &se) {
		t.Errorf("garbage: %v; want a promtext.SyntaxError", err)
	}
	// A page of another kind is not a load.
	page, _ := os.ReadFile(filepath.Join("promtext", "testdata", "sglang_docs_production_metrics.txt"))
	if _, err := ex.Extract(page); !errors.Is(err, ErrNoLoadMetrics) {
		t.Errorf("an SGLang page read as vllm: %v; want ErrNoLoadMetrics", err)
	}
	if _, err := ex.Extract(nil); !errors.Is(err, ErrNoLoadMetrics) {
		t.Errorf("an empty page: %v; want ErrNoLoadMetrics", err)
	}
	if _, err := NewExtractor("ollama"); err == nil {
		t.Error("an unknown kind: no error")
	}
}

func sameLoad(a, b router.Load) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	return near(a.Waiting, b.Waiting) && near(a.Running, b.Running) && near(a.KVUsage, b.KVUsage) &&
		a.BlockSize == b.BlockSize && a.GPUBlocks == b.GPUBlocks
}
