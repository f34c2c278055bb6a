package gateway_test

// Tests of the spine v2 seams: the response as a value and its event
// sources, re-entrant dispatch, the exchange's lifecycle and context,
// chained observers and Server.Do.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/valyala/fasthttp"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/internal/spectest"
	"switchyard/plugins"
)

// twiceStage calls next twice: the first answer is read to its end inside
// Handle (an agent's step), the second goes to the client.
type twiceStage struct{}

func (twiceStage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	if err := next.Handle(x); err != nil {
		return err
	}
	if src := x.Source(); src != nil {
		for {
			if _, _, err := src.Next(); err != nil {
				if err != io.EOF {
					return err
				}
				break
			}
		}
	}
	first := x.Usage
	if err := next.Handle(x); err != nil {
		return err
	}
	x.ResponseHeaders = append(x.ResponseHeaders, gateway.Header{Key: "X-Test-First-Completion-Tokens", Value: fmt.Sprint(first.CompletionTokens)})
	return nil
}

// suffixStage appends a suffix to every content delta; two of them in a
// row (or one after test_rename) must both apply.
type suffixStage struct {
	Suffix string `yaml:"suffix"`
}

func (s *suffixStage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	x.ObserveStream(s)
	return next.Handle(x)
}

func (s *suffixStage) OnEvent(_ *gateway.Exchange, dst, data []byte) ([]byte, error) {
	out := bytes.Replace(data, []byte(`"content":"`), []byte(`"content":"`+s.Suffix), 1)
	return gateway.AppendEvent(dst, out), nil
}

func (s *suffixStage) OnEnd(_ *gateway.Exchange, dst []byte, _ error) []byte { return dst }

// windowStage holds back every event until it has two, then releases
// them together; at the end it releases what it holds.
type windowStage struct{}

type windowObserver struct{ held [][]byte }

func (windowStage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	x.ObserveStream(&windowObserver{})
	return next.Handle(x)
}

func (w *windowObserver) OnEvent(_ *gateway.Exchange, dst, data []byte) ([]byte, error) {
	w.held = append(w.held, append([]byte(nil), data...))
	if len(w.held) < 2 {
		return dst, nil
	}
	for _, e := range w.held {
		dst = gateway.AppendEvent(dst, e)
	}
	w.held = w.held[:0]
	return dst, nil
}

func (w *windowObserver) OnEnd(_ *gateway.Exchange, dst []byte, _ error) []byte {
	for _, e := range w.held {
		dst = gateway.AppendEvent(dst, e)
	}
	return dst
}

// endings counts, per request id, the end calls of the lifecycle: x.Defer
// functions and observer OnEnd calls, with the OnEnd causes.
var endings = struct {
	sync.Mutex
	defers map[string]int
	onEnd  map[string][]string
}{defers: map[string]int{}, onEnd: map[string][]string{}}

type endStage struct {
	FailAfter int `yaml:"fail_after"` // the observer errors at this event (0: never)
}

type endObserver struct {
	id        string
	n         int
	failAfter int
}

func (s *endStage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	id := string(x.RequestID)
	x.Defer(func(*gateway.Exchange) {
		endings.Lock()
		endings.defers[id]++
		endings.Unlock()
	})
	x.ObserveStream(&endObserver{id: id, failAfter: s.FailAfter})
	return next.Handle(x)
}

func (o *endObserver) OnEvent(_ *gateway.Exchange, dst, data []byte) ([]byte, error) {
	o.n++
	if o.failAfter > 0 && o.n == o.failAfter {
		return dst, &gateway.Error{Status: 400, Code: gateway.CodeInvalidRequest, Message: "the test observer refused the stream"}
	}
	return gateway.AppendEvent(dst, data), nil
}

func (o *endObserver) OnEnd(_ *gateway.Exchange, dst []byte, cause error) []byte {
	c := "clean"
	switch {
	case errors.Is(cause, gateway.ErrClientGone):
		c = "client gone"
	case cause != nil:
		c = "error"
	}
	endings.Lock()
	endings.onEnd[o.id] = append(endings.onEnd[o.id], c)
	endings.Unlock()
	return dst
}

// waitStage blocks on the exchange's context and reports when it ended.
type waitStage struct{}

var waiting, waited = make(chan struct{}, 4), make(chan error, 4)

