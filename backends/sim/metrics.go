package sim

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// Bucket bounds in seconds, vLLM's own, with a few finer ITL bounds for the
// millisecond latencies of a fast simulator.
var (
	ttftBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560}
	itlBuckets  = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80}
	e2eBuckets  = []float64{0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680}
)

// serverMetrics are one server's vLLM-named metrics, in its own metrics.Set so
// that several servers can live in one process.
type serverMetrics struct {
	set              *metrics.Set
	types            map[string]string // family -> Prometheus type, for the TYPE lines
	prefixQueries    *metrics.Counter
	prefixHits       *metrics.Counter
	promptTokens     *metrics.Counter
	generationTokens *metrics.Counter
	successStop      *metrics.Counter
	successLength    *metrics.Counter
	ttft             *metrics.PrometheusHistogram
	itl              *metrics.PrometheusHistogram
	e2e              *metrics.PrometheusHistogram
	embedInputs      *metrics.Counter
	classifierCalls  *metrics.Counter // nil without a classifier
	classifierItems  *metrics.Counter
}

func newServerMetrics(o *Options, e func() *engine) *serverMetrics {
	s := metrics.NewSet()
	lbl := `{model_name=` + strconv.Quote(o.Model) + `}`
	m := &serverMetrics{set: s, types: map[string]string{}}
	gauge := func(name string, f func() float64) {
		s.NewGauge(name+lbl, f)
		m.types[name] = "gauge"
	}
	counter := func(name, labels string) *metrics.Counter {
		m.types[name] = "counter"
		return s.NewCounter(name + labels)
	}
	hist := func(name string, b []float64) *metrics.PrometheusHistogram {
		m.types[name] = "histogram"
		return s.NewPrometheusHistogramExt(name+lbl, b)
	}
	gauge("vllm:num_requests_running", func() float64 { return float64(e().runningN.Load()) })
	gauge("vllm:num_requests_waiting", func() float64 { return float64(e().waitingN.Load()) })
	gauge("vllm:kv_cache_usage_perc", func() float64 { return e().kvUsage() })
	gauge("vllm:gpu_cache_usage_perc", func() float64 { return e().kvUsage() })
	s.NewGauge(fmt.Sprintf(`vllm:cache_config_info{model_name=%q,block_size="%d",num_gpu_blocks="%d",enable_prefix_caching="%t"}`,
		o.Model, o.BlockSize, o.KVBlocks, o.PrefixCaching), func() float64 { return 1 })
	m.types["vllm:cache_config_info"] = "gauge"
	m.prefixQueries = counter("vllm:prefix_cache_queries_total", lbl)
	m.prefixHits = counter("vllm:prefix_cache_hits_total", lbl)
	m.promptTokens = counter("vllm:prompt_tokens_total", lbl)
	m.generationTokens = counter("vllm:generation_tokens_total", lbl)
	m.successStop = counter("vllm:request_success_total", `{model_name=`+strconv.Quote(o.Model)+`,finished_reason="stop"}`)
	m.successLength = counter("vllm:request_success_total", `{model_name=`+strconv.Quote(o.Model)+`,finished_reason="length"}`)
	m.ttft = hist("vllm:time_to_first_token_seconds", ttftBuckets)
	m.itl = hist("vllm:inter_token_latency_seconds", itlBuckets)
	m.e2e = hist("vllm:e2e_request_latency_seconds", e2eBuckets)
	embed := o.EmbedModel
	if embed == "" {
		embed = o.Model
	}
	m.embedInputs = counter("vllm:embedding_inputs_total", `{model_name=`+strconv.Quote(embed)+`}`)
	return m
}

// addClassifier adds the classifier's series, labelled with its model name:
// infer calls executed and rows classified, and gauges of the calls
// executing and waiting for a slot.
func (m *serverMetrics) addClassifier(model string, running, waiting func() float64) {
	lbl := `{model_name=` + strconv.Quote(model) + `}`
	m.types["vllm:classifier_calls_total"] = "counter"
	m.classifierCalls = m.set.NewCounter("vllm:classifier_calls_total" + lbl)
	m.types["vllm:classifier_items_total"] = "counter"
	m.classifierItems = m.set.NewCounter("vllm:classifier_items_total" + lbl)
	m.types["vllm:classifier_calls_running"] = "gauge"
	m.set.NewGauge("vllm:classifier_calls_running"+lbl, running)
	m.types["vllm:classifier_calls_waiting"] = "gauge"
	m.set.NewGauge("vllm:classifier_calls_waiting"+lbl, waiting)
}

// write writes the metrics in Prometheus text format with a TYPE line per
// family, as vLLM's exporter does.
func (m *serverMetrics) write(w io.Writer) {
	var buf bytes.Buffer
	m.set.WritePrometheus(&buf)
	if bytes.Contains(buf.Bytes(), []byte("# TYPE ")) { // metrics.ExposeMetadata is on
		w.Write(buf.Bytes())
		return
	}
	var out bytes.Buffer
	prev := ""
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line == "" {
			continue
		}
		name := line
		if i := strings.IndexAny(name, "{ "); i >= 0 {
			name = name[:i]
		}
		fam := name
		if _, ok := m.types[fam]; !ok {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suf); ok {
					fam = b
					break
				}
			}
		}
		if t, ok := m.types[fam]; ok && fam != prev && !strings.HasPrefix(line, "#") {
			fmt.Fprintf(&out, "# TYPE %s %s\n", fam, t)
			prev = fam
		}
		out.WriteString(line)
	}
	w.Write(out.Bytes())
}
