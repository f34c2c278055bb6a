package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fallbackConfig routes sim-chat to a broken primary with a working fallback.
func fallbackConfig(primaryURL, goodURL string) string {
	return `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: primary, url: "` + primaryURL + `", timeouts: {first_byte: 200ms}, health: {failure_threshold: 1000}}
  - {name: good, url: "` + goodURL + `"}
models:
  - name: sim-chat
    targets: [{backend: primary}]
    retry: {attempts: 1}
    fallbacks: [backup]
  - name: backup
    targets: [{backend: good, model: sim-chat}]
`
}

func TestFallbacks(t *testing.T) {
	goodURL, _ := startSim(t, nil)
	badURL, _ := startSim(t, map[string]string{"error-rate": "1"})
	stallURL, _ := startSim(t, map[string]string{"stall-rate": "1"})
	// A port with nothing listening: connections are refused.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := "http://" + ln.Addr().String()
	ln.Close()

	for _, tc := range []struct{ name, primary string }{
		{"connection refused", refusedURL},
		{"upstream 500", badURL},
		{"stall before first byte", stallURL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, fallbackConfig(tc.primary, goodURL))
			for _, stream := range []bool{false, true} {
				body := fmt.Sprintf(`{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":%v}`, stream)
				code, hdr, b := post(t, g.url+"/v1/chat/completions", body)
				if code != 200 {
					t.Fatalf("stream=%v: status %d body %s, want 200 from the fallback", stream, code, b)
				}
				if be := hdr.Get("X-Switchyard-Backend"); be != "good" {
					t.Errorf("stream=%v: served by %q, want the fallback backend", stream, be)
				}
				if stream && !strings.Contains(string(b), "data: [DONE]") {
					t.Errorf("streamed fallback lacks [DONE]: %s", b)
				}
			}
		})
	}
}

func TestUpstreamDiesMidStream(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"itl": "1ms"})
	g := startGateway(t, fallbackConfig(simURL, simURL))
	code, _, b := post(t, g.url+"/v1/chat/completions",
		`{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":50,"stream":true}`, "x-sim-fault", "drop-mid-stream")
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	s := string(b)
	if !strings.Contains(s, `data: {"error":`) {
		t.Fatalf("no error event after the upstream died mid-stream:\n%s", s)
	}
	if strings.Contains(s, "[DONE]") {
		t.Errorf("a dropped stream must not end with [DONE]:\n%s", s)
	}
	if !strings.Contains(s, `"delta"`) {
		t.Errorf("no content reached the client before the drop:\n%s", s)
	}
}

var runningRe = regexp.MustCompile(`(?m)^vllm:num_requests_running\{[^}]*\} (\S+)`)

// simRunning reads vllm:num_requests_running from a simulator.
func simRunning(t *testing.T, simURL string) float64 {
	resp, err := http.Get(simURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := runningRe.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no vllm:num_requests_running in:\n%s", b)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"itl": "20ms"})
	g := startGateway(t, fallbackConfig(simURL, simURL))
	conn, err := net.Dial("tcp4", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"sim-chat","messages":[{"role":"user","content":"a long answer please"}],"max_tokens":5000,"stream":true}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			break
		}
	}
	waitFor(t, "the upstream to be generating", 2*time.Second, func() bool { return simRunning(t, simURL) == 1 })
	// A relayed stream holds its backend's concurrency slot until it ends.
	inflight := func() string {
		_, m := get(t, g.url+"/metrics")
		i := strings.Index(m, `switchyard_backend_inflight{backend="primary"} `)
		if i < 0 {
			return "missing"
		}
		return strings.Fields(m[i:])[1]
	}
	if got := inflight(); got != "1" {
		t.Errorf("in flight on the backend during the stream = %s, want 1", got)
	}
	conn.Close()
	// 5000 tokens at 20ms would run 100s; the upstream must stop at once.
	waitFor(t, "the upstream request to be cancelled", 3*time.Second, func() bool { return simRunning(t, simURL) == 0 })
	waitFor(t, "the stream's slot to be released", 3*time.Second, func() bool { return inflight() == "0" })
}

