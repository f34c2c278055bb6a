package gateway_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestStreamIsNotBuffered: the upstream sends its second event only after
// the client has received the first one, so a gateway that buffered events
// (or the whole stream) would stall this test.
func TestStreamIsNotBuffered(t *testing.T) {
	gotFirst := make(chan struct{})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	chunk := func(content, finish string) string {
		return `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"` + content + `"},"finish_reason":` + finish + `}]}` + "\n\n"
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			w.WriteString(chunk("one", "null"))
			w.Flush()
			select {
			case <-gotFirst:
			case <-time.After(5 * time.Second):
				return // the test fails on the client side
			}
			w.WriteString(chunk("two", `"stop"`))
			w.WriteString("data: [DONE]\n\n")
			w.Flush()
		})
	}}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })

	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends: [{name: up, url: "http://`+ln.Addr().String()+`"}]
models: [{name: m, targets: [{backend: up}]}]
`)
	resp, err := http.Post(g.url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content-type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var events []string
	deadline := time.AfterFunc(3*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		events = append(events, line)
		if len(events) == 1 {
			close(gotFirst)
		}
	}
	if len(events) != 3 || events[2] != "data: [DONE]" || !strings.Contains(events[1], `"two"`) {
		t.Fatalf("events = %q; the first event was not relayed before the second was sent", events)
	}
}
