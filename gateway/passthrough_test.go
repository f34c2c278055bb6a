package gateway_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"
)

// echoUpstream is an OpenAI-compatible test server that records what it
// received and answers with a fixed chat completion.
type echoUpstream struct {
	url  string
	mu   sync.Mutex
	body []byte
	hdr  http.Header
	path string
}

func startEcho(t *testing.T) *echoUpstream {
	t.Helper()
	e := &echoUpstream{}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	answer := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"upstream-model","choices":[{"index":0,"message":{"role":"assistant","content":"` + strings.Repeat("ok ", 600) + `","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":600,"total_tokens":603}}`
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		e.mu.Lock()
		e.body = append([]byte(nil), ctx.PostBody()...)
		e.path = string(ctx.Path())
		e.hdr = http.Header{}
		for k, v := range ctx.Request.Header.All() {
			e.hdr.Add(string(k), string(v))
		}
		e.mu.Unlock()
		ctx.Response.Header.Set("X-Ratelimit-Remaining-Requests", "99")
		ctx.Response.Header.Set("X-Upstream-Internal", "not for clients")
		ctx.SetContentType("application/json")
		ctx.SetBodyString(answer)
	}}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	e.url = "http://" + ln.Addr().String()
	return e
}

func (e *echoUpstream) last() ([]byte, http.Header, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.body, e.hdr, e.path
}

func echoConfig(url, extra string) string {
	return `
listen: 127.0.0.1:0
server: {watch_interval: 0s, compression: {min_size: 1KiB}}
backends:
  - {name: echo, url: "` + url + `/v1", api_key: upstream-secret}
models:
  - {name: public-model, targets: [{backend: echo, model: org/real-model}]}
` + extra
}

func TestPassThroughAndRewrite(t *testing.T) {
	e := startEcho(t)
	g := startGateway(t, echoConfig(e.url, `
routes:
  - name: main
    chain:
      - headers: {upstream: {set: {x-team: blue}, remove: [x-drop-me]}, response: {set: {x-served-by: switchyard}}}
      - defaults: {max_tokens: 100}
`))
	body := `{"model":"public-model","messages":[{"role":"user","content":"hi \u00e9"}],"max_tokens":5000,"vendor_extension":{"keep":[1,2,3]},"seed":7}`
	code, hdr, b := post(t, g.url+"/v1/chat/completions", body, "Authorization", "Bearer client-key", "X-Drop-Me", "1", "X-Custom", "kept", "X-Request-Id", "req-123")
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	got, uh, path := e.last()
	if path != "/v1/chat/completions" {
		t.Errorf("upstream path = %q", path)
	}
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatalf("upstream body %s: %v", got, err)
	}
	if m["model"] != "org/real-model" || m["max_tokens"] != 100.0 || m["seed"] != 7.0 {
		t.Errorf("upstream body = %s: want model rewritten, max_tokens capped, seed kept", got)
	}
	if !bytes.Contains(got, []byte(`"vendor_extension":{"keep":[1,2,3]}`)) || !bytes.Contains(got, []byte(`"hi \u00e9"`)) {
		t.Errorf("unknown fields or escapes were not passed through untouched: %s", got)
	}
	if a := uh.Get("Authorization"); a != "Bearer upstream-secret" {
		t.Errorf("upstream Authorization = %q, want the backend's key, never the client's", a)
	}
	if uh.Get("X-Team") != "blue" || uh.Get("X-Drop-Me") != "" || uh.Get("X-Custom") != "kept" || uh.Get("X-Request-Id") != "req-123" {
		t.Errorf("upstream headers = %v", uh)
	}
	if hdr.Get("X-Ratelimit-Remaining-Requests") != "99" || hdr.Get("X-Upstream-Internal") != "" {
		t.Errorf("upstream rate-limit headers should pass, others not: %v", hdr)
	}
	if hdr.Get("X-Served-By") != "switchyard" || hdr.Get("X-Request-Id") != "req-123" || hdr.Get("X-Switchyard-Route") != "main" {
		t.Errorf("response headers = %v", hdr)
	}
}

func TestCompression(t *testing.T) {
	e := startEcho(t)
	g := startGateway(t, echoConfig(e.url, ""))
	reqBody := `{"model":"public-model","messages":[{"role":"user","content":"compressed request"}]}`
	for _, enc := range []string{"gzip", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			var buf bytes.Buffer
			switch enc {
			case "gzip":
				zw := gzip.NewWriter(&buf)
				zw.Write([]byte(reqBody))
				zw.Close()
			case "zstd":
				zw, _ := zstd.NewWriter(&buf)
				zw.Write([]byte(reqBody))
				zw.Close()
			}
			req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions", &buf)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Content-Encoding", enc)
			req.Header.Set("Accept-Encoding", enc)
			resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != enc {
				t.Fatalf("status %d, content-encoding %q: %.200s", resp.StatusCode, resp.Header.Get("Content-Encoding"), raw)
			}
			var plain []byte
			if enc == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(raw))
				if err != nil {
					t.Fatal(err)
				}
				plain, _ = io.ReadAll(zr)
			} else {
				zr, _ := zstd.NewReader(nil)
				plain, err = zr.DecodeAll(raw, nil)
				zr.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			if !json.Valid(plain) || !bytes.Contains(plain, []byte(`"chat.completion"`)) {
				t.Errorf("decompressed body: %.200s", plain)
			}
			if got, _, _ := e.last(); string(got) != strings.Replace(reqBody, "public-model", "org/real-model", 1) {
				t.Errorf("upstream got %s", got)
			}
		})
	}
	// A small body, or a client that accepts nothing, is sent as is.
	code, hdr, _ := post(t, g.url+"/v1/chat/completions", reqBody)
	if code != 200 || hdr.Get("Content-Encoding") != "" {
		t.Errorf("uncompressed client got content-encoding %q", hdr.Get("Content-Encoding"))
	}
}
