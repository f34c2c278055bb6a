package backends

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"switchyard/backends/promtext"
	"switchyard/router"
)

// Metrics kinds: which server's metric names a scraped page has.
const (
	MetricsVLLM   = "vllm"
	MetricsSGLang = "sglang"
	MetricsTGI    = "tgi"
	MetricsTriton = "triton"
)

// MetricsKinds lists the kinds Extract reads.
var MetricsKinds = []string{MetricsVLLM, MetricsSGLang, MetricsTGI, MetricsTriton}

// ErrNoLoadMetrics: the page parsed but has none of the kind's queue or
// running-requests families, e.g. the wrong kind or the wrong path.
var ErrNoLoadMetrics = errors.New("no queue or running-requests metric of that kind on the page")

// Extractor reads a backend's load out of its metrics page. A page may have
// several label sets of one family (several models on one server, several
// data-parallel engines): request counts are summed, the KV-cache use is
// the largest, block counts are summed. An Extractor keeps its parser's
// buffers between pages; it is not safe for concurrent use.
type Extractor struct {
	kind string
	p    promtext.Parser
	acc  loadAcc
}

// NewExtractor returns an extractor of kind (one of MetricsKinds).
func NewExtractor(kind string) (*Extractor, error) {
	switch kind {
	case MetricsVLLM, MetricsSGLang, MetricsTGI, MetricsTriton:
		return &Extractor{kind: kind}, nil
	}
	return nil, fmt.Errorf("unknown metrics kind %q (want one of %v)", kind, MetricsKinds)
}

// loadAcc accumulates a page's samples.
type loadAcc struct {
	waiting, running     float64
	seenWaiting, seenRun bool
	kv, kvOld            float64 // largest; -1 = not seen
	blockSize, gpuBlocks int

	// Triton: the TensorRT-LLM backend's waiting requests are preferred to
	// the server's pending count, and its block counts make a KV fraction
	// when it reports no fraction.
	trtWaiting     float64
	seenTRTWaiting bool
	usedBlocks     float64
	maxBlocks      float64
}

// Extract parses page and returns the load it reports. A page that does not
// parse, or has no queue and no running-requests family of the kind, is an
// error.
func (e *Extractor) Extract(page []byte) (router.Load, error) {
	e.acc = loadAcc{kv: -1, kvOld: -1}
	var fn func(s *promtext.Sample) error
	switch e.kind {
	case MetricsVLLM:
		fn = e.vllm
	case MetricsSGLang:
		fn = e.sglang
	case MetricsTGI:
		fn = e.tgi
	default:
		fn = e.triton
	}
	if err := e.p.Parse(page, fn); err != nil {
		return router.Load{KVUsage: -1}, err
	}
	a := &e.acc
	if e.kind == MetricsTriton {
		if a.seenTRTWaiting {
			a.waiting, a.seenWaiting = a.trtWaiting, true
		}
		if a.kv < 0 && a.maxBlocks > 0 {
			a.kv = a.usedBlocks / a.maxBlocks
		}
	}
	if !a.seenWaiting && !a.seenRun {
		return router.Load{KVUsage: -1}, ErrNoLoadMetrics
	}
	l := router.Load{Waiting: a.waiting, Running: a.running, KVUsage: a.kv, BlockSize: a.blockSize, GPUBlocks: a.gpuBlocks}
	if l.KVUsage < 0 {
		l.KVUsage = a.kvOld
	}
	if l.KVUsage > 1 {
		l.KVUsage = 1
	}
	return l, nil
}

// count adds a request count; NaN and negative values count as 0.
func (a *loadAcc) count(dst *float64, seen *bool, v float64) {
	*seen = true
	if v > 0 && !math.IsInf(v, 1) {
		*dst += v
	}
}

// fraction keeps the largest KV-cache fraction; NaN is no report.
func fraction(dst *float64, v float64) {
	if v >= 0 && v > *dst {
		*dst = v
	}
}