func (waitStage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	waiting <- struct{}{}
	<-x.Context().Done()
	waited <- context.Cause(x.Context())
	return x.Context().Err()
}

// cannedStage answers without an upstream: from a stored answer (replay)
// or with text it produces (synth).
type cannedStage struct {
	Mode string `yaml:"mode"` // replay | synth
}

const storedChat = `{"id":"chatcmpl-stored","object":"chat.completion","created":1700000000,"model":"sim-chat","choices":[{"index":0,"message":{"role":"assistant","content":"a stored answer","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`

const storedCompletion = `{"id":"cmpl-stored","object":"text_completion","created":1700000000,"model":"sim-chat","choices":[{"index":0,"text":"a stored answer","logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`

func (s *cannedStage) Handle(x *gateway.Exchange, _ gateway.Handler) error {
	stored := storedChat
	if x.Op == gateway.OpCompletions {
		stored = storedCompletion
	}
	if !x.Fields.Stream {
		x.Respond(200, "application/json", []byte(stored))
		return nil
	}
	if s.Mode == "synth" {
		syn := gateway.NewSynth(x, "sim-chat")
		for _, w := range []string{"a ", "synthesized ", "answer"} {
			if err := syn.Send(w); err != nil {
				return err
			}
		}
		if err := syn.Finish("stop", gateway.Usage{PromptTokens: 7, CompletionTokens: 3}); err != nil {
			return err
		}
		x.RespondStream(syn)
		return nil
	}
	src, err := gateway.Replay(x, []byte(stored))
	if err != nil {
		return err
	}
	x.RespondStream(src)
	return nil
}

func registerSpineStages(reg *gateway.Registry) {
	reg.RegisterEndpoint(gateway.Endpoint{Method: "GET", Path: "/v1/test/whoami", Handle: func(ctx *fasthttp.RequestCtx, p *gateway.Principal) {
		if p == nil {
			ctx.SetBodyString("nobody")
			return
		}
		ctx.SetBodyString(p.KeyID)
	}})
	reg.Register(gateway.Factory{Kind: "test_twice", New: func() gateway.Stage { return twiceStage{} }})
	reg.Register(gateway.Factory{Kind: "test_suffix", New: func() gateway.Stage { return &suffixStage{} }})
	reg.Register(gateway.Factory{Kind: "test_window", New: func() gateway.Stage { return windowStage{} }})
	reg.Register(gateway.Factory{Kind: "test_end", New: func() gateway.Stage { return &endStage{} }})
	reg.Register(gateway.Factory{Kind: "test_wait", New: func() gateway.Stage { return waitStage{} }})
	reg.Register(gateway.Factory{Kind: "test_canned", New: func() gateway.Stage { return &cannedStage{} }})
	registerServiceTest(reg)
}

// countingUpstream is a sim-like upstream that counts the connections made
// to it.
type countingUpstream struct {
	url   string
	conns atomic.Int64
}

func startCounting(t *testing.T, simURL string) *countingUpstream {
	t.Helper()
	c := &countingUpstream{}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := strings.TrimPrefix(simURL, "http://")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.conns.Add(1)
			up, err := net.Dial("tcp4", target)
			if err != nil {
				conn.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, conn); up.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(conn, up); conn.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	c.url = "http://" + ln.Addr().String()
	return c
}

func metricValue(t *testing.T, m, series string) string {
	t.Helper()
	i := strings.Index(m, series+" ")
	if i < 0 {
		return "missing"
	}
	return strings.Fields(m[i+len(series):])[0]
}

