package gateway_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// openStream starts a long streamed completion on a raw connection and
// returns once its first event has arrived. Closing the connection cancels it.
func openStream(t *testing.T, gwURL string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp4", strings.TrimPrefix(gwURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	body := `{"model":"sim-chat","messages":[{"role":"user","content":"a long answer please"}],"max_tokens":5000,"stream":true}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		if strings.HasPrefix(line, "HTTP/1.1 ") && !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("stream answered %s", line)
		}
		if strings.HasPrefix(line, "data: ") {
			return conn
		}
	}
}

// TestReloadKeepsConcurrency: requests in flight on the old generation count
// against the new generation's max_concurrency (the reload used to start
// the count again from zero, letting twice the limit through).
func TestReloadKeepsConcurrency(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"itl": "20ms"})
	cfg := func(route string) string {
		return `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: up, url: "` + simURL + `", max_concurrency: 2}
models:
  - {name: sim-chat, targets: [{backend: up}], retry: {attempts: 1}}
routes:
  - name: ` + route + `
`
	}
	g := startGateway(t, cfg("before"))
	chat := `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":1}`
	a, b := openStream(t, g.url), openStream(t, g.url)
	if code, _, body := post(t, g.url+"/v1/chat/completions", chat); code != 503 {
		t.Fatalf("third request before the reload: %d %s; want 503", code, body)
	}
	if err := os.WriteFile(g.path, []byte(cfg("after")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	for i := range 3 {
		if code, _, body := post(t, g.url+"/v1/chat/completions", chat); code != 503 {
			t.Fatalf("request %d after the reload, with two streams of the old generation open: %d %s; want 503", i, code, body)
		}
	}
	if _, m := get(t, g.url+"/metrics"); !strings.Contains(m, `switchyard_backend_inflight{backend="up"} 2`) {
		t.Errorf("metrics do not show the 2 streams in flight after the reload")
	}
	// The old generation's streams end: their slots free the new one's.
	a.Close()
	b.Close()
	waitFor(t, "the streams' slots to be released", 3*time.Second, func() bool {
		_, m := get(t, g.url+"/metrics")
		return strings.Contains(m, `switchyard_backend_inflight{backend="up"} 0`)
	})
	if code, _, body := post(t, g.url+"/v1/chat/completions", chat); code != 200 {
		t.Fatalf("after the streams ended: %d %s; want 200", code, body)
	}
}
