package gateway_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"switchyard/gateway"
	"switchyard/plugins"
)

// fixedUpstream answers every request with one canned chat completion (or a
// short stream), as fast as it can.
func fixedUpstream(tb testing.TB) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	plain := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello there","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`)
	events := []byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hi\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if bytes.Contains(ctx.PostBody(), []byte(`"stream":true`)) {
			ctx.SetContentType("text/event-stream")
			ctx.SetBody(events)
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBody(plain)
	}}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return "http://" + ln.Addr().String()
}

// benchGateway serves a pass-through config over an in-memory listener and
// returns a client connected to it.
func benchGateway(tb testing.TB) *fasthttp.HostClient { return benchGatewayWith(tb, "") }

// benchAdmission is config for the admission benchmarks: a key, its tenant
// and the pool, each with limits that never refuse, so every request runs
// the local limiter on three buckets.
const benchAdmission = `
tenants: [{name: t, limits: {rpm: 1000000000, tpm: 100000000000}}]
keys: [{id: k, sha256: 33b5fb8c5f369b9f538e2b97699ebbd61c58b246bf8e0a6b43cc58ee6c7efefb, tenant: t, limits: {rpm: 1000000000, tpm: 100000000000, concurrency: 1000000}}]
`

// benchKey is the key whose sha256 benchAdmission lists.
const benchKey = "sk-bench-admission"

func benchGatewayWith(tb testing.TB, extra string) *fasthttp.HostClient {
	up := fixedUpstream(tb)
	path := filepath.Join(tb.TempDir(), "bench.yaml")
	cfg := `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends: [{name: up, url: "` + up + `"}]
models: [{name: m, targets: [{backend: up}], limits: {rpm: 1000000000, tpm: 100000000000}}]
` + extra
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	reg := gateway.NewRegistry()
	plugins.RegisterAll(reg)
	srv, err := gateway.New(gateway.Options{ConfigPath: path, Registry: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return &fasthttp.HostClient{Addr: "gateway", Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxConns: 1024}
}

var benchBody = []byte(`{"model":"m","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":16}`)
var benchStreamBody = []byte(`{"model":"m","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":16,"stream":true}`)

func doOne(tb testing.TB, c *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) {
	if err := c.Do(req, resp); err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode() != 200 {
		tb.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
	}
}

func benchProxy(b *testing.B, body []byte) { benchProxyWith(b, body, "", "") }

func benchProxyWith(b *testing.B, body []byte, extra, key string) {
	c := benchGatewayWith(b, extra)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.Reset()
			req.Header.SetMethod("POST")
			req.SetRequestURI("http://gateway/v1/chat/completions")
			req.Header.SetContentType("application/json")
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			req.SetBody(body)
			doOne(b, c, req, resp)
		}
	})
}

// BenchmarkProxyChatAdmission is BenchmarkProxyChat with admission on: a
// key, its tenant and the pool limited (local limiter, three buckets);
// compare the two in one run for the stage's cost.
func BenchmarkProxyChatAdmission(b *testing.B) {
	benchProxyWith(b, benchBody, benchAdmission, benchKey)
}

// BenchmarkProxyChat is a whole proxied, non-streamed chat request: client ->
// gateway (in-memory listener) -> loopback upstream -> back. The figure
// includes the test client and upstream, which run in the same process.
func BenchmarkProxyChat(b *testing.B) { benchProxy(b, benchBody) }

// BenchmarkProxyChatStream is the same with a short SSE stream relayed.
func BenchmarkProxyChatStream(b *testing.B) { benchProxy(b, benchStreamBody) }
