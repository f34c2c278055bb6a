package loadtest

import (
	"bufio"
	"bytes"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// testServer is a small OpenAI-shaped server with fixed, known delays.
type testServer struct {
	URL string

	delay      time.Duration // before a non-streamed answer, and before the first chunk
	itl        time.Duration // between stream chunks
	chunks     int           // token chunks per stream
	stallAfter int64         // after this many requests (0: never), stall for stallFor
	stallFor   time.Duration
	truncate   bool // streams end without [DONE]
	errEvent   bool // streams end with an error event
	noUsage    bool

	received  atomic.Int64
	stallEnds atomic.Int64 // unix nanos; requests arriving before it wait
	mu        sync.Mutex
	keys      map[string]int
	paths     map[string]int
	bodies    [][]byte
	keepBody  bool
}

func newTestServer(t testing.TB, configure func(s *testServer)) *testServer {
	t.Helper()
	s := &testServer{delay: 20 * time.Millisecond, chunks: 4, keys: map[string]int{}, paths: map[string]int{}}
	if configure != nil {
		configure(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	srv := &fasthttp.Server{Handler: s.handle, CloseOnShutdown: true}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	s.URL = "http://" + ln.Addr().String()
	return s
}

func (s *testServer) handle(ctx *fasthttp.RequestCtx) {
	n := s.received.Add(1)
	if s.stallAfter > 0 && n == s.stallAfter {
		s.stallEnds.Store(time.Now().Add(s.stallFor).UnixNano())
	}
	if until := time.Unix(0, s.stallEnds.Load()); time.Now().Before(until) {
		time.Sleep(time.Until(until)) // the simulated stall
	}
	auth := string(ctx.Request.Header.Peek("Authorization"))
	path := string(ctx.Path())
	s.mu.Lock()
	s.keys[auth]++
	s.paths[path]++
	if s.keepBody {
		s.bodies = append(s.bodies, append([]byte(nil), ctx.PostBody()...))
	}
	s.mu.Unlock()

	if auth == "Bearer limited" {
		ctx.Response.Header.Set("Retry-After", "1")
		ctx.Error(`{"error":{"message":"rate limited","type":"rate_limit_exceeded"}}`, fasthttp.StatusTooManyRequests)
		return
	}
	ctx.Response.Header.Set("X-Switchyard-Cache", "miss")
	ctx.SetContentType("application/json")
	usage := `,"usage":{"prompt_tokens":10,"completion_tokens":` + strconv.Itoa(s.chunks) + `,"total_tokens":` + strconv.Itoa(10+s.chunks) + `,"prompt_tokens_details":{"cached_tokens":4}}`
	if s.noUsage {
		usage = ""
	}
	switch path {
	case "/v1/embeddings":
		time.Sleep(s.delay)
		ctx.SetBodyString(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"e","usage":{"prompt_tokens":10,"total_tokens":10}}`)
	case "/v1/completions":
		time.Sleep(s.delay)
		ctx.SetBodyString(`{"id":"c","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"hi","finish_reason":"length"}]` + usage + `}`)
	case "/v1/chat/completions":
		if !bytes.Contains(ctx.PostBody(), []byte(`"stream":true`)) {
			time.Sleep(s.delay)
			ctx.SetBodyString(`{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi \"usage\": 99"},"finish_reason":"stop"}]` + usage + `}`)
			return
		}
		ctx.SetContentType("text/event-stream")
		delay, itl, chunks, truncate, errEvent := s.delay, s.itl, s.chunks, s.truncate, s.errEvent
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			time.Sleep(delay)
			for i := range chunks {
				if i > 0 {
					time.Sleep(itl)
				}
				role := ""
				if i == 0 {
					role = `"role":"assistant",`
				}
				w.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{` + role + `"content":"tok"},"finish_reason":null}],"usage":null}` + "\n\n")
				if w.Flush() != nil {
					return
				}
			}
			// The finish chunk, as OpenAI, vLLM and the simulator send it:
			// no text, so not a token.
			w.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":null}` + "\n\n")
			if w.Flush() != nil {
				return
			}
			if errEvent {
				w.WriteString(`data: {"error":{"message":"upstream failed","type":"server_error"}}` + "\n\n")
				w.Flush()
				return
			}
			if truncate {
				return
			}
			if usage != "" {
				w.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[]` + usage + "}\n\n")
			}
			w.WriteString("data: [DONE]\n\n")
			w.Flush()
		})
	default:
		ctx.Error(`{"error":{"message":"not found"}}`, fasthttp.StatusNotFound)
	}
}

func (s *testServer) keyCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.keys))
	for k, v := range s.keys {
		out[k] = v
	}
	return out
}
