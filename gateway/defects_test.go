package gateway_test

// Regression tests for the defects found by probing the gateway from the
// outside: each fails on the code before its fix.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/gateway"
)

// lockedBuffer is a log sink safe for the gateway's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// scripted is an upstream answering every request with fn, recording the
// request headers it saw.
type scripted struct {
	url string
	mu  sync.Mutex
	hdr http.Header
}

func startScripted(t *testing.T, fn func(ctx *fasthttp.RequestCtx)) *scripted {
	t.Helper()
	s := &scripted{}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{ReadBufferSize: 64 << 10, Handler: func(ctx *fasthttp.RequestCtx) {
		h := http.Header{}
		for k, v := range ctx.Request.Header.All() {
			h.Add(string(k), string(v))
		}
		s.mu.Lock()
		s.hdr = h
		s.mu.Unlock()
		fn(ctx)
	}}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	s.url = "http://" + ln.Addr().String()
	return s
}

func (s *scripted) lastHeader() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hdr
}

// rawUpstream answers each connection with the bytes of fn and closes it.
func rawUpstream(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(c, answer)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return "http://" + ln.Addr().String()
}

func getWith(t *testing.T, method, url string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

const chatBody = `{"model":"%s","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`

// TestKeyAllowListAppliesToThePoolThatServes: defects 1 and 6. A key may use
// only the pools its allow-list names, whatever name or header route reached
// them, fallbacks included; forbidden and missing models look the same.
func TestKeyAllowListAppliesToThePoolThatServes(t *testing.T) {
	simURL, _ := startSim(t, nil)
	refused := rawUpstream(t, "") // answers nothing: a failing primary
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: sim, url: `+simURL+`}
  - {name: broken, url: `+refused+`, health: {failure_threshold: 1000}}
models:
  - {name: llama-3.1-8b, targets: [{backend: sim, model: sim-chat}]}
  - {name: llama-3.2-3b, targets: [{backend: sim, model: sim-chat}]}
  - {name: flaky, targets: [{backend: broken}], retry: {attempts: 1}, fallbacks: [llama-3.1-8b]}
routes:
  - name: support
    match: {model: "llama-*", header: {x-team: support}}
    to: llama-3.1-8b
  - name: default
keys:
  - {id: small, tenant: t, sha256: `+gateway.HashKey("sk-small")+`, models: ["llama-3.2-3b", "flaky"]}
`)
	key := []string{"Authorization", "Bearer sk-small"}
	code, _, b := post(t, g.url+"/v1/chat/completions", fmt.Sprintf(chatBody, "llama-3.2-3b"), key...)
	if code != 200 {
		t.Fatalf("allowed model: status %d %s", code, b)
	}
	code, _, b = post(t, g.url+"/v1/chat/completions", fmt.Sprintf(chatBody, "llama-3.2-3b"), append(key, "x-team", "support")...)
	if code != 404 || !strings.Contains(string(b), "does not exist or you do not have access to it") {
		t.Errorf("header route to a forbidden pool: status %d %s, want 404", code, b)
	}
	// A fallback the key may not use is not tried.
	code, hdr, b := post(t, g.url+"/v1/chat/completions", fmt.Sprintf(chatBody, "flaky"), key...)
	if code == 200 || hdr.Get("X-Switchyard-Backend") == "sim" {
		t.Errorf("forbidden fallback served the request: status %d %s", code, b)
	}
	// Forbidden and missing models answer alike (no existence oracle).
	_, _, forbidden := post(t, g.url+"/v1/chat/completions", fmt.Sprintf(chatBody, "llama-3.1-8b"), key...)
	_, _, missing := post(t, g.url+"/v1/chat/completions", fmt.Sprintf(chatBody, "llama-9"), key...)
	norm := func(s string, name string) string { return strings.ReplaceAll(string(s), name, "M") }
	if norm(string(forbidden), "llama-3.1-8b") != norm(string(missing), "llama-9") || !strings.Contains(string(missing), `"code":"model_not_found"`) {
		t.Errorf("forbidden %s and missing %s differ", forbidden, missing)
	}
	for _, path := range []string{"/v1/models/llama-3.1-8b", "/v1/models/llama-9"} {
		if code, _, body := getWith(t, "GET", g.url+path, key...); code != 404 || !strings.Contains(body, "do not have access") {
			t.Errorf("GET %s: %d %s, want 404", path, code, body)
		}
	}
}

// TestDuplicateTopLevelKeysAreRejected: defect 2.
func TestDuplicateTopLevelKeysAreRejected(t *testing.T) {
	g := startGateway(t, simConfig(""))
	for _, tc := range []struct{ body, key string }{
		{`{"model":"secret-m","model":"sim-chat","messages":[]}`, "model"},
		{`{"model":"sim-chat","max_tokens":99999,"messages":[],"max_tokens":5}`, "max_tokens"},
	} {
		code, _, b := post(t, g.url+"/v1/chat/completions", tc.body)
		if code != 400 || !strings.Contains(string(b), `"param":"`+tc.key+`"`) {
			t.Errorf("%s: status %d %s, want 400 naming %q", tc.body, code, b, tc.key)
		}
	}
}

// TestClientCredentialsNeverLeak: defect 3.
func TestClientCredentialsNeverLeak(t *testing.T) {
	up := startScripted(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[]}`)
	})
	var logs lockedBuffer
	g := startGatewayLog(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends: [{name: up, url: `+up.url+`}]
models: [{name: m, targets: [{backend: up}]}]
keys: [{id: k, tenant: t, sha256: `+gateway.HashKey("sk-very-secret")+`}]
`, &logs)
	// A key sent as api-key is accepted, and goes no further.
	code, _, b := post(t, g.url+"/v1/chat/completions", fmt.Sprintf(chatBody, "m"), "api-key", "sk-very-secret")
	if code != 200 {
		t.Fatalf("api-key auth: %d %s", code, b)
	}
	for k, v := range up.lastHeader() {
		if strings.Contains(strings.Join(v, ","), "sk-very-secret") {
			t.Errorf("the client's key reached the upstream in %s", k)
		}
	}
	// A malformed request is not echoed back, nor logged with its key.
	conn, err := net.Dial("tcp4", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-very-secret\r\nContent-Length: zz\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(conn)
	if !bytes.Contains(answer, []byte(" 400 ")) || bytes.Contains(answer, []byte("sk-very-secret")) {
		t.Errorf("malformed request answer:\n%s", answer)
	}
	if strings.Contains(logs.String(), "sk-very-secret") {
		t.Errorf("the key reached the log:\n%s", logs.String())
	}
}

// TestUpstreamInternalsStayInTheLog: defect 4.
func TestUpstreamInternalsStayInTheLog(t *testing.T) {
	up := startScripted(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(500)
		ctx.SetContentType("text/html")
		ctx.SetBodyString("<html>gpu-node-17.internal.corp failed; auth was " + string(ctx.Request.Header.Peek("Authorization")) + "</html>")
	})
	var logs lockedBuffer
	g := startGatewayLog(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: up, url: `+up.url+`, api_key: backend-key-123, health: {failure_threshold: 1000}}
  - {name: nowhere, url: "http://127.0.0.1:1", health: {failure_threshold: 1000}}
models:
  - {name: m, targets: [{backend: up}], retry: {attempts: 1}}
  - {name: n, targets: [{backend: nowhere}], retry: {attempts: 1}}
`, &logs)
	code, _, b := post(t, g.url+"/v1/chat/completions", fmt.Sprintf(chatBody, "m"))
	if code != 502 || !strings.Contains(string(b), "backend up answered 500") {
		t.Errorf("status %d %s, want 502 naming the backend and status", code, b)
	}
	for _, secret := range []string{"internal.corp", "backend-key-123", "<html>"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("client body leaks %q: %s", secret, b)
		}
	}
	waitFor(t, "the upstream body in the log", 2*time.Second, func() bool { return strings.Contains(logs.String(), "internal.corp") })
	if strings.Contains(logs.String(), "backend-key-123") {
		t.Errorf("the backend's key reached the log:\n%s", logs.String())
	}
	code, _, b = post(t, g.url+"/v1/chat/completions", fmt.Sprintf(chatBody, "n"))
	if code != 502 || strings.Contains(string(b), "127.0.0.1") || strings.Contains(string(b), "dial") {
		t.Errorf("dial failure: %d %s, want 502 without addresses", code, b)
	}
}

