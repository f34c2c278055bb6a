package stages_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchyard/docs/examples/stages"
	"switchyard/gateway"
	"switchyard/plugins"
)

// gw is a gateway serving on a loopback port for one test.
type gw struct {
	srv  *gateway.Server
	url  string
	path string // its config file
}

// start runs a gateway with the built-in stages, the example stages and an
// embedded simulator, with routes (YAML list items) added to the config.
func start(t *testing.T, routes string) *gw {
	t.Helper()
	path := filepath.Join(t.TempDir(), "switchyard.yaml")
	if err := os.WriteFile(path, []byte(config(routes)), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := gateway.NewRegistry()
	plugins.RegisterAll(reg)
	stages.Register(reg)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := gateway.New(gateway.Options{ConfigPath: path, Registry: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
	})
	return &gw{srv: srv, url: "http://" + ln.Addr().String(), path: path}
}

func config(routes string) string {
	return `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - name: sim
    kind: sim
    sim: {model: sim-chat, profile: fast, itl: 1ms}
models:
  - name: sim-chat
    targets: [{backend: sim}]
  - name: sim-judge
    targets: [{backend: sim, model: sim-chat}]
routes:
` + routes
}

// reload rewrites the config file with routes and reloads it.
func (g *gw) reload(t *testing.T, routes string) {
	t.Helper()
	if err := os.WriteFile(g.path, []byte(config(routes)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
}

func chat(t *testing.T, g *gw, model string, stream bool, extra ...string) (int, http.Header, string) {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":%v%s}`, model, stream, strings.Join(extra, ""))
	resp, err := http.Post(g.url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// content returns the answer's text: a buffered chat completion's message,
// or a stream's content deltas joined, and whether a stream ended with
// [DONE].
func content(t *testing.T, body string) (string, bool) {
	t.Helper()
	if !strings.HasPrefix(body, "data: ") {
		var a struct {
			Choices []struct{ Message struct{ Content string } }
		}
		if err := json.Unmarshal([]byte(body), &a); err != nil || len(a.Choices) == 0 {
			t.Fatalf("not a chat completion: %v %s", err, body)
		}
		return a.Choices[0].Message.Content, false
	}
	var text strings.Builder
	done := false
	for _, line := range strings.Split(body, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		done = data == "[DONE]"
		var c struct {
			Choices []struct{ Delta struct{ Content string } }
		}
		if json.Unmarshal([]byte(data), &c) == nil {
			for _, ch := range c.Choices {
				text.WriteString(ch.Delta.Content)
			}
		}
	}
	return text.String(), done
}

// usage asks for a stream's usage chunk (stream_options is refused
// without stream).
func usage(stream bool) string {
	if !stream {
		return ""
	}
	return `,"stream_options":{"include_usage":true}`
}

func metric(t *testing.T, g *gw, series string) string {
	t.Helper()
	resp, err := http.Get(g.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return "missing"
}

// TestMemo: a repeated request is answered from memory, buffered and as a
// replayed stream (with usage when asked), without the model.
func TestMemo(t *testing.T) {
	g := start(t, `  - {name: memo, chain: [memo]}`)
	code, hdr, first := chat(t, g, "sim-chat", false)
	if code != 200 || hdr.Get("X-Memo") != "" {
		t.Fatalf("first: %d memo %q %s", code, hdr.Get("X-Memo"), first)
	}
	want, _ := content(t, first)
	code, hdr, again := chat(t, g, "sim-chat", false)
	if code != 200 || hdr.Get("X-Memo") != "hit" || again != first {
		t.Errorf("again: %d memo %q\n%s\nwant\n%s", code, hdr.Get("X-Memo"), again, first)
	}
	code, hdr, stream := chat(t, g, "sim-chat", true, `,"stream_options":{"include_usage":true}`)
	got, done := content(t, stream)
	if code != 200 || hdr.Get("X-Memo") != "hit" || hdr.Get("Content-Type") != "text/event-stream" || got != want || !done {
		t.Errorf("replay: %d memo %q %q: %q (want %q) done %v", code, hdr.Get("X-Memo"), hdr.Get("Content-Type"), got, want, done)
	}
	if !strings.Contains(stream, `"completion_tokens":4`) {
		t.Errorf("replay lacks the stored usage:\n%s", stream)
	}
	if v := metric(t, g, `switchyard_tokens_total{model="sim-chat",backend="sim",type="completion"}`); v != "4" {
		t.Errorf("completion tokens from the model = %s, want 4 (one call)", v)
	}
}

// TestNotice: the notice is the answer, buffered and synthesized as a
// stream, and the model is never called.
func TestNotice(t *testing.T) {
	g := start(t, `  - {name: notice, chain: [{notice: {text: "Down for maintenance until noon."}}]}`)
	for _, stream := range []bool{false, true} {
		code, _, body := chat(t, g, "sim-chat", stream, usage(stream))
		got, done := content(t, body)
		if code != 200 || got != "Down for maintenance until noon." || done != stream {
			t.Errorf("stream=%v: %d %q done %v:\n%s", stream, code, got, done, body)
		}
		if stream && !strings.Contains(body, `"usage":{"prompt_tokens":0,"completion_tokens":5,"total_tokens":5}`) {
			t.Errorf("the synthesized stream lacks its usage chunk:\n%s", body)
		}
	}
	if v := metric(t, g, `switchyard_tokens_total{model="sim-chat",backend="sim",type="completion"}`); v != "missing" {
		t.Errorf("the model was called: %s completion tokens", v)
	}
}

// TestGuard: a clean stream comes through whole and in order; a denied
// phrase split across two events ends the stream with an error event
// before any of the held text is sent; a buffered answer is checked too.
func TestGuard(t *testing.T) {
	g := start(t, `
  - {name: denied, match: {model: denied}, chain: [{wordfilter: {window: 3, deny: ["for maintenance"]}}, {notice: {text: "Down for maintenance until noon."}}], to: sim-chat}
  - {name: main, chain: [{wordfilter: {window: 3, deny: ["for maintenance"]}}]}
`)
	code, _, body := chat(t, g, "sim-chat", true)
	text, done := content(t, body)
	if code != 200 || !done || strings.Count(body, "data: ") != 6 || len(strings.Fields(text)) != 4 {
		t.Errorf("clean stream: %d done %v, %d events (want 4 tokens, the finish and [DONE]):\n%s", code, done, strings.Count(body, "data: "), body)
	}
	code, _, body = chat(t, g, "denied", true)
	if code != 200 || strings.Contains(body, "Down") || strings.Contains(body, "[DONE]") || !strings.Contains(body, "withheld by the guard") {
		t.Errorf("denied stream: %d:\n%s", code, body)
	}
	code, _, body = chat(t, g, "denied", false)
	if code != 400 || !strings.Contains(body, "withheld by the guard") {
		t.Errorf("denied buffered answer: %d %s", code, body)
	}
}

// TestRefine: next is called twice; the draft (a stream read inside the
// stage, or a buffered answer) is appended to the conversation of the
// second call, and usage adds up over both calls.
func TestRefine(t *testing.T) {
	g := start(t, `
  - {name: plain, match: {header: {x-plain: "yes"}}}
  - {name: refine, chain: [refine]}
`)
	req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions", strings.NewReader(`{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`))
	req.Header.Set("X-Plain", "yes")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var plain struct {
		Usage struct {
			PromptTokens int64 `json:"prompt_tokens"`
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&plain)
	resp.Body.Close()
	if err != nil || plain.Usage.PromptTokens == 0 {
		t.Fatalf("the plain call: %v, usage %+v", err, plain.Usage)
	}
	total := int64(0)
	for _, stream := range []bool{false, true} {
		code, hdr, body := chat(t, g, "sim-chat", stream, usage(stream))
		if code != 200 || hdr.Get("X-Refine-Draft-Tokens") != "4" {
			t.Fatalf("stream=%v: %d draft tokens %q %s", stream, code, hdr.Get("X-Refine-Draft-Tokens"), body)
		}
		// The usage: the buffered body's, or the stream's usage chunk (the last).
		var raw struct {
			Usage struct {
				P int64 `json:"prompt_tokens"`
				C int64 `json:"completion_tokens"`
			}
		}
		if stream {
			i := strings.LastIndex(body, `data: {"id"`)
			_ = json.Unmarshal([]byte(strings.SplitN(body[i+6:], "\n", 2)[0]), &raw)
		} else {
			_ = json.Unmarshal([]byte(body), &raw)
		}
		if raw.Usage.C != 4 || raw.Usage.P <= plain.Usage.PromptTokens {
			t.Errorf("stream=%v: second call's usage %+v, want 4 completion tokens and more prompt than the draft's %d", stream, raw.Usage, plain.Usage.PromptTokens)
		}
		total += plain.Usage.PromptTokens + 4 + raw.Usage.P + raw.Usage.C
	}
	// The deferred function runs after the answer was written: wait for it.
	waitMetric(t, g, `switchyard_example_refine_tokens_total{route="refine"}`, strconv.FormatInt(total, 10))
}

// TestGate: with the one slot held, a request waits on its exchange's
// context: the route's timeout ends it with a 504, a client that leaves
// ends it too; once the slot is given back (x.Defer), requests pass.
func TestGate(t *testing.T) {
	g := start(t, `  - {name: gated, chain: [{gate: {max: 1}}], timeout: 300ms}`)
	// Hold the slot: a Server.Do stream keeps its exchange, and so the
	// slot, until it is read to its end or closed.
	held, err := g.srv.Do(context.Background(), &gateway.Request{Op: gateway.OpChat,
		Body: []byte(`{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":true}`)})
	if err != nil || held.Stream == nil {
		t.Fatalf("holding the slot: %v %+v", err, held)
	}
	began := time.Now()
	code, _, body := chat(t, g, "sim-chat", false)
	if code != 504 || !strings.Contains(body, "timeout passed while waiting for a slot") {
		t.Errorf("waiting past the route's timeout: %d %s", code, body)
	}
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Errorf("answered after %v, before the route's timeout", took)
	}
	// A client that leaves while waiting.
	conn, err := net.Dial("tcp4", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	req := `{"model":"sim-chat","messages":[]}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(req), req)
	time.Sleep(50 * time.Millisecond) // let it reach the stage
	conn.Close()
	waitMetric(t, g, `switchyard_errors_total{route="gated",model="sim-chat",reason="client_closed"}`, "1")

	_ = held.Stream.Close() // the exchange ends: its deferred function frees the slot
	if code, _, body := chat(t, g, "sim-chat", false); code != 200 {
		t.Errorf("after the slot was freed: %d %s", code, body)
	}
}

func waitMetric(t *testing.T, g *gw, series, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for v := metric(t, g, series); v != want; v = metric(t, g, series) {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %s, want %s", series, v, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestQuota: the window lives in the resource pool: a reload that leaves
// the quota's settings alone keeps counting; a changed rpm starts afresh.
func TestQuota(t *testing.T) {
	routes := `  - {name: main, chain: [{quota: {rpm: 2}}]}`
	other := `  - {name: other, match: {header: {x-other: "yes"}}}` + "\n"
	g := start(t, routes)
	for i, want := range []int{200, 200, 429} {
		if code, _, body := chat(t, g, "sim-chat", false); code != want {
			t.Errorf("request %d: %d, want %d %s", i+1, code, want, body)
		}
	}
	g.reload(t, other+routes)
	if code, _, _ := chat(t, g, "sim-chat", false); code != 429 {
		t.Errorf("after a reload that kept rpm: %d, want 429 (the same window)", code)
	}
	g.reload(t, `  - {name: main, chain: [{quota: {rpm: 3}}]}`)
	if code, _, _ := chat(t, g, "sim-chat", false); code != 200 {
		t.Errorf("after rpm changed: %d, want 200 (a new window)", code)
	}
	if v := metric(t, g, `switchyard_quota_denied_total{route="main"}`); v != "2" {
		t.Errorf("denied = %s, want 2 (counting across reloads)", v)
	}
}

// TestJudge: the stage calls another pool through the Server's Do, with
// that route's chain, and passes the verdict on.
func TestJudge(t *testing.T) {
	g := start(t, `
  - {name: judge, match: {model: sim-judge}}
  - {name: main, chain: [{judge: {model: sim-judge}}]}
`)
	for _, stream := range []bool{false, true} {
		code, hdr, body := chat(t, g, "sim-chat", stream)
		if code != 200 || hdr.Get("X-Judge-Verdict") == "" || hdr.Get("X-Judge-Verdict") == "none" {
			t.Errorf("stream=%v: %d verdict %q %s", stream, code, hdr.Get("X-Judge-Verdict"), body)
		}
	}
	if v := metric(t, g, `switchyard_requests_total{route="judge",model="sim-judge",backend="sim",op="chat",code="200"}`); v != "2" {
		t.Errorf("judge route requests = %s, want 2", v)
	}
}

// TestEndpoint: the plugin endpoint is served next to the API and
// authenticated like it.
func TestEndpoint(t *testing.T) {
	g := start(t, "  - {name: main}\nkeys: [{id: k1, tenant: acme, sha256: "+gateway.HashKey("sk-1")+"}]\n")
	for _, tc := range []struct {
		key  string
		code int
		body string
	}{
		{"", 401, ""},
		{"sk-1", 200, `{"key_id":"k1","tenant":"acme"}`},
	} {
		req, _ := http.NewRequest("GET", g.url+"/v1/examples/whoami", nil)
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || (tc.body != "" && string(b) != tc.body) {
			t.Errorf("key %q: %d %s, want %d %s", tc.key, resp.StatusCode, b, tc.code, tc.body)
		}
	}
}