// TestClientDisconnectCancelsNonStreamed: a client that gives up on a
// non-streamed completion (which sends nothing until it is done) gets its
// upstream request cancelled too.
func TestClientDisconnectCancelsNonStreamed(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"itl": "20ms"})
	g := startGateway(t, fallbackConfig(simURL, simURL))
	for _, stream := range []string{"false", "true"} {
		// A stream that stalls before its first token is watched the same way.
		fault := "none"
		if stream == "true" {
			fault = "stall"
		}
		conn, err := net.Dial("tcp4", strings.TrimPrefix(g.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		body := `{"model":"sim-chat","messages":[{"role":"user","content":"take your time"}],"max_tokens":5000,"stream":` + stream + `}`
		fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-sim-fault: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", fault, len(body), body)
		if fault == "none" {
			waitFor(t, "the upstream to be generating", 2*time.Second, func() bool { return simRunning(t, simURL) == 1 })
		} else {
			waitFor(t, "the upstream call to be open", 2*time.Second, func() bool {
				_, m := get(t, g.url+"/metrics")
				return strings.Contains(m, `switchyard_backend_inflight{backend="primary"} 1`)
			})
		}
		conn.Close()
		waitFor(t, "the upstream request to be cancelled", 3*time.Second, func() bool {
			_, m := get(t, g.url+"/metrics")
			return simRunning(t, simURL) == 0 && strings.Contains(m, `switchyard_backend_inflight{backend="primary"} 0`) &&
				strings.Contains(m, `code="499"`)
		})
	}
}

// TestReloadUnderLoad rewrites and reloads the config again and again while
// clients send plain and streamed requests: none may fail.
func TestReloadUnderLoad(t *testing.T) {
	simA, _ := startSim(t, map[string]string{"itl": "2ms"})
	simB, _ := startSim(t, map[string]string{"itl": "2ms"})
	cfg := func(url string, n int) string {
		return fmt.Sprintf(`
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: up%d, url: "%s"}
models:
  - {name: sim-chat, targets: [{backend: up%d}]}
routes:
  - name: r%d
    chain: [{defaults: {max_tokens: 20}}]
`, n, url, n, n)
	}
	g := startGateway(t, cfg(simA, 0))
	var failures, okCount atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				stream := (w+i)%2 == 0
				body := fmt.Sprintf(`{"model":"sim-chat","messages":[{"role":"user","content":"hi %d"}],"max_tokens":10,"stream":%v}`, i, stream)
				resp, err := http.Post(g.url+"/v1/chat/completions", "application/json", strings.NewReader(body))
				if err != nil {
					failures.Add(1)
					t.Errorf("request: %v", err)
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || (stream && !strings.HasSuffix(string(b), "data: [DONE]\n\n")) {
					failures.Add(1)
					t.Errorf("status %d err %v body %.200s", resp.StatusCode, err, b)
					continue
				}
				okCount.Add(1)
			}
		}()
	}
	for i := 1; i <= 20; i++ {
		url := simA
		if i%2 == 1 {
			url = simB
		}
		if err := os.WriteFile(g.path, []byte(cfg(url, i)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := g.srv.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		// Let requests complete on this generation before the next swap.
		prev := okCount.Load()
		waitFor(t, "requests on the new generation", 5*time.Second, func() bool { return okCount.Load() >= prev+3 })
	}
	// A bad file is rejected and the last good config keeps serving.
	if err := os.WriteFile(g.path, []byte("listen: [oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Reload(); err == nil {
		t.Error("a broken config was accepted")
	}
	prev := okCount.Load()
	waitFor(t, "requests after the rejected reload", 5*time.Second, func() bool { return okCount.Load() >= prev+3 })
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || okCount.Load() < 20 {
		t.Fatalf("%d failed, %d succeeded across reloads", failures.Load(), okCount.Load())
	}
	code, _, b := post(t, g.url+"/v1/chat/completions", `{"model":"sim-chat","messages":[{"role":"user","content":"still there?"}],"max_tokens":1}`)
	if code != 200 {
		t.Fatalf("after a rejected reload: %d %s", code, b)
	}
	resp, err := http.Get(g.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(mb), "switchyard_config_last_reload_successful 0") {
		t.Errorf("metrics do not show the failed reload")
	}
	t.Logf("%d requests succeeded across 20 reloads", okCount.Load())
}