// TestKeysProtectEverything: defect 5 and 15.
func TestKeysProtectEverything(t *testing.T) {
	g := startGateway(t, simConfig(`keys: [{id: k, tenant: t, sha256: `+gateway.HashKey("sk-1")+`}]`))
	if code, _, b := post(t, g.url+"/v1/chat/completions", `{"model":`); code != 401 {
		t.Errorf("no key, bad body: %d %s, want 401 before the body is read", code, b)
	}
	if code, _, _ := getWith(t, "GET", g.url+"/metrics"); code != 404 {
		t.Errorf("GET /metrics with keys configured: %d, want 404 (metrics are on the admin listener)", code)
	}
	for _, tc := range []struct {
		method, path string
		hdr          []string
		code         int
	}{
		{"GET", "/v1/models", []string{"Authorization", "Bearer sk-1"}, 200},
		{"GET", "/v1/models/sim-chat", []string{"Authorization", "Bearer sk-1"}, 200},
		{"GET", "/v1/models", nil, 401},
		{"GET", "/v1/models/nope", []string{"Authorization", "Bearer sk-1"}, 404},
		{"GET", "/nope", nil, 404},
		{"GET", "/v1/chat/completions", []string{"Authorization", "Bearer sk-1"}, 405},
		{"DELETE", "/v1/models/sim-chat", []string{"Authorization", "Bearer sk-1"}, 405},
		{"POST", "/v1/models", []string{"Authorization", "Bearer sk-1"}, 405},
		{"PUT", "/v1/models/sim-chat", []string{"Authorization", "Bearer sk-1"}, 405},
	} {
		code, hdr, body := getWith(t, tc.method, g.url+tc.path, tc.hdr...)
		if code != tc.code {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.code)
		}
		if hdr.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: no x-request-id", tc.method, tc.path)
		}
		if code == 405 && hdr.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without allow", tc.method, tc.path)
		}
	}
}

