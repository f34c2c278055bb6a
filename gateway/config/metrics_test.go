package config

import (
	"strings"
	"testing"
	"time"
)

// TestBackendMetricsDefaults: metrics: {} scrapes /metrics every 100ms with
// the vllm names and a timeout of the interval, at most 1s; no metrics key
// scrapes nothing.
func TestBackendMetricsDefaults(t *testing.T) {
	cases := []struct {
		name, metrics string
		want          *BackendMetrics
	}{
		{"absent", "", nil},
		{"empty", "\n    metrics: {}", &BackendMetrics{Path: "/metrics", Interval: Duration(100 * time.Millisecond), Timeout: Duration(100 * time.Millisecond), Kind: "vllm"}},
		{"long interval", "\n    metrics: {interval: 5s, kind: sglang}", &BackendMetrics{Path: "/metrics", Interval: Duration(5 * time.Second), Timeout: Duration(time.Second), Kind: "sglang"}},
		{"all given", "\n    metrics: {path: /stats/prom, interval: 50ms, timeout: 20ms, kind: triton}", &BackendMetrics{Path: "/stats/prom", Interval: Duration(50 * time.Millisecond), Timeout: Duration(20 * time.Millisecond), Kind: "triton"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte("backends:\n  - name: a\n    url: http://127.0.0.1:8000"+c.metrics+"\n"), "m.yaml")
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Backends[0].Metrics
			if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
				t.Errorf("metrics = %+v; want %+v", got, c.want)
			}
		})
	}
}

// TestBackendMetricsValidation: each error names the key and its line.
func TestBackendMetricsValidation(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error, in order
	}{
		{"unknown kind", `backends:
  - name: a
    url: http://127.0.0.1:8000
    metrics:
      kind: ollama
`, []string{`m.yaml:5:13: backends[0].metrics.kind: unknown kind "ollama" (want vllm, sglang, tgi or triton)`}},
		{"interval too short", `backends:
  - name: a
    url: http://127.0.0.1:8000
  - name: b
    url: http://127.0.0.1:8001
    metrics: {interval: 5ms}
`, []string{`m.yaml:6:25: backends[1].metrics.interval: must be at least 10ms, got 5ms`}},
		{"zero interval and timeout", `backends:
  - name: a
    url: http://127.0.0.1:8000
    metrics:
      interval: 0s
      timeout: 0s
`, []string{
			`m.yaml:5:17: backends[0].metrics.interval: must be at least 10ms, got 0s`,
			`m.yaml:6:16: backends[0].metrics.timeout: must be positive, got 0s`,
		}},
		{"path", `backends:
  - name: a
    url: http://127.0.0.1:8000
    metrics: {path: metrics}
`, []string{`m.yaml:4:21: backends[0].metrics.path: must start with "/", got "metrics"`}},
		{"unknown key", `backends:
  - name: a
    url: http://127.0.0.1:8000
    metrics: {every: 1s}
`, []string{`m.yaml:4:15: backends[0].metrics`, `every`}},
		{"not a duration", `backends:
  - name: a
    url: http://127.0.0.1:8000
    metrics: {interval: often}
`, []string{`m.yaml:4:25: backends[0].metrics.interval: invalid duration "often"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "m.yaml")
			if err == nil {
				t.Fatalf("no error for\n%s", c.yaml)
			}
			msg := err.Error()
			at := 0
			for _, w := range c.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error lacks %q (in order):\n%s", w, msg)
				}
				at += i + len(w)
			}
		})
	}
}
