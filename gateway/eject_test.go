package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the gateway's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const faultyChat = `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":1}`

// TestLastBackendNotEjected: request-specific 500s from the only backend of
// a pool do not eject it; later requests and /readyz still work, and the
// refused ejection is logged.
func TestLastBackendNotEjected(t *testing.T) {
	simURL, _ := startSim(t, nil)
	var log syncBuffer
	g := startGatewayLog(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: only, url: "`+simURL+`", health: {failure_threshold: 2, cooldown: 1m}}
models:
  - {name: sim-chat, targets: [{backend: only}], retry: {attempts: 1}}
`, &log)
	for i := range 4 {
		if code, _, b := post(t, g.url+"/v1/chat/completions", faultyChat, "x-sim-fault", "500"); code != 502 {
			t.Fatalf("faulty request %d: %d %s; want the upstream's 500 as 502", i, code, b)
		}
	}
	if code, _, b := post(t, g.url+"/v1/chat/completions", faultyChat); code != 200 {
		t.Fatalf("a good request after the faulty ones: %d %s; want 200 (the only backend must stay in rotation)", code, b)
	}
	if code, body := get(t, g.url+"/readyz"); code != 200 {
		t.Errorf("readyz after the faulty requests: %d %s; want 200", code, body)
	}
	if s := log.String(); !strings.Contains(s, "stays in rotation") || !strings.Contains(s, "backend=only") {
		t.Errorf("the refused ejection is not logged:\n%s", s)
	}
	if s := log.String(); strings.Contains(s, "backend ejected") {
		t.Errorf("the only backend was ejected:\n%s", s)
	}
}

// TestEjectionLogged: with a second healthy backend, a failing one is
// ejected, which is logged with its cool-down, and its return to rotation
// after the cool-down is logged too.
func TestEjectionLogged(t *testing.T) {
	simA, _ := startSim(t, nil)
	simB, _ := startSim(t, nil)
	var log syncBuffer
	g := startGatewayLog(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: a, url: "`+simA+`", health: {failure_threshold: 1, cooldown: 300ms}}
  - {name: b, url: "`+simB+`", health: {failure_threshold: 1, cooldown: 300ms}}
models:
  - {name: sim-chat, targets: [{backend: a}, {backend: b}], retry: {attempts: 1}}
`, &log)
	// Every request fails: the first backend to fail is ejected, the
	// second is then the pool's last and stays.
	for range 2 {
		post(t, g.url+"/v1/chat/completions", faultyChat, "x-sim-fault", "500")
	}
	s := log.String()
	if strings.Count(s, "backend ejected") != 1 || !strings.Contains(s, "cooldown=300ms") {
		t.Fatalf("want one ejection logged with its cool-down:\n%s", s)
	}
	if !strings.Contains(s, "stays in rotation") {
		t.Errorf("the refused ejection of the last backend is not logged:\n%s", s)
	}
	time.Sleep(350 * time.Millisecond)
	for range 2 {
		if code, _, b := post(t, g.url+"/v1/chat/completions", faultyChat); code != 200 {
			t.Fatalf("after the cool-down: %d %s", code, b)
		}
	}
	if s := log.String(); !strings.Contains(s, "back in rotation") {
		t.Errorf("the return to rotation is not logged:\n%s", s)
	}
}

// flakyBackend is an OpenAI-compatible server whose chat completions fail
// with 500 while failing is set and answer quickly otherwise.
func flakyBackend(t *testing.T, failing *atomic.Bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, `{"error":{"message":"broken"}}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"sim-chat",`+
			`"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],`+
			`"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// adminOf serves g's admin API (admin.insecure in its config) on a
// loopback port and returns its URL.
func adminOf(t *testing.T, g *gw) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.srv.ServeAdmin(ln) }() // stopped by the gateway's Shutdown
	return "http://" + ln.Addr().String()
}

// breakerOf reads a backend's breaker from /admin/backends.
func breakerOf(t *testing.T, admin, backend string) map[string]any {
	t.Helper()
	code, body := get(t, admin+"/admin/backends")
	if code != 200 {
		t.Fatalf("/admin/backends: %d %s", code, body)
	}
	var out struct {
		Backends []struct {
			Name    string         `json:"name"`
			Breaker map[string]any `json:"breaker"`
		} `json:"backends"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("/admin/backends: %v\n%s", err, body)
	}
	for _, b := range out.Backends {
		if b.Name == backend {
			return b.Breaker
		}
	}
	t.Fatalf("/admin/backends has no backend %q:\n%s", backend, body)
	return nil
}

