package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type adminBackends struct {
	Backends []struct {
		Name string `json:"name"`
		Load *struct {
			Waiting    float64  `json:"waiting"`
			Running    float64  `json:"running"`
			KVUsage    *float64 `json:"kv_usage"`
			BlockSize  int      `json:"block_size"`
			GPUBlocks  int      `json:"gpu_blocks"`
			At         string   `json:"at"`
			AgeSeconds float64  `json:"age_seconds"`
			Stale      bool     `json:"stale"`
		} `json:"load"`
	} `json:"backends"`
}

func backendsState(t *testing.T, admin string) adminBackends {
	t.Helper()
	code, body := get(t, admin+"/admin/backends", "Authorization", "Bearer tok")
	var st adminBackends
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("/admin/backends: %d %s", code, body)
	}
	return st
}

// TestBackendMetricsEmbeddedSim: an embedded simulator (kind sim) is
// scraped on its loopback port; its load shows in /admin/backends with its
// age, and in the gateway's metrics. A backend without metrics: has none.
func TestBackendMetricsEmbeddedSim(t *testing.T) {
	simURL, _ := startSim(t, nil)
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, token: tok}
backends:
  - name: gpu
    kind: sim
    sim: {model: sim-chat, profile: fast, kv-blocks: 4096, block-size: 32}
    metrics: {interval: 20ms}
  - {name: plain, url: "`+simURL+`"}
models:
  - name: sim-chat
    targets: [{backend: gpu}, {backend: plain}]
`)
	admin := g.serveAdmin(t)
	var st adminBackends
	waitFor(t, "a scraped load in /admin/backends", 5*time.Second, func() bool {
		st = backendsState(t, admin)
		return st.Backends[0].Load != nil
	})
	l := st.Backends[0].Load
	if l.BlockSize != 32 || l.GPUBlocks != 4096 || l.KVUsage == nil || *l.KVUsage != 0 || l.Stale || l.AgeSeconds > 1 || l.At == "" {
		t.Errorf("the simulator's load: %+v", *l)
	}
	if st.Backends[1].Load != nil {
		t.Errorf("a backend without metrics: shows a load %+v", *st.Backends[1].Load)
	}
	if code, _, b := post(t, g.url+"/v1/chat/completions", `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`); code != 200 {
		t.Fatalf("a request: %d %s", code, b)
	}
	_, text := get(t, admin+"/metrics", "Authorization", "Bearer tok")
	for _, want := range []string{
		`switchyard_backend_metrics_scrapes_total{backend="gpu",result="ok"}`,
		`switchyard_backend_queue_waiting{backend="gpu"} 0`,
		`switchyard_backend_queue_running{backend="gpu"} `,
		`switchyard_backend_kv_cache_usage{backend="gpu"} `,
		`switchyard_backend_metrics_age_seconds{backend="gpu"} `,
		"# HELP switchyard_backend_metrics_age_seconds Age of a backend's last good metrics scrape",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the gateway's metrics lack %q", want)
		}
	}
	if strings.Contains(text, `switchyard_backend_queue_waiting{backend="plain"}`) {
		t.Error("a backend without metrics: has a queue gauge")
	}
}

// TestBackendMetricsFailing: a backend whose metrics page is garbage, too
// slow, answers 500 or drops the connection: requests through the gateway
// keep succeeding (on the gateway's own counts), the failure is logged once
// with the backend and counted, and the load in /admin/backends goes stale.
func TestBackendMetricsFailing(t *testing.T) {
	var mode atomic.Value
	mode.Store("ok")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			switch mode.Load().(string) {
			case "ok":
				fmt.Fprint(w, "vllm:num_requests_waiting{model_name=\"m\"} 2\nvllm:num_requests_running{model_name=\"m\"} 1\nvllm:kv_cache_usage_perc{model_name=\"m\"} 0.5\n")
			case "garbage":
				fmt.Fprint(w, "{\"object\":\"list\",\"data\":[]}\n")
			case "slow":
				select {
				case <-time.After(2 * time.Second):
				case <-r.Context().Done():
				}
			case "500":
				http.Error(w, "internal", http.StatusInternalServerError)
			case "down":
				if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
					c.Close()
				}
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	defer up.Close()
	var log syncBuffer
	g := startGatewayLog(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, token: tok}
backends:
  - name: flaky
    url: "`+up.URL+`"
    api_key: sk-do-not-log-me
    metrics: {interval: 20ms, timeout: 50ms}
models:
  - name: m
    strategy: inference_aware   # its only target stale: saturated, and the pool fails open
    targets: [{backend: flaky}]
`, &log)
	admin := g.serveAdmin(t)
	waitFor(t, "a good scrape", 5*time.Second, func() bool {
		l := backendsState(t, admin).Backends[0].Load
		return l != nil && l.Waiting == 2 && l.Running == 1 && l.KVUsage != nil && *l.KVUsage == 0.5
	})
	chat := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	for _, m := range []string{"garbage", "slow", "500", "down"} {
		t.Run(m, func(t *testing.T) {
			mode.Store(m)
			// 3 intervals + the timeout: 110ms; allow for a slow test machine.
			waitFor(t, "the load to go stale", 5*time.Second, func() bool { return backendsState(t, admin).Backends[0].Load.Stale })
			for i := range 5 {
				if code, _, b := post(t, g.url+"/v1/chat/completions", chat); code != 200 {
					t.Fatalf("request %d with the metrics page %s: %d %s", i, m, code, b)
				}
			}
			if !strings.Contains(log.String(), "backend metrics scrape failed") || !strings.Contains(log.String(), "backend=flaky") {
				t.Errorf("no log line for the failing scrape:\n%s", log.String())
			}
			mode.Store("ok")
			waitFor(t, "a fresh load again", 5*time.Second, func() bool { return !backendsState(t, admin).Backends[0].Load.Stale })
		})
	}
	if n := strings.Count(log.String(), "backend metrics scrape failed"); n != 4 {
		t.Errorf("%d failure lines for 4 outages; want one each:\n%s", n, log.String())
	}
	if n := strings.Count(log.String(), "backend metrics scraped again"); n != 4 {
		t.Errorf("%d recovery lines for 4 recoveries; want one each", n)
	}
	if strings.Contains(log.String(), "sk-do-not-log-me") {
		t.Error("the backend's API key is in the log")
	}
	_, text := get(t, admin+"/metrics", "Authorization", "Bearer tok")
	for _, want := range []string{`switchyard_backend_metrics_scrapes_total{backend="flaky",result="error"}`, `switchyard_backend_metrics_scrapes_total{backend="flaky",result="ok"}`} {
		if !strings.Contains(text, want) {
			t.Errorf("the gateway's metrics lack %q", want)
		}
	}
}
