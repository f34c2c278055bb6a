package guard

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"switchyard/gateway"
	"switchyard/policy"
)

var secretRE = regexp.MustCompile(`sk-[A-Za-z0-9]{12,}`)

func testStage(t testing.TB) *Stage {
	e, err := policy.Load(context.Background(), policy.Options{Dir: "testdata/rego"})
	if err != nil {
		t.Fatal(err)
	}
	return &Stage{eng: e, log: slog.New(slog.NewTextHandler(io.Discard, nil)), met: &gateway.StageMetrics{}}
}

func chunkEvent(s string) []byte {
	b, _ := json.Marshal(map[string]any{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
		"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": s}, "finish_reason": nil}}})
	return b
}

// released reads the content the client got from the framed events.
func released(t testing.TB, out []byte) (string, bool) {
	var b strings.Builder
	filtered := false
	for _, ev := range strings.Split(string(out), "\n\n") {
		d, ok := strings.CutPrefix(ev, "data: ")
		if !ok || d == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta        struct{ Content string } `json:"delta"`
				FinishReason *string                  `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			t.Fatalf("event %q: %v", d, err)
		}
		for _, ch := range c.Choices {
			b.WriteString(ch.Delta.Content)
			if ch.FinishReason != nil && *ch.FinishReason == "content_filter" {
				filtered = true
			}
		}
	}
	return b.String(), filtered
}

// FuzzWindow splits a text into chunks at fuzzed points: the client gets a
// prefix of the text, in order; a secret never reaches it whole, wherever
// the splits fall (the test policy's secrets are 15+ bytes, under the
// hold-back).
func FuzzWindow(f *testing.F) {
	f.Add("here it is: sk-abcdefghijklmnop and more", []byte{3, 9, 1, 7})
	f.Add("a clean answer about cats and dogs, long enough to pass the window of sixty-four bytes at least", []byte{10, 20, 5})
	s := testStage(f)
	f.Fuzz(func(t *testing.T, text string, cuts []byte) {
		if len(text) > 2000 || !utf8.ValidString(text) {
			return
		}
		every := 1 // from the first cut: 1 (check whenever text could go) to 40 bytes
		if len(cuts) > 0 {
			every = int(cuts[0])%40 + 1
		}
		w := &window{s: s, ctx: context.Background(), size: DefaultWindow, every: every, in: policy.Input{Phase: "response"}}
		var out []byte
		rest := text
		var err error
		for i := 0; len(rest) > 0 && err == nil; i++ {
			n := len(rest)
			if i < len(cuts) {
				n = min(int(cuts[i])%16+1, len(rest))
			}
			for n < len(rest) && !utf8.RuneStart(rest[n]) {
				n++ // chunks hold whole characters, as JSON strings do
			}
			out, err = w.OnEvent(nil, out, chunkEvent(rest[:n]))
			rest = rest[n:]
		}
		var end *gateway.EndStream
		if err == nil {
			out, err = w.OnEvent(nil, out, []byte("[DONE]"))
		}
		if err != nil && !errorsAs(err, &end) {
			t.Fatal(err)
		}
		if end != nil {
			out = append(out, end.Events...)
		}
		got, filtered := released(t, out)
		if !strings.HasPrefix(text, got) {
			t.Fatalf("released %q, not a prefix of %q", got, text)
		}
		if secretRE.MatchString(got) {
			t.Fatalf("a secret reached the client: %q", got)
		}
		if secretRE.MatchString(text) != filtered {
			t.Fatalf("text %q: filtered %v", text, filtered)
		}
		if !filtered && got != text {
			t.Fatalf("clean text cut: %q of %q", got, text)
		}
		// One evaluation per every bytes released, give or take the
		// chunks' sizes (up to 16 bytes, or a character more), and the
		// final one.
		if limit := len(text)/every + 2; !filtered && w.checks > limit {
			t.Fatalf("%d evaluations for %d bytes with check_every %d, want at most %d", w.checks, len(text), every, limit)
		}
	})
}

func errorsAs(err error, end **gateway.EndStream) bool {
	e, ok := err.(*gateway.EndStream)
	if ok {
		*end = e
	}
	return ok
}

// FuzzRedact: redacting never leaves a redacted span in place and keeps
// the body JSON.
func FuzzRedact(f *testing.F) {
	f.Add("mail bob@example.com now", "bob@example.com")
	f.Add("x", "x")
	f.Fuzz(func(t *testing.T, content, span string) {
		if span == "" || len(content) > 4096 || strings.Contains(span, "\x00") || !utf8.ValidString(span) || !utf8.ValidString(content) {
			return
		}
		var b body
		raw, _ := json.Marshal(map[string]any{"messages": []any{map[string]any{"role": "user", "content": content}}})
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		var out string
		x := fakeSet(func(field string, v []byte) {
			var msgs []struct{ Content string }
			if err := json.Unmarshal(v, &msgs); err != nil {
				t.Fatalf("redacted %s is not JSON: %v", field, err)
			}
			out = msgs[0].Content
		})
		if err := redactWith(x, &b, []policy.Redaction{{Text: span, Replacement: "\x00"}}); err != nil {
			t.Fatal(err)
		}
		if out != "" && strings.Contains(out, span) {
			t.Fatalf("span %q left in %q", span, out)
		}
	})
}

type fakeSet func(field string, v []byte)

func (f fakeSet) SetField(field string, v []byte) error { f(field, v); return nil }
