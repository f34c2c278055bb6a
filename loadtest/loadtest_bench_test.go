package loadtest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

var sink int

func benchStream(chunks int) []byte {
	var b bytes.Buffer
	for i := range chunks {
		role := ""
		if i == 0 {
			role = `"role":"assistant",`
		}
		b.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{` + role + `"content":"token"},"finish_reason":null}],"usage":null}` + "\n\n")
	}
	b.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":128,"completion_tokens":64,"total_tokens":192}}` + "\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

// BenchmarkSSEScan reads a 64-token stream the way readStream does: framing,
// event classification and usage scanning.
func BenchmarkSSEScan(b *testing.B) {
	stream := benchStream(64)
	var r bytes.Reader
	var s SSEReader
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(stream)
		s.Reset(&r, 0)
		for {
			data, err := s.Next()
			if err != nil {
				b.Fatal(err)
			}
			if isDone(data) {
				break
			}
			if isErrorEvent(data) {
				b.Fatal("error event")
			}
			if hasTokenContent(data) {
				sink++
			}
			if u, ok := scanUsage(data); ok {
				sink += int(u.CompletionTokens)
			}
		}
	}
}

func BenchmarkAppendBody(b *testing.B) {
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
	}{
		{"chat-128", nil},
		{"stream-prefix-512", func(c *Config) { c.Scenario = ScenarioStream; c.SharedPrefixRatio = 1; c.SharedPrefixTokens = 512 }},
		{"embeddings-repeat", func(c *Config) { c.Scenario = ScenarioEmbeddings; c.RepeatRatio = 0.5; c.ParaphraseRatio = 0.5 }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g := testGenerator(b, tc.mod)
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				k, p, para, _ := g.pick()
				buf = g.appendBody(buf[:0], k, p, para)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkScanUsage(b *testing.B) {
	body := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat("word ", 200) + `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":128,"completion_tokens":200,"total_tokens":328}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		u, _ := scanUsage(body)
		sink += int(u.PromptTokens)
	}
}

// BenchmarkClientDo is the generator's whole per-request cost against a
// loopback server that answers at once: building, sending, reading and
// recording one request.
func BenchmarkClientDo(b *testing.B) {
	for _, scenario := range []string{ScenarioChat, ScenarioStream} {
		b.Run(scenario, func(b *testing.B) {
			srv := newTestServer(b, func(s *testServer) { s.delay = 0; s.chunks = 16 })
			cfg := Config{URL: srv.URL, Model: "m", Scenario: scenario, Rate: 1, Requests: 1}.withDefaults()
			g, err := newGenerator(cfg)
			if err != nil {
				b.Fatal(err)
			}
			cl, err := newClient(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer cl.hc.CloseIdleConnections()
			st := newKindStats()
			r := &runner{cfg: cfg, gen: g, cl: cl}
			r.stats[kindChat], r.stats[kindStream] = st, st
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				k, p, para, auth := g.pick()
				r.one(ctx, k, p, para, auth, time.Time{}, true)
			}
			if st.ok != st.requests {
				b.Fatalf("errors: %v", st.errors)
			}
		})
	}
}