// holdingUpstream sends stream headers at once (as vLLM does before
// prefill), then nothing; closed is closed when the gateway drops the call.
func holdingUpstream(t *testing.T) (url string, sent, closed chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sent, closed = make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		close(sent)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := br.ReadByte(); err == io.EOF {
			close(closed)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "http://" + ln.Addr().String(), sent, closed
}

// TestClientLeavingBeforeTheFirstToken: defects 9 and 16. A client that
// leaves after the stream headers but before any event cancels the
// upstream call, and the exchange is a 499 with its backend.
func TestClientLeavingBeforeTheFirstToken(t *testing.T) {
	up, sent, closed := holdingUpstream(t)
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends: [{name: up, url: `+up+`}]
models: [{name: m, targets: [{backend: up}]}]
`)
	conn, err := net.Dial("tcp4", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	<-sent
	// Let the relay start waiting for the first event (the watcher covered
	// only the wait for the headers before).
	time.Sleep(300 * time.Millisecond)
	conn.Close()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("the upstream call was not dropped within 3s of the client leaving")
	}
	waitFor(t, "the exchange recorded as a 499 of backend up", 3*time.Second, func() bool {
		_, m := get(t, g.url+"/metrics")
		return strings.Contains(m, `switchyard_backend_inflight{backend="up"} 0`) &&
			strings.Contains(m, `backend="up",op="chat",code="499"}`)
	})
}

// TestCloseDelimitedStreamWithoutDone: defect 10.
func TestCloseDelimitedStreamWithoutDone(t *testing.T) {
	up := rawUpstream(t, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"+
		`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"he"},"finish_reason":null}]}`+"\n\n")
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends: [{name: up, url: `+up+`}]
models: [{name: m, targets: [{backend: up}]}]
`)
	code, _, b := post(t, g.url+"/v1/chat/completions", `{"model":"m","messages":[],"stream":true}`)
	if code != 200 || !strings.Contains(string(b), `"content":"he"`) || !strings.Contains(string(b), `data: {"error":`) {
		t.Errorf("status %d, stream:\n%s\nwant the content then an error event", code, b)
	}
}

