package loadtest

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readAllEvents(r io.Reader, maxLine int) ([]string, error) {
	var s SSEReader
	s.Reset(r, maxLine)
	var out []string
	for {
		data, err := s.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(data))
	}
}

func TestSSEReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"one", "data: a\n\n", []string{"a"}},
		{"no space", "data:a\n\n", []string{"a"}},
		{"two spaces keep one", "data:  a\n\n", []string{" a"}},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []string{"a", "b"}},
		{"multi-line data", "data: a\ndata: b\n\n", []string{"a\nb"}},
		{"comments and fields skipped", ": ping\nevent: x\nid: 1\nretry: 5\ndata: a\n\n", []string{"a"}},
		{"event without data skipped", "event: x\n\ndata: a\n\n", []string{"a"}},
		{"empty data is an event", "data:\n\n", []string{""}},
		{"field without colon", "data\n\n", []string{""}},
		{"pending at EOF dispatched", "data: a\n\ndata: [DONE]", []string{"a", "[DONE]"}},
		{"pending at EOF with newline", "data: [DONE]\n", []string{"[DONE]"}},
		{"blank lines", "\n\n\ndata: a\n\n\n\n", []string{"a"}},
		{"openai", "data: {\"choices\":[]}\n\ndata: [DONE]\n\n", []string{`{"choices":[]}`, "[DONE]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", strings.NewReader(tc.in)},
				{"byte by byte", iotest.OneByteReader(strings.NewReader(tc.in))},
				{"data with EOF", iotest.DataErrReader(strings.NewReader(tc.in))},
			} {
				got, err := readAllEvents(r.r, 0)
				if err != nil {
					t.Fatalf("%s: %q: %v", r.name, tc.in, err)
				}
				if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
					t.Errorf("%s: %q: got %q, want %q", r.name, tc.in, got, tc.want)
				}
			}
		})
	}
}

func TestSSEReaderLongLines(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 10_000) // grows past the initial buffer
	got, err := readAllEvents(strings.NewReader("data: "+long+"\n\n"), 0)
	if err != nil || len(got) != 1 || got[0] != long {
		t.Fatalf("long line: got %d events, err %v", len(got), err)
	}
	_, err = readAllEvents(strings.NewReader("data: "+long+"\n\n"), 1000)
	if !errors.Is(err, ErrSSELineTooLong) {
		t.Fatalf("over limit: err = %v, want ErrSSELineTooLong", err)
	}
}

func TestSSEReaderReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(boom))
	got, err := readAllEvents(r, 0)
	if !errors.Is(err, boom) || len(got) != 1 || got[0] != "a" {
		t.Fatalf("got %q, err %v; want [a] and boom", got, err)
	}
}

func TestEventClassifiers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in                  string
		done, errEv, choice bool // choice: hasTokenContent
	}{
		{"[DONE]", true, false, false},
		{" [DONE] ", true, false, false},
		{`{"error":{"message":"x"}}`, false, true, false},
		{` { "error" : {}}`, false, true, false},
		{`{"id":"x","choices":[{"delta":{"content":"a"}}]}`, false, false, true},
		{`{"id":"x","choices":[{"delta":{}}]}`, false, false, false},
		{`{"id":"x","choices": [ ],"usage":{}}`, false, false, false},
		{`{"id":"x","choices":[]}`, false, false, false},
		{`{"content":"\"choices\":[1]"}`, false, false, false},
		{`{"x":"error"}`, false, false, false},
		{``, false, false, false},
	}
	for _, tc := range tests {
		b := []byte(tc.in)
		if got := isDone(b); got != tc.done {
			t.Errorf("isDone(%q) = %v", tc.in, got)
		}
		if got := isErrorEvent(b); got != tc.errEv {
			t.Errorf("isErrorEvent(%q) = %v", tc.in, got)
		}
		if got := hasTokenContent(b); got != tc.choice {
			t.Errorf("hasTokenContent(%q) = %v", tc.in, got)
		}
	}
}