// labelInt reads an integer label ("16"; "None" or a missing label is 0).
func labelInt(s *promtext.Sample, name string) int {
	v, ok := s.Label(name)
	if !ok || len(v) == 0 || len(v) > 18 {
		return 0
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// vllm reads vLLM's names: vllm:num_requests_waiting,
// vllm:num_requests_running, vllm:kv_cache_usage_perc (V1) or the older
// vllm:gpu_cache_usage_perc, and vllm:cache_config_info's block_size and
// num_gpu_blocks labels.
func (e *Extractor) vllm(s *promtext.Sample) error {
	a := &e.acc
	switch string(s.Name) {
	case "vllm:num_requests_waiting":
		a.count(&a.waiting, &a.seenWaiting, s.Value)
	case "vllm:num_requests_running":
		a.count(&a.running, &a.seenRun, s.Value)
	case "vllm:kv_cache_usage_perc":
		fraction(&a.kv, s.Value)
	case "vllm:gpu_cache_usage_perc":
		fraction(&a.kvOld, s.Value)
	case "vllm:cache_config_info":
		a.blockSize = max(a.blockSize, labelInt(s, "block_size"))
		a.gpuBlocks += labelInt(s, "num_gpu_blocks")
	}
	return nil
}

// sglang reads SGLang's names: sglang:num_queue_reqs,
// sglang:num_running_reqs, sglang:token_usage (the fraction of the token
// pool in use) and sglang:max_total_num_tokens (the pool's size in tokens,
// reported by some versions; SGLang's cache is per token by default, so it
// is given as that many blocks of one token).
func (e *Extractor) sglang(s *promtext.Sample) error {
	a := &e.acc
	switch string(s.Name) {
	case "sglang:num_queue_reqs":
		a.count(&a.waiting, &a.seenWaiting, s.Value)
	case "sglang:num_running_reqs":
		a.count(&a.running, &a.seenRun, s.Value)
	case "sglang:token_usage":
		fraction(&a.kv, s.Value)
	case "sglang:max_total_num_tokens":
		if s.Value > 0 && s.Value < math.MaxInt32 {
			a.blockSize = 1
			a.gpuBlocks += int(s.Value)
		}
	}
	return nil
}

// tgi reads TGI's names: tgi_queue_size and tgi_batch_current_size. TGI
// reports no KV-cache use.
func (e *Extractor) tgi(s *promtext.Sample) error {
	a := &e.acc
	switch string(s.Name) {
	case "tgi_queue_size":
		a.count(&a.waiting, &a.seenWaiting, s.Value)
	case "tgi_batch_current_size":
		a.count(&a.running, &a.seenRun, s.Value)
	}
	return nil
}

// triton reads Triton's names: nv_inference_pending_request_count (per
// model, summed) for the queue, and the TensorRT-LLM backend's
// nv_trt_llm_request_metrics (request_type "waiting" for the queue when
// present, "active" for the running requests) and
// nv_trt_llm_kv_cache_block_metrics (kv_cache_block_type "fraction", or
// "used" over "max"; "tokens_per" is the block size, "max" the blocks).
func (e *Extractor) triton(s *promtext.Sample) error {
	a := &e.acc
	switch string(s.Name) {
	case "nv_inference_pending_request_count":
		a.count(&a.waiting, &a.seenWaiting, s.Value)
	case "nv_trt_llm_request_metrics":
		switch t, _ := s.Label("request_type"); string(t) {
		case "waiting":
			a.count(&a.trtWaiting, &a.seenTRTWaiting, s.Value)
		case "active":
			a.count(&a.running, &a.seenRun, s.Value)
		}
	case "nv_trt_llm_kv_cache_block_metrics":
		switch t, _ := s.Label("kv_cache_block_type"); string(t) {
		case "fraction":
			fraction(&a.kv, s.Value)
		case "used":
			if s.Value > 0 {
				a.usedBlocks += s.Value
			}
		case "max":
			if s.Value > 0 && s.Value < math.MaxInt32 {
				a.maxBlocks += s.Value
				a.gpuBlocks += int(s.Value)
			}
		case "tokens_per":
			if s.Value > 0 && s.Value < math.MaxInt32 {
				a.blockSize = max(a.blockSize, int(s.Value))
			}
		}
	}
	return nil
}

// formatLoad renders l for a log line.
func formatLoad(l router.Load) string {
	kv := "unknown"
	if l.KVUsage >= 0 {
		kv = strconv.FormatFloat(l.KVUsage, 'f', 3, 64)
	}
	return fmt.Sprintf("waiting=%g running=%g kv=%s", l.Waiting, l.Running, kv)
}