// TestUpstreamAnswersOnTheWire: defect 12.
func TestUpstreamAnswersOnTheWire(t *testing.T) {
	answer := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`
	up := startScripted(t, func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Request.Header.Peek("x-answer")) {
		case "503":
			ctx.SetStatusCode(503)
		case "429":
			ctx.Response.Header.Set("x-ratelimit-remaining-requests", "0")
			ctx.Response.Header.Set("retry-after", "7")
			ctx.SetStatusCode(429)
		case "gzip":
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = io.WriteString(zw, answer)
			_ = zw.Close()
			ctx.Response.Header.Set("Content-Encoding", "gzip")
			ctx.SetContentType("application/json")
			ctx.SetBody(buf.Bytes())
		case "slow":
			time.Sleep(500 * time.Millisecond)
			ctx.SetBodyString(answer)
		}
	})
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s, compression: {enabled: false}}
backends: [{name: up, url: `+up.url+`, timeouts: {first_byte: 0, total: 200ms}, health: {failure_threshold: 1000}}]
models: [{name: m, targets: [{backend: up}], retry: {attempts: 1}}]
`)
	req := fmt.Sprintf(chatBody, "m")
	if code, _, b := post(t, g.url+"/v1/chat/completions", req, "x-answer", "503"); code != 502 {
		t.Errorf("upstream 503: %d %s, want 502 (503 is for no healthy backend)", code, b)
	}
	code, hdr, b := post(t, g.url+"/v1/chat/completions", req, "x-answer", "429")
	if code != 429 || hdr.Get("X-Ratelimit-Remaining-Requests") != "0" || hdr.Get("Retry-After") != "7" {
		t.Errorf("upstream 429: %d %v %s, want 429 with its x-ratelimit-* and retry-after", code, hdr, b)
	}
	code, hdr, b = post(t, g.url+"/v1/chat/completions", req, "x-answer", "gzip")
	if code != 200 || string(b) != answer || hdr.Get("Content-Encoding") != "" {
		t.Errorf("gzip upstream: %d %q %q, want the decoded body", code, hdr.Get("Content-Encoding"), b)
	}
	code, _, b = post(t, g.url+"/v1/chat/completions", req, "x-answer", "slow")
	if code != 504 || !strings.Contains(string(b), "total timeout") {
		t.Errorf("slow upstream: %d %s, want 504 naming the total timeout", code, b)
	}
	// Headers up to server.max_header_size pass; beyond it, 431.
	big := strings.Repeat("a", 6000)
	if code, _, b := post(t, g.url+"/v1/chat/completions", req, "x-big", big); code != 200 && code != 502 {
		t.Errorf("6000-byte header: %d %s", code, b)
	}
	if code, _, b := post(t, g.url+"/v1/chat/completions", req, "x-big", big+big); code != 431 {
		t.Errorf("12000-byte header: %d %s, want 431", code, b)
	}
}

// TestStreamUsageAlwaysCounted: defect 17. Streams without include_usage
// are counted in switchyard_tokens_total, and their clients do not get the
// usage chunk they did not ask for.
func TestStreamUsageAlwaysCounted(t *testing.T) {
	g := startGateway(t, simConfig(""))
	code, _, b := post(t, g.url+"/v1/chat/completions", `{"model":"sim-chat","messages":[{"role":"user","content":"count me"}],"max_tokens":4,"stream":true}`)
	if code != 200 || !strings.Contains(string(b), "[DONE]") {
		t.Fatalf("stream: %d %s", code, b)
	}
	if strings.Contains(string(b), `"usage":{`) || strings.Contains(string(b), `"choices":[]`) {
		t.Errorf("the client got a usage chunk it did not ask for:\n%s", b)
	}
	_, m := get(t, g.url+"/metrics")
	if !strings.Contains(m, `switchyard_tokens_total{model="sim-chat",backend="sim",type="completion"} 4`) {
		t.Errorf("no completion tokens counted for the stream:\n%s", grepLines(m, "tokens_total"))
	}
	// A client that asks still gets it.
	_, _, b = post(t, g.url+"/v1/chat/completions", `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"stream":true,"stream_options":{"include_usage":true}}`)
	if !strings.Contains(string(b), `"usage":{`) {
		t.Errorf("include_usage: no usage chunk:\n%s", b)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
