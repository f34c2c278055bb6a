package gateway_test

import (
	"os"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// switchyardFamilies are the types of every switchyard_* family. A family
// in /metrics that is missing here fails the test.
var switchyardFamilies = map[string]dto.MetricType{
	"switchyard_requests_total":                               dto.MetricType_COUNTER,
	"switchyard_errors_total":                                 dto.MetricType_COUNTER,
	"switchyard_request_duration_seconds":                     dto.MetricType_HISTOGRAM,
	"switchyard_gateway_overhead_seconds":                     dto.MetricType_HISTOGRAM,
	"switchyard_upstream_responses_total":                     dto.MetricType_COUNTER,
	"switchyard_upstream_first_byte_seconds":                  dto.MetricType_HISTOGRAM,
	"switchyard_ttft_seconds":                                 dto.MetricType_HISTOGRAM,
	"switchyard_inter_token_latency_seconds":                  dto.MetricType_HISTOGRAM,
	"switchyard_stream_duration_seconds":                      dto.MetricType_HISTOGRAM,
	"switchyard_tokens_total":                                 dto.MetricType_COUNTER,
	"switchyard_retries_total":                                dto.MetricType_COUNTER,
	"switchyard_fallbacks_total":                              dto.MetricType_COUNTER,
	"switchyard_stream_errors_total":                          dto.MetricType_COUNTER,
	"switchyard_client_disconnects_total":                     dto.MetricType_COUNTER,
	"switchyard_config_reloads_total":                         dto.MetricType_COUNTER,
	"switchyard_config_last_reload_successful":                dto.MetricType_GAUGE,
	"switchyard_config_last_reload_success_timestamp_seconds": dto.MetricType_GAUGE,
	"switchyard_config_generation":                            dto.MetricType_GAUGE,
	"switchyard_backend_inflight":                             dto.MetricType_GAUGE,
	"switchyard_backend_healthy":                              dto.MetricType_GAUGE,
	"switchyard_backend_circuit_state":                        dto.MetricType_GAUGE,
	"switchyard_backend_ejections_total":                      dto.MetricType_COUNTER,
	"switchyard_backend_ejections_refused_total":              dto.MetricType_COUNTER,
	"switchyard_ratelimit_store_up":                           dto.MetricType_GAUGE,
	"switchyard_ratelimit_store_errors_total":                 dto.MetricType_COUNTER,
	"switchyard_ratelimit_fallbacks_total":                    dto.MetricType_COUNTER,
}

// TestMetricsExposition runs /metrics, after traffic of every kind and a
// reload, through the Prometheus text parser and checks each family's type,
// help and layout.
func TestMetricsExposition(t *testing.T) {
	simURL, _ := startSim(t, nil)
	badURL, _ := startSim(t, map[string]string{"error-rate": "1"})
	cfg := `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: up, url: "` + simURL + `"}
  - {name: bad, url: "` + badURL + `", health: {failure_threshold: 1000}}
models:
  - {name: sim-chat, targets: [{backend: up}]}
  - {name: sim-embed, targets: [{backend: up}]}
  - name: flaky
    targets: [{backend: bad, model: sim-chat}]
    fallbacks: [backup]
  - {name: backup, targets: [{backend: up, model: sim-chat}]}
`
	g := startGateway(t, cfg)
	traffic := func() {
		chat := g.url + "/v1/chat/completions"
		for _, c := range []struct {
			url, body string
			want      int
		}{
			{chat, `{"model":"sim-chat","messages":[{"role":"user","content":"x"}],"max_tokens":3}`, 200},
			{chat, `{"model":"sim-chat","messages":[{"role":"user","content":"x"}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}`, 200},
			{chat, `{"model":"flaky","messages":[{"role":"user","content":"x"}],"max_tokens":3}`, 200},
			{chat, `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404},
			{chat, `{"model":`, 400},
			{g.url + "/v1/embeddings", `{"model":"sim-embed","input":"x"}`, 200},
		} {
			if code, _, body := post(t, c.url, c.body); code != c.want {
				t.Errorf("POST %s: %d, want %d: %s", c.body, code, c.want, body)
			}
		}
	}
	traffic()
	if err := os.WriteFile(g.path, []byte(cfg+"# reloaded\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	traffic() // the same series from the new generation's table

	_, text := get(t, g.url+"/metrics")
	checkExpositionLayout(t, text)
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, text)
	}
	for name, mf := range fams {
		if mf.Help == nil {
			t.Errorf("%s has no HELP line", name)
		}
		if !strings.HasPrefix(name, "switchyard_") {
			if mf.GetType() == dto.MetricType_UNTYPED {
				t.Errorf("%s is untyped", name)
			}
			continue
		}
		want, ok := switchyardFamilies[name]
		if !ok {
			t.Errorf("%s is not in switchyardFamilies", name)
			continue
		}
		if mf.GetType() != want {
			t.Errorf("%s is %v, want %v", name, mf.GetType(), want)
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has an empty HELP text", name)
		}
		if want == dto.MetricType_HISTOGRAM {
			for _, m := range mf.Metric {
				if h := m.GetHistogram(); h == nil || len(h.Bucket) == 0 || h.SampleCount == nil || h.SampleSum == nil {
					t.Errorf("%s: a series lacks buckets, sum or count", name)
				}
			}
		}
	}
	for _, name := range []string{
		"switchyard_requests_total", "switchyard_request_duration_seconds", "switchyard_gateway_overhead_seconds",
		"switchyard_upstream_responses_total", "switchyard_upstream_first_byte_seconds", "switchyard_ttft_seconds",
		"switchyard_inter_token_latency_seconds", "switchyard_stream_duration_seconds", "switchyard_tokens_total",
		"switchyard_fallbacks_total", "switchyard_config_reloads_total", "switchyard_config_last_reload_successful",
		"switchyard_config_generation", "switchyard_backend_inflight", "switchyard_backend_healthy",
		"process_resident_memory_bytes", "go_goroutines",
	} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// Both generations recorded into one series.
	if v := sampleValue(fams["switchyard_requests_total"], map[string]string{"model": "sim-chat", "backend": "up", "code": "200"}); v != 4 {
		t.Errorf(`requests_total{model="sim-chat",backend="up",code="200"} = %v, want 4`, v)
	}
	if v := sampleValue(fams["switchyard_config_reloads_total"], map[string]string{"result": "success"}); v != 2 {
		t.Errorf(`config_reloads_total{result="success"} = %v, want 2`, v)
	}
}

// checkExpositionLayout checks what the parser lets pass: each family has one
// HELP and one TYPE line, both before its samples, and its samples are not
// interleaved with another family's.
func checkExpositionLayout(t *testing.T, text string) {
	t.Helper()
	helps, types := map[string]bool{}, map[string]bool{}
	cur, curType, lastHelp := "", "", ""
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if name, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, _, _ = strings.Cut(name, " ")
			if helps[name] {
				t.Errorf("line %d: a second HELP for %s", i+1, name)
			}
			helps[name], lastHelp = true, name
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			if types[name] {
				t.Errorf("line %d: a second TYPE for %s", i+1, name)
			}
			if lastHelp != name {
				t.Errorf("line %d: TYPE of %s without its HELP just before", i+1, name)
			}
			types[name], cur, curType = true, name, typ
			continue
		}
		name := line
		if j := strings.IndexAny(name, "{ "); j >= 0 {
			name = name[:j]
		}
		fam := name
		switch curType {
		case "histogram":
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suf); ok && b == cur {
					fam = b
				}
			}
		case "summary":
			for _, suf := range []string{"_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suf); ok && b == cur {
					fam = b
				}
			}
		}
		if fam != cur {
			t.Errorf("line %d: sample %s outside its family (after TYPE %s)", i+1, name, cur)
		}
	}
}

// sampleValue sums the counter or gauge values of mf's series that have
// all the given labels.
func sampleValue(mf *dto.MetricFamily, labels map[string]string) float64 {
	if mf == nil {
		return -1
	}
	sum := 0.0
	for _, m := range mf.Metric {
		n := 0
		for _, lp := range m.Label {
			if v, ok := labels[lp.GetName()]; ok && v == lp.GetValue() {
				n++
			}
		}
		if n != len(labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		}
	}
	return sum
}
