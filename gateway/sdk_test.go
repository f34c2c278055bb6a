package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"switchyard/gateway"
	"switchyard/internal/spectest"
)

// The test stages exercise the stream observer mechanism: "rename" rewrites
// the model of every streamed chunk; "count" counts events.
var countedEvents atomic.Int64

type renameStage struct {
	To string `yaml:"to"`
}

func (s *renameStage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	x.ObserveStream(s)
	return next.Handle(x)
}

func (s *renameStage) OnEvent(x *gateway.Exchange, dst, data []byte) ([]byte, error) {
	i := bytes.Index(data, []byte(`"model":"`))
	if i < 0 {
		return gateway.AppendEvent(dst, data), nil
	}
	j := bytes.IndexByte(data[i+9:], '"')
	ev := append(append(append([]byte(nil), data[:i+9]...), s.To...), data[i+9+j:]...)
	return gateway.AppendEvent(dst, ev), nil
}

func (s *renameStage) OnEnd(_ *gateway.Exchange, dst []byte, _ error) []byte { return dst }

type countStage struct{}

func (countStage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	x.ObserveStream(countStage{})
	return next.Handle(x)
}

func (countStage) OnEvent(_ *gateway.Exchange, dst, data []byte) ([]byte, error) {
	if string(data) != "[DONE]" {
		countedEvents.Add(1)
	}
	return gateway.AppendEvent(dst, data), nil
}

func (countStage) OnEnd(_ *gateway.Exchange, dst []byte, _ error) []byte { return dst }

// panicStage panics in Handle, or in OnEvent when InStream is set.
type panicStage struct {
	InStream bool `yaml:"in_stream"`
}

func (s *panicStage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	if !s.InStream {
		panic("test stage panics")
	}
	x.ObserveStream(s)
	return next.Handle(x)
}

func (s *panicStage) OnEvent(*gateway.Exchange, []byte, []byte) ([]byte, error) {
	panic("test observer panics")
}

func (s *panicStage) OnEnd(_ *gateway.Exchange, dst []byte, _ error) []byte { return dst }

func registerTestStages(reg *gateway.Registry) {
	registerSpineStages(reg)
	reg.Register(gateway.Factory{Kind: "test_panic", New: func() gateway.Stage { return &panicStage{} }})
	reg.Register(gateway.Factory{Kind: "test_rename", New: func() gateway.Stage { return &renameStage{} }})
	reg.Register(gateway.Factory{Kind: "test_count", New: func() gateway.Stage { return countStage{} }})
}

