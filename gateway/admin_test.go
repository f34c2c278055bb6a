package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminAPI(t *testing.T) {
	t.Setenv("TEST_ADMIN_TOKEN", "s3cret")
	t.Setenv("TEST_UPSTREAM_KEY", "upstream-key-value")
	simURL, _ := startSim(t, nil)
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, token: "${TEST_ADMIN_TOKEN}"}
backends: [{name: up, url: "`+simURL+`", api_key: "${TEST_UPSTREAM_KEY}"}]
models: [{name: sim-chat, targets: [{backend: up}]}]
`)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.srv.ServeAdmin(ln) }() // stopped by the gateway's Shutdown
	admin := "http://" + ln.Addr().String()

	if code, _ := get(t, admin+"/admin/config"); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := get(t, admin+"/admin/config", "Authorization", "Bearer wrong"); code != 401 {
		t.Errorf("wrong token: %d, want 401", code)
	}
	auth := []string{"Authorization", "Bearer s3cret"}
	code, body := get(t, admin+"/admin/config", auth...)
	if code != 200 || strings.Contains(body, "upstream-key-value") || strings.Contains(body, "s3cret") || !strings.Contains(body, "[redacted]") {
		t.Errorf("config dump (%d) leaks a secret or lacks redaction:\n%s", code, body)
	}
	code, body = get(t, admin+"/admin/backends", auth...)
	var st struct {
		Backends []struct {
			Name    string `json:"name"`
			Healthy bool   `json:"healthy"`
		} `json:"backends"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || len(st.Backends) != 1 || !st.Backends[0].Healthy {
		t.Errorf("backends (%d): %s", code, body)
	}
	if code, body := get(t, admin+"/debug/pprof/cmdline", auth...); code != 200 || body == "" {
		t.Errorf("pprof through the admin API: %d %q", code, body)
	}
	if code, _ := get(t, admin+"/debug/pprof/cmdline"); code != 401 {
		t.Errorf("pprof without the token: %d, want 401", code)
	}
	// Reload through the admin API: first unchanged, then a new model.
	req, _ := http.NewRequest(http.MethodPost, admin+"/admin/reload", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	cfg, _ := os.ReadFile(g.path)
	os.WriteFile(g.path, []byte(strings.Replace(string(cfg), "models: [{name: sim-chat, targets: [{backend: up}]}]",
		"models: [{name: sim-chat, targets: [{backend: up}]}, {name: other, targets: [{backend: up, model: sim-chat}]}]", 1)), 0o600)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("admin reload: %d", resp.StatusCode)
	}
	if _, body := get(t, g.url+"/v1/models"); !strings.Contains(body, `"other"`) {
		t.Errorf("models after admin reload: %s", body)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	simURL, _ := startSim(t, nil)
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: up, url: "`+simURL+`", health: {active: {path: /health, interval: 20ms, timeout: 500ms}}}
  - {name: down, url: "http://127.0.0.1:1", health: {active: {path: /health, interval: 20ms, timeout: 200ms}}}
models:
  - {name: sim-chat, targets: [{backend: up}]}
  - {name: broken, targets: [{backend: down}]}
`)
	if code, body := get(t, g.url+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("healthz: %d %s", code, body)
	}
	// The active check marks "down" unhealthy, so the pool "broken" is not ready.
	waitFor(t, "readyz to report the dead backend", 3*time.Second, func() bool {
		code, _ := get(t, g.url+"/readyz")
		return code == 503
	})
	if code, _, _ := post(t, g.url+"/v1/chat/completions", `{"model":"broken","messages":[{"role":"user","content":"x"}]}`); code != 503 {
		t.Errorf("request to an unhealthy pool: %d, want 503", code)
	}
	post(t, g.url+"/v1/chat/completions", `{"model":"sim-chat","messages":[{"role":"user","content":"x"}],"max_tokens":3}`)
	post(t, g.url+"/v1/chat/completions", `{"model":"sim-chat","messages":[{"role":"user","content":"x"}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}`)
	_, m := get(t, g.url+"/metrics")
	for _, want := range []string{
		`switchyard_requests_total{route="default",model="sim-chat",backend="up",op="chat",code="200"}`,
		`switchyard_requests_total{route="default",model="broken",backend="",op="chat",code="503"}`,
		`switchyard_request_duration_seconds_bucket{route="default",model="sim-chat",op="chat",le=`,
		`switchyard_gateway_overhead_seconds_bucket{op="chat",le=`,
		`switchyard_upstream_first_byte_seconds_bucket{backend="up",le=`,
		`switchyard_upstream_responses_total{backend="up",code="200"}`,
		`switchyard_ttft_seconds_bucket{model="sim-chat",le=`,
		`switchyard_inter_token_latency_seconds_bucket{model="sim-chat",le=`,
		`switchyard_tokens_total{model="sim-chat",backend="up",type="completion"} 6`,
		`switchyard_backend_inflight{backend="up"} 0`,
		`switchyard_backend_healthy{backend="down"} 0`,
		`switchyard_backend_healthy{backend="up"} 1`,
		`switchyard_config_last_reload_successful 1`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestConfigFileWatch(t *testing.T) {
	simURL, _ := startSim(t, nil)
	cfg := `
listen: 127.0.0.1:0
server: {watch_interval: 20ms}
backends: [{name: up, url: "` + simURL + `"}]
models: [{name: NAME, targets: [{backend: up, model: sim-chat}]}]
`
	g := startGateway(t, strings.Replace(cfg, "NAME", "first", 1))
	if err := os.WriteFile(g.path, []byte(strings.Replace(cfg, "NAME", "second", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the file change to be picked up", 3*time.Second, func() bool {
		_, body := get(t, g.url+"/v1/models")
		return strings.Contains(body, `"second"`)
	})
}

// TestShutdownDrainsStreams: a stream in flight when shutdown starts runs
// to its end; new connections are refused.
func TestShutdownDrainsStreams(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"itl": "10ms"})
	g := startGateway(t, fallbackConfig(simURL, simURL))
	conn, err := net.Dial("tcp4", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"model":"sim-chat","messages":[{"role":"user","content":"drain me"}],"max_tokens":30,"stream":true}`
	_, _ = io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "+itoa(len(body))+"\r\n\r\n"+body)
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			break
		}
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- g.srv.Shutdown(ctx)
	}()
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: [DONE]") {
		t.Errorf("the stream was cut by shutdown:\n%s", rest)
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
