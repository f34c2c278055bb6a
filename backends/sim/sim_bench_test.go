package sim

import (
	"bytes"
	"fmt"
	"net"

	"github.com/valyala/fasthttp/fasthttputil"
	"testing"

	"github.com/valyala/fasthttp"
)

var benchSink int

func benchServer(b *testing.B, kv map[string]string) *Server {
	m := map[string]string{"model": "m", "profile": "fast"}
	for k, v := range kv {
		m[k] = v
	}
	o, err := OptionsFromMap(m)
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchHandler(b *testing.B, s *Server, path, body string) {
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI(path)
		ctx.Request.SetBodyString(body)
		s.Handler(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		benchSink += len(ctx.Response.Body())
	}
}

// BenchmarkChatFast is the simulator's own cost per plain chat completion of
// 32 tokens with the fast profile: the floor under the gateway's benchmarks.
func BenchmarkChatFast(b *testing.B) {
	s := benchServer(b, nil)
	benchHandler(b, s, "/v1/chat/completions", `{"model":"m","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Explain continuous batching in two sentences."}],"max_tokens":32}`)
}

func BenchmarkChatFastPrefixCaching(b *testing.B) {
	s := benchServer(b, map[string]string{"prefix-caching": "true"})
	benchHandler(b, s, "/v1/chat/completions", `{"model":"m","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Explain continuous batching in two sentences."}],"max_tokens":32}`)
}

// BenchmarkResponsesFast is BenchmarkChatFast's request through the
// Responses API, stored (the default) as a GET would find it.
func BenchmarkResponsesFast(b *testing.B) {
	s := benchServer(b, nil)
	benchHandler(b, s, "/v1/responses", `{"model":"m","instructions":"You are a helpful assistant.","input":"Explain continuous batching in two sentences.","max_output_tokens":32}`)
}

// BenchmarkChatToolCallFast is a plain chat completion answered with a
// tool call whose arguments are generated from the tool's schema.
func BenchmarkChatToolCallFast(b *testing.B) {
	s := benchServer(b, nil)
	benchHandler(b, s, "/v1/chat/completions", `{"model":"m","tools":[{"type":"function","function":{"name":"get_weather","description":"The weather in a city.","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city","unit"]}}}],"messages":[{"role":"user","content":"What is the weather in Paris?\ncall get_weather"}],"max_tokens":32}`)
}

func BenchmarkEmbeddingsFast(b *testing.B) {
	s := benchServer(b, map[string]string{"embed-dim": "384"})
	benchHandler(b, s, "/v1/embeddings", `{"model":"m","input":["the quick brown fox","jumps over the lazy dog"]}`)
}

func BenchmarkCountTokens(b *testing.B) {
	text := "Switchyard is a high-performance inference gateway: one static Go binary that sits in front of GPU model servers."
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		benchSink += CountTokens(text)
	}
}

func BenchmarkKVAllocateRelease(b *testing.B) {
	c := newKVCache(4096, true)
	hashes := []uint64{1, 2, 3, 4, 5, 6, 7, 8}
	var blocks []int32
	b.ReportAllocs()
	for b.Loop() {
		blocks = c.allocate(blocks[:0], hashes, c.lookup(hashes), 12)
		c.release(blocks)
	}
}

// BenchmarkServeStreamFast serves streamed chats of 32 tokens with usage over
// an in-memory listener, through fasthttp's client: the whole server path.
func BenchmarkServeStreamFast(b *testing.B) {
	s := benchServer(b, nil)
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	b.Cleanup(func() { s.Close(); <-done })
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"Explain continuous batching."}],"max_tokens":32,"stream":true,"stream_options":{"include_usage":true}}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.SetRequestURI("http://sim/v1/chat/completions")
			req.Header.SetMethod("POST")
			req.SetBody(body)
			if err := c.Do(req, resp); err != nil {
				b.Fatal(err)
			}
			if !bytes.HasSuffix(resp.Body(), []byte("data: [DONE]\n\n")) {
				b.Fatalf("stream did not end with [DONE]: %q", resp.Body())
			}
		}
	})
}

// BenchmarkInferFast is the simulator's own cost per KServe v2 infer call
// of 64 rows of 16 features into 4 classes with the fast profile.
func BenchmarkInferFast(b *testing.B) {
	s := benchServer(b, map[string]string{"classifier-model": "c"})
	var body bytes.Buffer
	body.WriteString(`{"id":"bench","inputs":[{"name":"input","shape":[64,16],"datatype":"FP32","data":[`)
	for i := range 64 * 16 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, "%.4f", float64(i%97)/31-1.5)
	}
	body.WriteString(`]}]}`)
	benchHandler(b, s, "/v2/models/c/infer", body.String())
}