// TestCircuitBreaker: a failing backend among healthy ones is ejected; when
// its cool-down ends one probe is let through, whose failure re-opens the
// circuit for twice the cool-down; once the backend works again a probe
// closes it. Clients see no error (retries go to the healthy backend), and
// the states show in the log, /admin/backends and /metrics.
func TestCircuitBreaker(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	bad := flakyBackend(t, &failing)
	good, _ := startSim(t, nil)
	var log syncBuffer
	g := startGatewayLog(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, insecure: true}
backends:
  - {name: bad, url: "`+bad+`", health: {failure_threshold: 2, cooldown: 200ms, max_cooldown: 1s}}
  - {name: good, url: "`+good+`"}
models:
  - {name: sim-chat, targets: [{backend: bad}, {backend: good}], retry: {attempts: 2, min_per_second: 100}}
`, &log)
	admin := adminOf(t, g)
	chat := func(when string) {
		t.Helper()
		if code, _, b := post(t, g.url+"/v1/chat/completions", faultyChat); code != 200 {
			t.Fatalf("%s: %d %s; want 200 (a retry on the good backend)", when, code, b)
		}
	}
	for range 4 {
		chat("while bad fails")
	}
	if b := breakerOf(t, admin, "bad"); b["state"] != "open" || b["reason"] != "failures" || b["cooldown"] != "200ms" || b["until"] == nil {
		t.Fatalf("bad after its failures: %v; want open for failures, 200ms", b)
	}
	if s := log.String(); strings.Count(s, "backend ejected after consecutive failures") != 1 || !strings.Contains(s, "backend=bad") {
		t.Fatalf("want one ejection of bad logged:\n%s", s)
	}
	// The cool-down ends; bad still fails: its probe re-opens the circuit.
	time.Sleep(250 * time.Millisecond)
	for range 2 {
		chat("the probe fails")
	}
	waitFor(t, "the failed probe logged", time.Second, func() bool {
		return strings.Contains(log.String(), "backend ejected again: its half-open probe failed")
	})
	if s := log.String(); !strings.Contains(s, "backend half-open after its cool-down") || !strings.Contains(s, "cooldown=400ms") {
		t.Fatalf("want the half-open state and a 400ms re-open logged:\n%s", s)
	}
	if b := breakerOf(t, admin, "bad"); b["state"] != "open" || b["reason"] != "probe" || b["cooldown"] != "400ms" || b["backoff_level"] != 1.0 {
		t.Fatalf("bad after its failed probe: %v; want open for probe, 400ms, level 1", b)
	}
	// bad works again: after the cool-down a probe closes the circuit.
	failing.Store(false)
	time.Sleep(450 * time.Millisecond)
	for range 4 {
		chat("bad recovered")
	}
	if b := breakerOf(t, admin, "bad"); b["state"] != "closed" || b["ejections"] != 2.0 {
		t.Fatalf("bad after a good probe: %v; want closed after 2 ejections", b)
	}
	if s := log.String(); !strings.Contains(s, "backend back in rotation: a half-open probe succeeded") {
		t.Fatalf("the closing probe is not logged:\n%s", s)
	}
	_, metrics := get(t, admin+"/metrics")
	for _, want := range []string{
		`switchyard_backend_ejections_total{backend="bad",reason="failures"} 1`,
		`switchyard_backend_ejections_total{backend="bad",reason="probe"} 1`,
		`switchyard_backend_circuit_state{backend="bad"} 0`,
		`switchyard_backend_circuit_state{backend="good"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestLatencyOutlierEjected: a backend much slower to answer than the rest
// of its pool is ejected as a latency outlier (while it answers without
// errors), and the ejection is counted by reason.
func TestLatencyOutlierEjected(t *testing.T) {
	fastA, _ := startSim(t, nil)
	fastB, _ := startSim(t, nil)
	slow, _ := startSim(t, map[string]string{"prefill-overhead": "150ms"})
	var log syncBuffer
	g := startGatewayLog(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, insecure: true}
backends:
  - {name: fast-a, url: "`+fastA+`"}
  - {name: fast-b, url: "`+fastB+`"}
  - name: slow
    url: "`+slow+`"
    health: {cooldown: 1m, latency_factor: 3, latency_min: 50ms, latency_min_samples: 3}
models:
  - {name: sim-chat, targets: [{backend: fast-a}, {backend: fast-b}, {backend: slow}]}
`, &log)
	admin := adminOf(t, g)
	for i := range 12 {
		if code, _, b := post(t, g.url+"/v1/chat/completions", faultyChat); code != 200 {
			t.Fatalf("request %d: %d %s", i, code, b)
		}
	}
	if b := breakerOf(t, admin, "slow"); b["state"] != "open" || b["reason"] != "latency" {
		t.Fatalf("slow after 12 requests: %v; want open for latency", b)
	}
	if b := breakerOf(t, admin, "fast-a"); b["state"] != "closed" {
		t.Fatalf("fast-a: %v; want closed", b)
	}
	if s := log.String(); !strings.Contains(s, "backend ejected as a latency outlier") || !strings.Contains(s, "backend=slow") {
		t.Fatalf("the latency ejection is not logged:\n%s", s)
	}
	_, metrics := get(t, admin+"/metrics")
	if want := `switchyard_backend_ejections_total{backend="slow",reason="latency"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	if want := `switchyard_backend_circuit_state{backend="slow"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// TestStreamCutEjects: streams cut by their backend after the first byte
// count as failures (a stream's verdict comes at its end), so a backend that
// drops every stream mid-way is ejected; streams read to their end are
// successes.
func TestStreamCutEjects(t *testing.T) {
	drop, _ := startSim(t, map[string]string{"drop-rate": "1", "itl": "1ms"})
	good, _ := startSim(t, map[string]string{"itl": "1ms"})
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, insecure: true}
backends:
  - {name: drop, url: "`+drop+`", health: {failure_threshold: 2, cooldown: 1m}}
  - {name: good, url: "`+good+`", health: {failure_threshold: 2, cooldown: 1m}}
models:
  - {name: sim-chat, targets: [{backend: drop}, {backend: good}]}
`)
	admin := adminOf(t, g)
	const stream = `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"stream":true}`
	for range 6 {
		post(t, g.url+"/v1/chat/completions", stream)
	}
	waitFor(t, "drop ejected", 2*time.Second, func() bool { return breakerOf(t, admin, "drop")["state"] == "open" })
	if b := breakerOf(t, admin, "good"); b["state"] != "closed" || b["consecutive_failures"] != 0.0 {
		t.Fatalf("good: %v; want closed without failures", b)
	}
}

// TestBreakerSurvivesReload: a reload keeps an ejected backend out, with its
// cool-down, back-off and counts (the breaker lives in the backend's state,
// kept across generations), even when its health settings change.
func TestBreakerSurvivesReload(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	bad := flakyBackend(t, &failing)
	good, _ := startSim(t, nil)
	cfg := func(maxCooldown string) string {
		return `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, insecure: true}
backends:
  - {name: bad, url: "` + bad + `", health: {failure_threshold: 1, cooldown: 1m, max_cooldown: ` + maxCooldown + `}}
  - {name: good, url: "` + good + `"}
models:
  - {name: sim-chat, targets: [{backend: bad}, {backend: good}], retry: {attempts: 2, min_per_second: 100}}
`
	}
	g := startGateway(t, cfg("5m"))
	admin := adminOf(t, g)
	for range 2 {
		post(t, g.url+"/v1/chat/completions", faultyChat)
	}
	before := breakerOf(t, admin, "bad")
	if before["state"] != "open" {
		t.Fatalf("bad before the reload: %v; want open", before)
	}
	if err := os.WriteFile(g.path, []byte(cfg("10m")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	after := breakerOf(t, admin, "bad")
	for _, k := range []string{"state", "until", "cooldown", "ejections", "reason"} {
		if after[k] != before[k] {
			t.Errorf("breaker %s after the reload: %v; before %v", k, after[k], before[k])
		}
	}
	failing.Store(false)
	for range 4 { // the ejected backend gets nothing
		if code, hdr, b := post(t, g.url+"/v1/chat/completions", faultyChat); code != 200 || hdr.Get("X-Switchyard-Backend") == "bad" {
			t.Fatalf("after the reload: %d from %q %s; want 200 from good", code, hdr.Get("X-Switchyard-Backend"), b)
		}
	}
}