// TestNextTwice: a stage calls next twice, plain and streamed: the first
// response's slot and connection are released (the connection reused), and
// usage is summed over both calls.
func TestNextTwice(t *testing.T) {
	simURL, _ := startSim(t, nil)
	up := startCounting(t, simURL)
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends: [{name: up, url: `+up.url+`, max_concurrency: 1}]
models: [{name: sim-chat, targets: [{backend: up}]}]
routes: [{name: twice, chain: [test_twice]}]
`)
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":%v}`, stream)
		code, hdr, b := post(t, g.url+"/v1/chat/completions", body)
		if code != 200 {
			t.Fatalf("stream=%v: %d %s (max_concurrency 1: a leaked slot makes the second call 503)", stream, code, b)
		}
		if got := hdr.Get("X-Test-First-Completion-Tokens"); got != "4" {
			t.Errorf("stream=%v: first call's usage %q, want 4", stream, got)
		}
	}
	_, m := get(t, g.url+"/metrics")
	if v := metricValue(t, m, `switchyard_backend_inflight{backend="up"}`); v != "0" {
		t.Errorf("backend in flight after both exchanges = %s, want 0", v)
	}
	// Two exchanges of two calls each: 16 completion tokens in all.
	if v := metricValue(t, m, `switchyard_tokens_total{model="sim-chat",backend="up",type="completion"}`); v != "16" {
		t.Errorf("completion tokens = %s, want 16 (summed over the calls)", v)
	}
	if n := up.conns.Load(); n != 1 {
		t.Errorf("%d upstream connections for 4 calls, want 1 (reused)", n)
	}
}

// TestChainedObservers: two transforming observers in a row both apply,
// and a windowed observer's held events come out in order.
func TestChainedObservers(t *testing.T) {
	g := startGateway(t, simConfig(`
routes:
  - name: chained
    chain: [{test_suffix: {suffix: "A:"}}, {test_suffix: {suffix: "B:"}}, test_window, {test_rename: {to: renamed}}]
`))
	code, _, b := post(t, g.url+"/v1/chat/completions", `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"stream":true}`)
	if code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	var contents []string
	events := 0
	sawDone := false
	for _, line := range strings.Split(string(b), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		events++
		if data == "[DONE]" {
			sawDone = true
			continue
		}
		var c struct {
			Model   string
			Choices []struct{ Delta struct{ Content *string } }
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		if c.Model != "renamed" {
			t.Errorf("event model %q, want renamed", c.Model)
		}
		if len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "" {
			contents = append(contents, *c.Choices[0].Delta.Content)
		}
	}
	if !sawDone || len(contents) != 5 {
		t.Fatalf("%d events, done %v, contents %q:\n%s", events, sawDone, contents, b)
	}
	for _, c := range contents {
		if !strings.HasPrefix(c, "B:A:") {
			t.Errorf("content %q: want both suffix observers applied, in order (B:A:...)", c)
		}
	}
}

// TestEndHooksOncePerEnding: x.Defer and OnEnd run exactly once per
// exchange, whether the stream ends cleanly, the upstream dies, the client
// leaves, an observer refuses the stream, or a stage panics.
func TestEndHooksOncePerEnding(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"itl": "5ms"})
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends: [{name: sim, url: `+simURL+`, health: {failure_threshold: 1000}}]
models: [{name: sim-chat, targets: [{backend: sim}], retry: {attempts: 1}}]
routes:
  - {name: refuse, match: {header: {x-refuse: "yes"}}, chain: [{test_end: {fail_after: 3}}]}
  - {name: panics, match: {header: {x-panic: "yes"}}, chain: [test_end, {test_panic: {in_stream: true}}]}
  - {name: main, chain: [test_end]}