// TestHasTokenContent pins which chunks count as tokens for TTFT and ITL:
// only those with text. The finish chunk (chat "delta": {}, completions
// "text": "") and the usage chunk would add a near-zero gap per stream.
func TestHasTokenContent(t *testing.T) {
	t.Parallel()
	const (
		pre  = `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[`
		post = `],"usage":null}`
	)
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"chat token", pre + `{"index":0,"delta":{"content":"tok"},"logprobs":null,"finish_reason":null}` + post, true},
		{"chat first token with role", pre + `{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}` + post, true},
		{"chat one-char token", pre + `{"index":0,"delta":{"content":" "}}` + post, true},
		{"chat escaped token", pre + `{"index":0,"delta":{"content":"\"\n"}}` + post, true},
		{"chat finish chunk", pre + `{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}` + post, false},
		{"chat finish chunk, spaced", ` { "choices" : [ { "index" : 0 , "delta" : { } , "finish_reason" : "length" } ] }`, false},
		{"chat role only, empty content", pre + `{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}` + post, false},
		{"chat null content", pre + `{"index":0,"delta":{"content":null},"finish_reason":"stop"}` + post, false},
		{"chat logprobs content is not delta content", pre + `{"index":0,"delta":{},"logprobs":{"content":[{"token":"a"}]},"finish_reason":"stop"}` + post, false},
		{"chat content key inside a string", pre + `{"index":0,"delta":{"refusal":"\"content\":\"x\""},"finish_reason":null}` + post, false},
		{"chat text outside delta is not chat content", pre + `{"index":0,"delta":{},"x":{"text":"a"}}` + post, false},
		{"completions token", `{"id":"c","object":"text_completion","choices":[{"index":0,"text":"tok","logprobs":null,"finish_reason":null}]}`, true},
		{"completions finish chunk", `{"id":"c","object":"text_completion","choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"length"}]}`, false},
		{"second choice has text", pre + `{"index":0,"delta":{}},{"index":1,"delta":{"content":"b"}}` + post, true},
		{"usage chunk", `{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}`, false},
		{"no choices", `{"id":"c","usage":{"prompt_tokens":1}}`, false},
		{"choices not an array", `{"choices":{"delta":{"content":"a"}}}`, false},
		{"choices key inside a string", `{"note":"\"choices\":[{\"text\":\"a\"}]"}`, false},
		{"nested choices are not the chunk's", `{"x":{"choices":[{"text":"a"}]}}`, false},
		{"error event", `{"error":{"message":"x"}}`, false},
		{"not an object", `[DONE]`, false},
		{"empty", ``, false},
		{"truncated", pre + `{"index":0,"delta":{"content":"a`, true},
		{"truncated before content", pre + `{"index":0,"delta":{"cont`, false},
	}
	for _, tc := range tests {
		if got := hasTokenContent([]byte(tc.in)); got != tc.want {
			t.Errorf("%s: hasTokenContent(%s) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestScanUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Usage
		ok   bool
	}{
		{`{"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}`, Usage{12, 34, 0}, true},
		{`{"usage" : { "prompt_tokens" : 7 , "total_tokens":7}}`, Usage{7, 0, 0}, true},
		{`{"choices":[],"usage":null}`, Usage{}, false},
		{`{"usage":{"prompt_tokens":1,"completion_tokens":2},"x":{"usage":null}}`, Usage{1, 2, 0}, true},
		{`{"content":"\"usage\":{\"prompt_tokens\":5}","usage":{"prompt_tokens":3,"completion_tokens":4}}`, Usage{3, 4, 0}, true},
		{`{"usage":{"prompt_tokens_details":{"cached_tokens":9},"prompt_tokens":5,"completion_tokens":6}}`, Usage{5, 6, 9}, true},
		{`{"usage":{"prompt_tokens":20,"completion_tokens":6,"total_tokens":26,"prompt_tokens_details":{"cached_tokens":16}}}`, Usage{20, 6, 16}, true},
		{`{"usage":{"prompt_tokens":20,"completion_tokens":6,"prompt_tokens_details":null}}`, Usage{20, 6, 0}, true},
		{`{"usage":{"completion_tokens":6}, "later": {"prompt_tokens": 99}}`, Usage{0, 6, 0}, true},
		{`{"usage":{}}`, Usage{}, false},
		{`{"usage":`, Usage{}, false},
		{``, Usage{}, false},
	}
	for _, tc := range tests {
		got, ok := scanUsage([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("scanUsage(%s) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzSSEReader(f *testing.F) {
	for _, s := range []string{
		"data: a\n\n", "data: a\r\ndata: b\r\n\r\n", ": c\nevent: e\ndata\n\n", "data: [DONE]",
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n",
		"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"},{\"delta\":{\"content\":\"a\"}},{\"text\":\"\"}]}\n\n",
	} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		// Whole and byte-by-byte reads must agree.
		var r io.Reader = bytes.NewReader(in)
		if chunk%2 == 1 {
			r = iotest.OneByteReader(r)
		}
		a, errA := readAllEvents(r, 64)
		b, errB := readAllEvents(bytes.NewReader(in), 64)
		if (errA == nil) != (errB == nil) || strings.Join(a, "\x00") != strings.Join(b, "\x00") {
			t.Fatalf("%q: readers disagree: %q/%v vs %q/%v", in, a, errA, b, errB)
		}
		for _, ev := range a {
			if strings.Contains(ev, "\r") && !bytes.Contains(in, []byte("\r")) {
				t.Fatalf("%q: event %q has CR not in input", in, ev)
			}
			isDone([]byte(ev))
			isErrorEvent([]byte(ev))
			hasTokenContent([]byte(ev))
		}
	})
}

func FuzzScanUsage(f *testing.F) {
	for _, s := range []string{
		`{"usage":{"prompt_tokens":12,"completion_tokens":34}}`, `{"usage":null}`, `"usage":{`, `{"usage":{"prompt_tokens":9999999999999999999999}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		u, ok := scanUsage(in)
		if u.PromptTokens < 0 || u.CompletionTokens < 0 {
			t.Fatalf("%q: negative usage %+v", in, u)
		}
		if ok && !bytes.Contains(in, []byte(`"usage"`)) {
			t.Fatalf("%q: usage found without a usage key", in)
		}
	})
}
