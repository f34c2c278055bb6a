package sim

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// startServer serves o on 127.0.0.1:0 and returns the base URL.
func startServer(t *testing.T, kv map[string]string) (*Server, string) {
	t.Helper()
	m := map[string]string{"model": "m", "embed-model": "e", "profile": "fast", "embed-dim": "64"}
	for k, v := range kv {
		m[k] = v
	}
	o, err := OptionsFromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	return s, "http://" + ln.Addr().String()
}

func sdkClient(url string) openai.Client {
	return openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
}

func TestOpenAISDK(t *testing.T) {
	_, url := startServer(t, nil)
	c := sdkClient(url)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("chat stream with usage", func(t *testing.T) {
		stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:         "m",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story about routers.")},
			MaxTokens:     openai.Int(20),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		var acc openai.ChatCompletionAccumulator
		chunks, usageChunks := 0, 0
		finishedAt, finished := 0, ""
		for stream.Next() {
			ch := stream.Current()
			if !acc.AddChunk(ch) {
				t.Fatalf("the accumulator refused chunk %d: %s", chunks+1, ch.RawJSON())
			}
			chunks++
			// The chunk after the last content (delta {} with the
			// finish_reason) is where the accumulator sees the content end.
			if content, ok := acc.JustFinishedContent(); ok {
				if finishedAt != 0 {
					t.Errorf("JustFinishedContent at chunks %d and %d", finishedAt, chunks)
				}
				finishedAt, finished = chunks, content
			}
			if ch.ID == "" || ch.Object != "chat.completion.chunk" || ch.Model != "m" || ch.Created == 0 {
				t.Fatalf("chunk lacks id/object/created/model: %s", ch.RawJSON())
			}
			if len(ch.Choices) == 0 {
				usageChunks++
				if ch.Usage.CompletionTokens != 20 {
					t.Errorf("usage chunk: %s", ch.RawJSON())
				}
			} else if ch.JSON.Usage.Raw() != "null" {
				t.Errorf(`chunk without "usage": null: %s`, ch.RawJSON())
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if usageChunks != 1 || chunks != 22 {
			t.Errorf("chunks = %d (usage chunks %d), want 20 token chunks, 1 finish chunk and 1 usage chunk", chunks, usageChunks)
		}
		if finishedAt != 21 || finished == "" || finished != acc.Choices[0].Message.Content {
			t.Errorf("JustFinishedContent = %q at chunk %d, want the whole text at chunk 21 (the finish chunk)", finished, finishedAt)
		}
		if len(acc.Choices) != 1 || acc.Choices[0].FinishReason != "length" || acc.Choices[0].Message.Role != "assistant" {
			t.Fatalf("accumulated: %+v", acc.Choices)
		}
		text := acc.Choices[0].Message.Content
		if n := CountTokens(text); n != 20 || acc.Usage.CompletionTokens != 20 {
			t.Errorf("streamed text has %d tokens, usage says %d; want 20: %q", n, acc.Usage.CompletionTokens, text)
		}
		if want := int64(CountTokens("Tell me a story about routers.") + 3); acc.Usage.PromptTokens != want {
			t.Errorf("prompt tokens = %d, want %d", acc.Usage.PromptTokens, want)
		}
	})

	t.Run("chat plain", func(t *testing.T) {
		params := openai.ChatCompletionNewParams{
			Model:     "m",
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Tell me a story about routers.")},
			MaxTokens: openai.Int(20),
		}
		r, err := c.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if r.Object != "chat.completion" || r.ID == "" || len(r.Choices) != 1 || r.Choices[0].FinishReason != "length" {
			t.Fatalf("response: %s", r.RawJSON())
		}
		if n := CountTokens(r.Choices[0].Message.Content); n != 20 || r.Usage.CompletionTokens != 20 {
			t.Errorf("text has %d tokens, usage %d; want 20", n, r.Usage.CompletionTokens)
		}
		again, err := c.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if again.Choices[0].Message.Content != r.Choices[0].Message.Content {
			t.Error("the same prompt generated different text")
		}
	})

	t.Run("completions", func(t *testing.T) {
		r, err := c.Completions.New(ctx, openai.CompletionNewParams{
			Model:     "m",
			Prompt:    openai.CompletionNewParamsPromptUnion{OfArrayOfStrings: []string{"first prompt", "second prompt"}},
			MaxTokens: openai.Int(7),
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.Object != "text_completion" || len(r.Choices) != 2 || r.Choices[1].Index != 1 || r.Usage.CompletionTokens != 14 {
			t.Fatalf("response: %s", r.RawJSON())
		}
		if r.Choices[0].Text == r.Choices[1].Text {
			t.Error("different prompts generated the same text")
		}
		stream := c.Completions.NewStreaming(ctx, openai.CompletionNewParams{
			Model:         "m",
			Prompt:        openai.CompletionNewParamsPromptUnion{OfString: openai.String("first prompt")},
			MaxTokens:     openai.Int(7),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		var text strings.Builder
		var chunks []openai.Completion
		for stream.Next() {
			ch := stream.Current()
			if ch.Object != "text_completion" {
				t.Fatalf("chunk object %q", ch.Object)
			}
			chunks = append(chunks, ch)
			if len(ch.Choices) > 0 {
				text.WriteString(ch.Choices[0].Text)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		// 7 token chunks, then the finish chunk (text "" and the
		// finish_reason, as vLLM sends it), then the usage chunk.
		if len(chunks) != 9 {
			t.Fatalf("%d chunks, want 7 token chunks, a finish chunk and a usage chunk", len(chunks))
		}
		for i, ch := range chunks[:7] {
			if len(ch.Choices) != 1 || ch.Choices[0].Text == "" || ch.Choices[0].FinishReason != "" {
				t.Errorf("token chunk %d: %s", i, ch.RawJSON())
			}
		}
		if fin := chunks[7]; len(fin.Choices) != 1 || fin.Choices[0].Text != "" || fin.Choices[0].FinishReason != "length" {
			t.Errorf("finish chunk: %s", fin.RawJSON())
		}
		if u := chunks[8]; len(u.Choices) != 0 || u.Usage.CompletionTokens != 7 {
			t.Errorf("usage chunk: %s", u.RawJSON())
		}
		if text.String() != r.Choices[0].Text {
			t.Errorf("streamed %q, plain %q", text.String(), r.Choices[0].Text)
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		in := []string{"the cat sat on the mat", "a cat sat on a mat", "stock prices fell sharply"}
		fl, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "e", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: in},
			EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
		})
		if err != nil {
			t.Fatal(err)
		}
		b64, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "e", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: in},
			EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(fl.Data) != 3 || len(b64.Data) != 3 || len(fl.Data[0].Embedding) != 64 {
			t.Fatalf("got %d and %d embeddings", len(fl.Data), len(b64.Data))
		}
		for i := range fl.Data {
			for j, x := range fl.Data[i].Embedding {
				if float32(x) != float32(b64.Data[i].Embedding[j]) {
					t.Fatalf("float and base64 differ at [%d][%d]: %v vs %v", i, j, x, b64.Data[i].Embedding[j])
				}
			}
		}
		dot := func(a, b []float64) (s float64) {
			for i := range a {
				s += a[i] * b[i]
			}
			return s
		}
		if n := dot(fl.Data[0].Embedding, fl.Data[0].Embedding); math.Abs(n-1) > 1e-5 {
			t.Errorf("|v|^2 = %v, want 1", n)
		}
		near, far := dot(fl.Data[0].Embedding, fl.Data[1].Embedding), dot(fl.Data[0].Embedding, fl.Data[2].Embedding)
		if near <= far {
			t.Errorf("similar texts: cos %v; unrelated: cos %v; want similar > unrelated", near, far)
		}
	})

	t.Run("models", func(t *testing.T) {
		page, err := c.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 2 || page.Data[0].ID != "m" || page.Data[1].ID != "e" {
			t.Fatalf("models: %+v", page.Data)
		}
	})
}

// post sends a JSON body and returns the response.
func post(t *testing.T, url, path, body string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func errorBody(t *testing.T, r *http.Response) map[string]any {
	t.Helper()
	var v struct {
		Error map[string]any `json:"error"`
	}
	if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := v.Error[k]; !ok {
			t.Errorf("error body lacks %q: %v", k, v.Error)
		}
	}
	return v.Error
}

const streamBody = `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10,"stream":true,"stream_options":{"include_usage":true}}`

func TestFaults(t *testing.T) {
	_, url := startServer(t, map[string]string{"retry-after": "2s", "stall": "20ms"})
	t.Run("500", func(t *testing.T) {
		r := post(t, url, "/v1/chat/completions", chatBody("hi", 3), "x-sim-fault", "500")
		if r.StatusCode != 500 {
			t.Fatalf("status %d", r.StatusCode)
		}
		errorBody(t, r)
	})
	t.Run("429", func(t *testing.T) {
		r := post(t, url, "/v1/chat/completions", chatBody("hi", 3), "x-sim-fault", "429")
		if r.StatusCode != 429 || r.Header.Get("Retry-After") != "2" {
			t.Fatalf("status %d, retry-after %q", r.StatusCode, r.Header.Get("Retry-After"))
		}
		errorBody(t, r)
	})
	t.Run("bad header", func(t *testing.T) {
		if r := post(t, url, "/v1/chat/completions", chatBody("hi", 3), "x-sim-fault", "boom"); r.StatusCode != 400 {
			t.Fatalf("status %d", r.StatusCode)
		}
	})
	t.Run("stall then answer", func(t *testing.T) {
		r := post(t, url, "/v1/chat/completions", chatBody("hi", 3), "x-sim-fault", "stall")
		if r.StatusCode != 200 {
			t.Fatalf("status %d", r.StatusCode)
		}
	})
	t.Run("slow", func(t *testing.T) {
		if r := post(t, url, "/v1/chat/completions", chatBody("hi", 3), "x-sim-fault", "slow"); r.StatusCode != 200 {
			t.Fatalf("status %d", r.StatusCode)
		}
	})
	t.Run("drop mid stream", func(t *testing.T) {
		r := post(t, url, "/v1/chat/completions", streamBody, "x-sim-fault", "drop-mid-stream")
		body, err := io.ReadAll(r.Body)
		if err == nil {
			t.Errorf("reading a dropped stream succeeded")
		}
		if n := strings.Count(string(body), "data: {"); n != 5 {
			t.Errorf("got %d events before the drop, want 5:\n%s", n, body)
		}
		if strings.Contains(string(body), "[DONE]") {
			t.Error("a dropped stream ended with [DONE]")
		}
	})
	t.Run("drop plain", func(t *testing.T) {
		r := post(t, url, "/v1/chat/completions", chatBody("hi", 3), "x-sim-fault", "drop-mid-stream")
		if _, err := io.ReadAll(r.Body); err == nil {
			t.Errorf("reading a dropped body succeeded")
		}
	})
	t.Run("embeddings 500", func(t *testing.T) {
		if r := post(t, url, "/v1/embeddings", `{"model":"e","input":"x"}`, "x-sim-fault", "500"); r.StatusCode != 500 {
			t.Fatalf("status %d", r.StatusCode)
		}
	})
}

func TestErrorRateFlag(t *testing.T) {
	_, url := startServer(t, map[string]string{"error-rate": "1"})
	for range 3 {
		if r := post(t, url, "/v1/chat/completions", chatBody("hi", 3)); r.StatusCode != 500 {
			t.Fatalf("status %d, want 500 with error-rate 1", r.StatusCode)
		}
	}
	_, url = startServer(t, map[string]string{"rate-limit-rate": "1"})
	if r := post(t, url, "/v1/chat/completions", chatBody("hi", 3)); r.StatusCode != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, want 429 with retry-after", r.StatusCode)
	}
}

func TestStallHonoursDisconnect(t *testing.T) {
	s, url := startServer(t, map[string]string{"stall": "1h", "disconnect-check": "5ms", "max-num-seqs": "1", "max-waiting": "0"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := chatBody("hi", 3)
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nx-sim-fault: stall\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	// Wait until the stall is in progress, then hang up.
	deadline := time.Now().Add(10 * time.Second)
	for s.stalling.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("request never stalled")
		}
		time.Sleep(time.Millisecond)
	}
	conn.Close()
	for s.stalling.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("stalled request did not notice the client leaving")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestQueueFullOverHTTP(t *testing.T) {
	s, url := startServer(t, map[string]string{"max-num-seqs": "1", "max-waiting": "0", "itl": "1h", "disconnect-check": "5ms"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := chatBody("hi", 3)
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	deadline := time.Now().Add(10 * time.Second)
	for s.eng.runningN.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("first request never ran")
		}
		time.Sleep(time.Millisecond)
	}
	r := post(t, url, "/v1/chat/completions", body)
	if r.StatusCode != 503 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d retry-after %q, want 503 with retry-after", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if e := errorBody(t, r); e["code"] != "server_overloaded" {
		t.Errorf("error %v", e)
	}
	conn.Close() // the running request ends when its client goes
	for s.eng.runningN.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("running request did not end after its client left")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWireErrors(t *testing.T) {
	_, url := startServer(t, nil)
	cases := []struct {
		name, path, body string
		status           int
		param            any
	}{
		{"unknown model", "/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404, "model"},
		{"bad json", "/v1/chat/completions", `{"model":`, 400, nil},
		{"bad type", "/v1/chat/completions", `{"model":"m","messages":"x"}`, 400, "messages"},
		{"no messages", "/v1/chat/completions", `{"model":"m","messages":[]}`, 400, "messages"},
		{"zero max_tokens", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}`, 400, "max_tokens"},
		{"no prompt", "/v1/completions", `{"model":"m"}`, 400, "prompt"},
		{"bad encoding", "/v1/embeddings", `{"model":"e","input":"x","encoding_format":"hex"}`, 400, "encoding_format"},
		{"chat model for embeddings", "/v1/embeddings", `{"model":"m","input":"x"}`, 404, "model"},
		{"no endpoint", "/v1/nothing", `{}`, 404, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := post(t, url, c.path, c.body)
			if r.StatusCode != c.status {
				t.Fatalf("status %d, want %d", r.StatusCode, c.status)
			}
			if e := errorBody(t, r); e["param"] != c.param {
				t.Errorf("param %v, want %v (%v)", e["param"], c.param, e["message"])
			}
		})
	}
}

func TestStreamWireFormat(t *testing.T) {
	_, url := startServer(t, nil)
	r := post(t, url, "/v1/chat/completions", `{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}`)
	if ct := r.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content-type %q", ct)
	}
	sc := bufio.NewScanner(r.Body)
	var events []string
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			events = append(events, line)
		}
	}
	// n=2, 3 tokens: per step one chunk per choice; after its last token
	// each choice gets a finish chunk (delta {} and finish_reason), then the
	// usage chunk and [DONE].
	if len(events) != 10 || events[9] != "data: [DONE]" {
		t.Fatalf("events:\n%s", strings.Join(events, "\n"))
	}
	type chunk struct {
		Choices []struct {
			Index        int             `json:"index"`
			Delta        map[string]any  `json:"delta"`
			FinishReason *string         `json:"finish_reason"`
			Logprobs     json.RawMessage `json:"logprobs"`
		} `json:"choices"`
		Usage json.RawMessage `json:"usage"`
	}
	// index, role, has content, finish_reason per event.
	want := []struct {
		index   int
		role    bool
		content bool
		finish  string
	}{
		{0, true, true, ""}, {1, true, true, ""},
		{0, false, true, ""}, {1, false, true, ""},
		{0, false, true, ""}, {0, false, false, "length"},
		{1, false, true, ""}, {1, false, false, "length"},
	}
	for i, ev := range events[:9] {
		var c chunk
		if err := json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &c); err != nil {
			t.Fatal(err)
		}
		if i == 8 {
			if len(c.Choices) != 0 || !strings.Contains(string(c.Usage), `"completion_tokens":6`) {
				t.Errorf("usage chunk %s", ev)
			}
			continue
		}
		if string(c.Usage) != "null" || len(c.Choices) != 1 {
			t.Errorf("chunk %s", ev)
			continue
		}
		ch, w := c.Choices[0], want[i]
		_, hasContent := ch.Delta["content"]
		finish := ""
		if ch.FinishReason != nil {
			finish = *ch.FinishReason
		}
		if ch.Index != w.index || (ch.Delta["role"] == "assistant") != w.role || hasContent != w.content || finish != w.finish {
			t.Errorf("event %d = %s, want index %d, role %v, content %v, finish_reason %q", i, ev, w.index, w.role, w.content, w.finish)
		}
		if !w.content && len(ch.Delta) != 0 {
			t.Errorf("finish chunk %d has a non-empty delta: %s", i, ev)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	_, url := startServer(t, nil)
	post(t, url, "/v1/chat/completions", chatBody("hello world", 4))
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	for _, want := range []string{
		"# TYPE vllm:num_requests_running gauge",
		"# TYPE vllm:time_to_first_token_seconds histogram",
		`vllm:time_to_first_token_seconds_bucket{model_name="m",le="0.001"} 1`,
		`vllm:inter_token_latency_seconds_count{model_name="m"} 3`,
		`vllm:e2e_request_latency_seconds_count{model_name="m"} 1`,
		`vllm:generation_tokens_total{model_name="m"} 4`,
		fmt.Sprintf(`vllm:prompt_tokens_total{model_name="m"} %d`, CountTokens("hello world")+3),
		`vllm:kv_cache_usage_perc{model_name="m"} 0`,
		`vllm:gpu_cache_usage_perc{model_name="m"} 0`,
		`vllm:cache_config_info{model_name="m",block_size="16",num_gpu_blocks="1000000",enable_prefix_caching="false"} 1`,
		`vllm:request_success_total{model_name="m",finished_reason="length"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if resp, err := http.Get(url + "/health"); err != nil || resp.StatusCode != 200 {
		t.Errorf("health: %v %v", resp, err)
	}
}

// decodeB64 decodes a base64 embedding the way the SDKs do.
func decodeB64(s string) []float32 {
	raw, _ := base64.StdEncoding.DecodeString(s)
	v := make([]float32, len(raw)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return v
}

func TestEmbeddingsBase64Raw(t *testing.T) {
	_, url := startServer(t, nil)
	r := post(t, url, "/v1/embeddings", `{"model":"e","input":[[1,2,3]],"encoding_format":"base64","dimensions":8}`)
	var v struct {
		Data []struct {
			Embedding string `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if len(v.Data) != 1 || v.Usage.PromptTokens != 3 {
		t.Fatalf("%+v", v)
	}
	vec := decodeB64(v.Data[0].Embedding)
	want := make([]float32, 8)
	embed(want, textInput{ids: []int64{1, 2, 3}, isID: true})
	if fmt.Sprint(vec) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", vec, want)
	}
}