func sdk(g *gw, key string) openai.Client {
	if key == "" {
		key = "unused"
	}
	return openai.NewClient(option.WithBaseURL(g.url+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func TestSDKChatPlainAndStreamed(t *testing.T) {
	g := startGateway(t, simConfig(""))
	c := sdk(g, "")
	ctx := context.Background()

	var raw []byte
	_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:     "sim-chat",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello to the gateway")},
		MaxTokens: openai.Int(12),
	}, option.WithResponseBodyInto(&raw))
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	var cc openai.ChatCompletion
	if err := json.Unmarshal(raw, &cc); err != nil {
		t.Fatalf("chat body %s: %v", raw, err)
	}
	if cc.ID == "" || cc.Object != "chat.completion" || cc.Created == 0 || cc.Model == "" {
		t.Errorf("chat response lacks id/object/created/model: %s", raw)
	}
	if len(cc.Choices) != 1 || cc.Choices[0].Message.Content == "" || cc.Choices[0].FinishReason != "length" {
		t.Errorf("chat choices = %+v, want one with content and finish_reason length", cc.Choices)
	}
	if cc.Usage.CompletionTokens != 12 || cc.Usage.PromptTokens == 0 {
		t.Errorf("usage = %+v, want 12 completion tokens", cc.Usage)
	}
	spectest.Check(t, "CreateChatCompletionResponse", raw)

	stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         "sim-chat",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Stream something")},
		MaxTokens:     openai.Int(8),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var text strings.Builder
	var chunks, usageChunks int
	var finish string
	var acc openai.ChatCompletionAccumulator
	justFinished := ""
	for stream.Next() {
		ch := stream.Current()
		chunks++
		acc.AddChunk(ch)
		if content, ok := acc.JustFinishedContent(); ok {
			justFinished = content
		}
		spectest.Check(t, "CreateChatCompletionStreamResponse", []byte(ch.RawJSON()))
		if ch.ID == "" || ch.Object != "chat.completion.chunk" || ch.Model == "" || ch.Created == 0 {
			t.Errorf("chunk lacks id/object/created/model: %s", ch.RawJSON())
		}
		if len(ch.Choices) == 0 {
			usageChunks++
			if ch.Usage.CompletionTokens != 8 {
				t.Errorf("usage chunk = %s, want 8 completion tokens", ch.RawJSON())
			}
			continue
		}
		if chunks == 1 && ch.Choices[0].Delta.Role != "assistant" {
			t.Errorf("first chunk has no assistant role: %s", ch.RawJSON())
		}
		if !strings.Contains(ch.RawJSON(), `"usage":null`) {
			t.Errorf("chunk without \"usage\": null under include_usage: %s", ch.RawJSON())
		}
		text.WriteString(ch.Choices[0].Delta.Content)
		if ch.Choices[0].FinishReason != "" {
			finish = ch.Choices[0].FinishReason
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if usageChunks != 1 || finish != "length" || text.Len() == 0 {
		t.Errorf("stream: %d usage chunks, finish %q, text %q; want 1, length, some text", usageChunks, finish, text.String())
	}
	// The finish chunk (delta {}) reaches the client, so openai-go's
	// accumulator sees the content end.
	if justFinished == "" || justFinished != text.String() {
		t.Errorf("accumulator JustFinishedContent = %q, want the streamed text %q", justFinished, text.String())
	}
}

func TestSDKCompletionsEmbeddingsModels(t *testing.T) {
	g := startGateway(t, simConfig(""))
	c := sdk(g, "")
	ctx := context.Background()

	var raw []byte
	_, err := c.Completions.New(ctx, openai.CompletionNewParams{
		Model:     "sim-chat",
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens: openai.Int(5),
	}, option.WithResponseBodyInto(&raw))
	if err != nil {
		t.Fatalf("completions: %v", err)
	}
	var cr openai.Completion
	if err := json.Unmarshal(raw, &cr); err != nil || len(cr.Choices) != 1 || cr.Choices[0].Text == "" || cr.Object != "text_completion" {
		t.Errorf("completions response %s (%v)", raw, err)
	}
	spectest.Check(t, "CreateCompletionResponse", raw)

	_, err = c.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "sim-embed",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"the cat sat", "the cat sat down"}},
	}, option.WithResponseBodyInto(&raw))
	if err != nil {
		t.Fatalf("embeddings: %v", err)
	}
	var er openai.CreateEmbeddingResponse
	if err := json.Unmarshal(raw, &er); err != nil || len(er.Data) != 2 || len(er.Data[0].Embedding) == 0 {
		t.Fatalf("embeddings response %.300s (%v)", raw, err)
	}
	spectest.Check(t, "CreateEmbeddingResponse", raw)

	// base64: the Node SDK's default. Decode by hand to check the floats.
	code, _, body := post(t, g.url+"/v1/embeddings", `{"model":"sim-embed","input":"the cat sat","encoding_format":"base64"}`)
	if code != http.StatusOK {
		t.Fatalf("base64 embeddings: %d %s", code, body)
	}
	var b64 struct {
		Data []struct {
			Embedding string `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &b64); err != nil || len(b64.Data) != 1 {
		t.Fatalf("base64 embeddings body %.300s (%v)", body, err)
	}
	dec, err := base64.StdEncoding.DecodeString(b64.Data[0].Embedding)
	if err != nil || len(dec) != 4*len(er.Data[0].Embedding) {
		t.Errorf("base64 embedding decodes to %d bytes (%v), want %d", len(dec), err, 4*len(er.Data[0].Embedding))
	}

	_, err = c.Models.List(ctx, option.WithResponseBodyInto(&raw))
	if err != nil {
		t.Fatalf("models: %v", err)
	}
	var ml struct {
		Object string `json:"object"`
		Data   []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &ml); err != nil || ml.Object != "list" || len(ml.Data) != 2 || ml.Data[0].ID != "sim-chat" || ml.Data[1].ID != "sim-embed" {
		t.Errorf("models list = %s (%v)", raw, err)
	}
	spectest.Check(t, "ListModelsResponse", raw)

	_, err = c.Models.Get(ctx, "sim-embed", option.WithResponseBodyInto(&raw))
	if err != nil {
		t.Fatalf("model retrieve: %v", err)
	}
	spectest.Check(t, "Model", raw)
	if !strings.Contains(string(raw), `"id":"sim-embed"`) {
		t.Errorf("retrieved model %s", raw)
	}
	if _, err := c.Models.Get(ctx, "no-such-model"); apiError(t, err).StatusCode != 404 {
		t.Errorf("unknown model retrieve: %v", err)
	}
}

func TestStreamObserversTransformEvents(t *testing.T) {
	g := startGateway(t, simConfig(`
routes:
  - name: renamed
    chain: [test_count, {test_rename: {to: renamed-model}}]
`))
	c := sdk(g, "")
	before := countedEvents.Load()
	stream := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: "sim-chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}, MaxTokens: openai.Int(4),
	})
	n := 0
	for stream.Next() {
		n++
		if m := stream.Current().Model; m != "renamed-model" {
			t.Errorf("chunk model = %q, want the observer's rewrite", m)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got := countedEvents.Load() - before; got != int64(n) {
		t.Errorf("count stage saw %d events, client got %d chunks", got, n)
	}
}

// apiError unwraps the SDK's error for a status and type check.
func apiError(t *testing.T, err error) *openai.Error {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an API error", err)
	}
	return e
}

func TestErrorStatuses(t *testing.T) {
	simURL, _ := startSim(t, nil)
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s, max_body_size: 2KiB}
backends:
  - {name: up, url: `+simURL+`, timeouts: {first_byte: 300ms}, health: {failure_threshold: 1000}}
  - {name: dead, url: "http://127.0.0.1:1", health: {failure_threshold: 1, cooldown: 1h}}
  - {name: offline, url: "http://127.0.0.1:1", health: {active: {interval: 1h, timeout: 200ms}}}
models:
  - {name: sim-chat, targets: [{backend: up}], retry: {attempts: 1}}
  - {name: secret-model, targets: [{backend: up, model: sim-chat}]}
  - {name: gone, targets: [{backend: dead}], retry: {attempts: 1}}
  - {name: offline, targets: [{backend: offline}]}
keys:
  - {id: app, tenant: t1, sha256: `+gateway.HashKey("sk-good")+`, models: ["sim-*", "gone", "offline"]}
`)
	// The active check takes "offline" out (the only backend of a pool is
	// never ejected passively, so "dead" stays in).
	waitFor(t, "the active check to fail", 3*time.Second, func() bool {
		code, _ := get(t, g.url+"/readyz")
		return code == 503
	})
	chat := `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`
	cases := []struct {
		name   string
		body   string
		hdr    []string
		status int
		typ    string
		retry  bool
	}{
		{"no key", chat, nil, 401, "invalid_request_error", false},
		{"bad key", chat, []string{"Authorization", "Bearer sk-bad"}, 401, "invalid_request_error", false},
		{"invalid json", `{"model":`, []string{"Authorization", "Bearer sk-good"}, 400, "invalid_request_error", false},
		{"missing model", `{"messages":[]}`, []string{"Authorization", "Bearer sk-good"}, 400, "invalid_request_error", false},
		{"unknown model", `{"model":"nope","messages":[]}`, []string{"Authorization", "Bearer sk-good"}, 404, "invalid_request_error", false},
		{"model not allowed", `{"model":"secret-model","messages":[]}`, []string{"Authorization", "Bearer sk-good"}, 404, "invalid_request_error", false},
		{"too large", `{"model":"sim-chat","messages":[{"role":"user","content":"` + strings.Repeat("x", 4096) + `"}]}`, []string{"Authorization", "Bearer sk-good"}, 413, "invalid_request_error", false},
		{"upstream 429", chat, []string{"Authorization", "Bearer sk-good", "x-sim-fault", "429"}, 429, "rate_limit_error", true},
		{"upstream 500", chat, []string{"Authorization", "Bearer sk-good", "x-sim-fault", "500"}, 502, "api_error", false},
		{"upstream stalls", chat, []string{"Authorization", "Bearer sk-good", "x-sim-fault", "stall"}, 504, "api_error", false},
		{"upstream refuses", `{"model":"gone","messages":[]}`, []string{"Authorization", "Bearer sk-good"}, 502, "api_error", false},
		{"upstream refuses again: still in rotation", `{"model":"gone","messages":[]}`, []string{"Authorization", "Bearer sk-good"}, 502, "api_error", false},
		{"no healthy backend", `{"model":"offline","messages":[]}`, []string{"Authorization", "Bearer sk-good"}, 503, "api_error", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := post(t, g.url+"/v1/chat/completions", tc.body, tc.hdr...)
			if code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", code, tc.status, body)
			}
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type != tc.typ {
				t.Errorf("error body = %s (%v), want type %s", body, err, tc.typ)
			}
			spectest.Check(t, "ErrorResponse", body)
			if tc.retry && hdr.Get("Retry-After") == "" {
				t.Errorf("status %d without retry-after", code)
			}
			if hdr.Get("X-Request-Id") == "" {
				t.Error("no x-request-id on an error")
			}
		})
	}

	// The SDK sees the same as a typed error.
	c := sdk(g, "sk-bad")
	_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "sim-chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	if e := apiError(t, err); e.StatusCode != 401 || e.Type != "invalid_request_error" || e.Code != "invalid_api_key" {
		t.Errorf("SDK error = %d %q", e.StatusCode, e.Type)
	}
}

func TestPanicsFailOneRequest(t *testing.T) {
	g := startGateway(t, simConfig(`
routes:
  - name: boom
    match: {header: {x-boom: handle}}
    chain: [test_panic]
  - name: boom-stream
    match: {header: {x-boom: stream}}
    chain: [{test_panic: {in_stream: true}}]
  - name: fine
`))
	body := `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true}`
	code, _, b := post(t, g.url+"/v1/chat/completions", body, "x-boom", "handle")
	if code != 500 || !strings.Contains(string(b), `"internal_error"`) {
		t.Errorf("panic in a stage: %d %s", code, b)
	}
	code, _, b = post(t, g.url+"/v1/chat/completions", body, "x-boom", "stream")
	if code != 200 || !strings.Contains(string(b), `data: {"error":`) || strings.Contains(string(b), "[DONE]") {
		t.Errorf("panic in a stream observer: %d %s", code, b)
	}
	// The gateway lives on.
	if code, _, b = post(t, g.url+"/v1/chat/completions", body); code != 200 || !strings.Contains(string(b), "[DONE]") {
		t.Errorf("after the panics: %d %s", code, b)
	}
}
