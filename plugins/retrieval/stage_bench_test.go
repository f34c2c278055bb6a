package retrieval

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"switchyard/gateway"
	"switchyard/internal/embed"
	"switchyard/internal/retrieve"
)

// benchStage is a retrieval stage over the Go documentation of the labelled
// set (188 files, 1078 chunks), in memory.
func benchStage(b *testing.B, mode string) *Stage {
	b.Helper()
	col, err := retrieve.New(context.Background(), retrieve.Options{Embedder: embed.NewBuiltin(0)})
	if err != nil {
		b.Fatal(err)
	}
	root := filepath.Join("..", "..", "internal", "retrieve", "eval", "testdata", "corpus")
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		content, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = col.Add(context.Background(), retrieve.Document{ID: p, Format: retrieve.FormatOf(p), Content: content})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	s := &Stage{Collection: "godocs", Mode: mode}
	if err := s.Validate(); err != nil {
		b.Fatal(err)
	}
	set := metrics.NewSet()
	s.coll = &Coll{Name: "godocs", C: col}
	s.log = slog.New(slog.DiscardHandler)
	s.audit = newAuditLog()
	s.latency = set.NewPrometheusHistogramExt("l", latencyBuckets)
	s.topScore = set.NewPrometheusHistogramExt("s", scoreBuckets)
	s.hits, s.empty, s.failed, s.rewrF = set.NewCounter("h"), set.NewCounter("e"), set.NewCounter("f"), set.NewCounter("r")
	return s
}

// BenchmarkStage is the stage's own cost per chat request: search (the
// query embedded by the builtin embedder), the system message, the body
// rewrite and the citations of a buffered answer; the model's time is not
// in it (next answers at once). Compare with BenchmarkStageOff, the same
// exchange without the stage.
func BenchmarkStage(b *testing.B) {
	for _, mode := range []string{"hybrid", "keyword"} {
		b.Run(mode, func(b *testing.B) {
			s := benchStage(b, mode)
			body := []byte(`{"model":"m","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"How do I close a channel and what happens to receivers?"}]}`)
			answer := []byte(`{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Closing a channel [1] wakes the receivers [2]."},"finish_reason":"stop"}]}`)
			next := gateway.HandlerFunc(func(x *gateway.Exchange) error {
				x.Respond(200, "application/json", answer)
				return nil
			})
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				x, err := gateway.NewExchange(gateway.OpChat, body)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Handle(x, next); err != nil {
					b.Fatal(err)
				}
				if !strings.Contains(string(x.RespBody), "url_citation") {
					b.Fatal("no citations")
				}
			}
		})
	}
}

// BenchmarkStageOff is BenchmarkStage's exchange without the stage.
func BenchmarkStageOff(b *testing.B) {
	body := []byte(`{"model":"m","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"How do I close a channel and what happens to receivers?"}]}`)
	answer := []byte(`{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Closing a channel [1] wakes the receivers [2]."},"finish_reason":"stop"}]}`)
	b.ReportAllocs()
	for b.Loop() {
		x, err := gateway.NewExchange(gateway.OpChat, body)
		if err != nil {
			b.Fatal(err)
		}
		x.Respond(200, "application/json", answer)
	}
}