`)
	body := `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":20,"stream":true}`
	cases := []struct {
		name  string
		hdr   []string
		onEnd string
	}{
		{"clean", nil, "clean"},
		{"upstream died", []string{"x-sim-fault", "drop-mid-stream"}, "error"},
		{"observer refused", []string{"x-refuse", "yes"}, "error"},
		{"panic in an observer", []string{"x-panic", "yes"}, "error"},
	}
	for i, tc := range cases {
		id := fmt.Sprintf("end-%d", i)
		code, _, b := post(t, g.url+"/v1/chat/completions", body, append(tc.hdr, "X-Request-Id", id)...)
		if code != 200 {
			t.Fatalf("%s: %d %s", tc.name, code, b)
		}
		if ended := bytes.Contains(b, []byte(`data: {"error":`)); ended != (tc.onEnd == "error") || (ended && bytes.Contains(b, []byte("[DONE]"))) {
			t.Errorf("%s: stream ends with an error event: %v, want %v:\n%s", tc.name, ended, tc.onEnd == "error", b)
		}
		checkEndings(t, tc.name, id, tc.onEnd)
	}
	// The client leaves mid-stream.
	conn, err := net.Dial("tcp4", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	long := `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":2000,"stream":true}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: end-gone\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(long), long)
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
	conn.Close()
	checkEndings(t, "client gone", "end-gone", "client gone")
}

func checkEndings(t *testing.T, name, id, want string) {
	t.Helper()
	waitFor(t, name+": the exchange's end hooks", 5*time.Second, func() bool {
		endings.Lock()
		defer endings.Unlock()
		return endings.defers[id] > 0
	})
	time.Sleep(20 * time.Millisecond) // a second, wrong, call would come right after
	endings.Lock()
	defer endings.Unlock()
	if n := endings.defers[id]; n != 1 {
		t.Errorf("%s: x.Defer ran %d times, want 1", name, n)
	}
	if got := endings.onEnd[id]; len(got) != 1 || got[0] != want {
		t.Errorf("%s: OnEnd calls %q, want one %q", name, got, want)
	}
}

// TestStageSeesClientDisconnect: a stage blocked on the exchange context
// returns soon after the client disconnects.
func TestStageSeesClientDisconnect(t *testing.T) {
	g := startGateway(t, simConfig(`routes: [{name: wait, chain: [test_wait]}]`))
	conn, err := net.Dial("tcp4", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"sim-chat","messages":[]}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	<-waiting // the request reached the stage
	closed := time.Now()
	conn.Close()
	select {
	case cause := <-waited:
		took := time.Since(closed)
		t.Logf("the stage saw the disconnect after %v", took)
		if !errors.Is(cause, gateway.ErrClientGone) {
			t.Errorf("cause %v, want ErrClientGone", cause)
		}
		// The watcher looks every 100 ms; allow for a loaded machine.
		if took > time.Second {
			t.Errorf("the stage saw the disconnect after %v, want about 100 ms", took)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the stage never saw the disconnect")
	}
}

// TestRouteTimeout: routes[].timeout bounds the exchange; a stage waiting
// on the context returns with DeadlineExceeded and the client gets a 504.
func TestRouteTimeout(t *testing.T) {
	g := startGateway(t, simConfig(`routes: [{name: wait, chain: [test_wait], timeout: 150ms}]`))
	start := time.Now()
	code, _, b := post(t, g.url+"/v1/chat/completions", `{"model":"sim-chat","messages":[]}`)
	<-waiting
	if cause := <-waited; !errors.Is(cause, context.DeadlineExceeded) {
		t.Errorf("cause %v, want DeadlineExceeded", cause)
	}
	if code != 504 && code != 500 {
		t.Errorf("status %d %s", code, b)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("answered after %v, before the route's timeout", took)
	}
}

// TestServerDo: routing, chain and dispatch without any HTTP listener,
// plain and streamed, with the route's stages applied.
func TestServerDo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchyard.yaml")
	cfg := simConfig(`
routes:
  - {name: renamed, match: {header: {x-rename: "yes"}}, chain: [{test_rename: {to: renamed}}]}
  - {name: default}
`)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := gateway.NewRegistry()
	plugins.RegisterAll(reg)
	registerTestStages(reg)
	srv, err := gateway.New(gateway.Options{ConfigPath: path, Registry: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	ctx := context.Background()

	resp, err := srv.Do(ctx, &gateway.Request{Op: gateway.OpChat, Body: []byte(`{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`)})
	if err != nil || resp.Status != 200 || resp.Usage.CompletionTokens != 3 {
		t.Fatalf("plain: %v %+v %s", err, resp, resp.Body)
	}
	spectest.Check(t, "CreateChatCompletionResponse", resp.Body)

	resp, err = srv.Do(ctx, &gateway.Request{Op: gateway.OpChat,
		Header: []gateway.Header{{Key: "X-Rename", Value: "yes"}},
		Body:   []byte(`{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true}`)})
	if err != nil || resp.Stream == nil {
		t.Fatalf("stream: %v %+v", err, resp)
	}
	var all []byte
	for {
		b, err := resp.Stream.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	s := string(all)
	if !strings.Contains(s, `"model":"renamed"`) || !strings.HasSuffix(s, "data: [DONE]\n\n") || strings.Contains(s, `"usage":{`) {
		t.Errorf("stream through Do:\n%s", s)
	}
	if resp.Usage.CompletionTokens != 3 {
		t.Errorf("stream usage %+v, want 3 completion tokens", resp.Usage)
	}
	// Errors come back as OpenAI error bodies, with the *Error.
	resp, err = srv.Do(ctx, &gateway.Request{Op: gateway.OpChat, Body: []byte(`{"model":"nope","messages":[]}`)})
	var ge *gateway.Error
	if !errors.As(err, &ge) || resp.Status != 404 || !bytes.Contains(resp.Body, []byte("model_not_found")) {
		t.Errorf("unknown model: %v %d %s", err, resp.Status, resp.Body)
	}
	// A stream closed early releases everything.
	resp, _ = srv.Do(ctx, &gateway.Request{Op: gateway.OpChat, Body: []byte(`{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":500,"stream":true}`)})
	if _, err := resp.Stream.Next(); err != nil {
		t.Fatal(err)
	}
	_ = resp.Stream.Close()
	for _, u := range srv.Current().Router.Upstreams() {
		if n := u.Inflight(); n != 0 {
			t.Errorf("backend %s: %d in flight after Close", u.Name, n)
		}
	}
}

// TestReplayAndSynthWithTheSDK: a stage answers streaming clients from a
// stored answer and with text it produces; the official Go SDK reads both,
// and every chunk passes the spec.
func TestReplayAndSynthWithTheSDK(t *testing.T) {
	g := startGateway(t, simConfig(`
routes:
  - {name: replay, match: {model: canned-replay}, chain: [{test_canned: {mode: replay}}], to: sim-chat}
  - {name: synth, match: {model: canned-synth}, chain: [{test_canned: {mode: synth}}], to: sim-chat}
`))
	client := sdk(g, "unused")
	ctx := context.Background()
	for _, tc := range []struct{ model, text string }{
		{"canned-replay", "a stored answer"},
		{"canned-synth", "a synthesized answer"},
	} {
		for _, usage := range []bool{false, true} {
			params := openai.ChatCompletionNewParams{Model: tc.model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
			if usage {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			stream := client.Chat.Completions.NewStreaming(ctx, params)
			var acc openai.ChatCompletionAccumulator
			finished := false
			for stream.Next() {
				chunk := stream.Current()
				spectest.Check(t, "CreateChatCompletionStreamResponse", []byte(chunk.RawJSON()))
				acc.AddChunk(chunk)
				if _, ok := acc.JustFinishedContent(); ok {
					finished = true
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("%s usage=%v: %v", tc.model, usage, err)
			}
			if got := acc.Choices[0].Message.Content; got != tc.text || !finished || acc.Choices[0].FinishReason != "stop" {
				t.Errorf("%s usage=%v: %q finished=%v reason %q", tc.model, usage, got, finished, acc.Choices[0].FinishReason)
			}
			if usage && (acc.Usage.PromptTokens != 7 || acc.Usage.CompletionTokens != 3) {
				t.Errorf("%s: usage %+v, want 7 + 3", tc.model, acc.Usage)
			}
			if !usage && acc.Usage.TotalTokens != 0 {
				t.Errorf("%s: usage %+v without include_usage", tc.model, acc.Usage)
			}
		}
	}
	// Legacy completions replay too; streams are not compressed and carry
	// the stream headers.
	req, err := http.NewRequest("POST", g.url+"/v1/completions", strings.NewReader(`{"model":"canned-replay","prompt":"x","stream":true,"stream_options":{"include_usage":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "gzip, zstd") // set by hand: the transport leaves the body as sent
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("replayed stream: content-type %q, encoding %q", ct, resp.Header.Get("Content-Encoding"))
	}
	body := string(raw)
	// The spec has no schema for completion chunks: the SDK reads them.
	cs := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{Model: "canned-replay",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("x")}})
	text, reason := "", ""
	for cs.Next() {
		if c := cs.Current(); len(c.Choices) > 0 {
			text += c.Choices[0].Text
			if c.Choices[0].FinishReason != "" {
				reason = string(c.Choices[0].FinishReason)
			}
		}
	}
	if err := cs.Err(); err != nil || text != "a stored answer" || reason != "stop" {
		t.Errorf("completions replay through the SDK: %v %q %q", err, text, reason)
	}
	if !strings.Contains(body, `"text":"a stored answer"`) || !strings.Contains(body, `"finish_reason":"stop"`) || !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Errorf("completions replay:\n%s", body)
	}
	_, m := get(t, g.url+"/metrics")
	if !strings.Contains(m, `switchyard_stream_duration_seconds_count{model="sim-chat"}`) {
		t.Errorf("a replayed stream is not counted as a stream:\n%s", grepLines(m, "stream_duration"))
	}
}

// TestPluginEndpoint: a plugin's public endpoint is authenticated like the
// API and gets the caller's principal.
func TestPluginEndpoint(t *testing.T) {
	g := startGateway(t, simConfig(`keys: [{id: k1, tenant: t, sha256: `+gateway.HashKey("sk-1")+`}]`))
	if code, _, _ := getWith(t, "GET", g.url+"/v1/test/whoami"); code != 401 {
		t.Errorf("no key: %d, want 401", code)
	}
	if code, _, body := getWith(t, "GET", g.url+"/v1/test/whoami", "Authorization", "Bearer sk-1"); code != 200 || body != "k1" {
		t.Errorf("with a key: %d %q", code, body)
	}
	if code, hdr, _ := getWith(t, "POST", g.url+"/v1/test/whoami", "Authorization", "Bearer sk-1"); code != 405 || hdr.Get("Allow") != "GET" {
		t.Errorf("POST: %d allow %q", code, hdr.Get("Allow"))
	}
}

// svcValue is the test service's value for one generation.
type svcValue struct {
	listen string
	closed *atomic.Int64
}

func (v *svcValue) Close() error { v.closed.Add(1); return nil }

var svcClosed atomic.Int64

// svcStage fails to provision without the test service.
type svcStage struct{}

func (svcStage) Provision(env *gateway.Env) error {
	if _, ok := env.Service("test_svc").(*svcValue); !ok {
		return errors.New("no test_svc service")
	}
	return nil
}
func (svcStage) Handle(x *gateway.Exchange, next gateway.Handler) error { return next.Handle(x) }

func registerServiceTest(reg *gateway.Registry) {
	reg.RegisterService(gateway.Service{Name: "test_svc", Open: func(env *gateway.Env, cfg *config.Config) (any, error) {
		return &svcValue{listen: cfg.Server.DrainTimeout.String(), closed: &svcClosed}, nil
	}})
	reg.Register(gateway.Factory{Kind: "test_svc_stage", New: func() gateway.Stage { return svcStage{} }})
	reg.RegisterEndpoint(gateway.Endpoint{Method: "GET", Path: "/v1/test/svc/", Handle: func(ctx *fasthttp.RequestCtx, _ *gateway.Principal) {
		v, _ := gateway.ServiceOf(ctx, "test_svc").(*svcValue)
		if v == nil {
			ctx.SetStatusCode(500)
			return
		}
		ctx.SetBodyString(v.listen + " " + string(ctx.Path()))
	}})
}

// TestServices: a service's value is the generation's, reachable from
// stages at Provision and from prefix endpoints, and closed when its
// generation retires.
func TestServices(t *testing.T) {
	simURL, _ := startSim(t, nil)
	cfg := `
listen: 127.0.0.1:0
server: {watch_interval: 0s, drain_timeout: %s}
backends: [{name: up, url: ` + simURL + `}]
models: [{name: sim-chat, targets: [{backend: up}]}]
routes: [{name: r, chain: [test_svc_stage]}]
`
	g := startGateway(t, fmt.Sprintf(cfg, "3s"))
	before := svcClosed.Load()
	if code, b := get(t, g.url+"/v1/test/svc/a/b"); code != 200 || b != "3s /v1/test/svc/a/b" {
		t.Fatalf("prefix endpoint: %d %q", code, b)
	}
	if code, _ := get(t, g.url+"/v1/test/svcx"); code != 404 {
		t.Errorf("a path only sharing the prefix's letters: %d, want 404", code)
	}
	if err := os.WriteFile(g.path, []byte(fmt.Sprintf(cfg, "4s")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, b := get(t, g.url+"/v1/test/svc/c"); code != 200 || b != "4s /v1/test/svc/c" {
		t.Fatalf("after the reload: %d %q", code, b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for svcClosed.Load() == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if svcClosed.Load() == before {
		t.Error("the retired generation's service value was not closed")
	}
}
