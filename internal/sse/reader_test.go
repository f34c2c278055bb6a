package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type event struct {
	data    string
	hasData bool
	raw     string
}

func readAll(r *Reader) ([]event, error) { return readAllPeeking(r, 0) }

// readAllPeeking is readAll calling Buffered peek times before each Next,
// which must not change what Next returns.
func readAllPeeking(r *Reader, peek int) ([]event, error) {
	var out []event
	for {
		for range peek {
			r.Buffered()
		}
		data, raw, err := r.Next()
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				out = append(out, event{string(data), data != nil, string(raw)})
			}
			return out, err
		}
		out = append(out, event{string(data), data != nil, string(raw)})
	}
}

func TestReader(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   []event
		err    error
		maxLen int
	}{
		{"empty", "", nil, io.EOF, 0},
		{"openai stream", "data: {\"a\":1}\n\ndata: [DONE]\n\n",
			[]event{{`{"a":1}`, true, "data: {\"a\":1}\n\n"}, {"[DONE]", true, "data: [DONE]\n\n"}}, io.EOF, 0},
		{"crlf", "data: x\r\n\r\n", []event{{"x", true, "data: x\r\n\r\n"}}, io.EOF, 0},
		{"cr", "data: x\r\rdata: y\r\r", []event{{"x", true, "data: x\r\r"}, {"y", true, "data: y\r\r"}}, io.EOF, 0},
		{"mixed endings", "data: a\r\ndata: b\rdata: c\n\r\n", []event{{"a\nb\nc", true, "data: a\r\ndata: b\rdata: c\n\r\n"}}, io.EOF, 0},
		{"multi-line data", "data: a\ndata: b\ndata\ndata:c\n\n", []event{{"a\nb\n\nc", true, "data: a\ndata: b\ndata\ndata:c\n\n"}}, io.EOF, 0},
		{"only one space stripped", "data:  two\n\n", []event{{" two", true, "data:  two\n\n"}}, io.EOF, 0},
		{"fields and comments kept in raw", ": ping\nevent: message\nid: 7\nretry: 10\ndata: x\n\n",
			[]event{{"x", true, ": ping\nevent: message\nid: 7\nretry: 10\ndata: x\n\n"}}, io.EOF, 0},
		{"comment only event", ": keep-alive\n\ndata: x\n\n",
			[]event{{"", false, ": keep-alive\n\n"}, {"x", true, "data: x\n\n"}}, io.EOF, 0},
		{"empty data", "data:\n\n", []event{{"", true, "data:\n\n"}}, io.EOF, 0},
		{"blank lines skipped", "\n\r\n\rdata: x\n\n\n\ndata: y\n\n\n",
			[]event{{"x", true, "data: x\n\n"}, {"y", true, "data: y\n\n"}}, io.EOF, 0},
		{"not a data field", "database: x\ndata: y\n\n", []event{{"y", true, "database: x\ndata: y\n\n"}}, io.EOF, 0},
		{"unexpected eof", "data: a\n\ndata: [DONE]", []event{{"a", true, "data: a\n\n"}, {"[DONE]", true, "data: [DONE]"}}, io.ErrUnexpectedEOF, 0},
		{"unexpected eof after line", "data: a\n", []event{{"a", true, "data: a\n"}}, io.ErrUnexpectedEOF, 0},
		{"trailing cr at eof", "data: a\r", []event{{"a", true, "data: a\r"}}, io.ErrUnexpectedEOF, 0},
		{"exact max size", "data: 1234\n\n", []event{{"1234", true, "data: 1234\n\n"}}, io.EOF, 12},
		{"too large", "data: 12345\n\n", nil, ErrEventTooLarge, 12},
		{"too large later", "data: 1\n\ndata: 123456789\n\n", []event{{"1", true, "data: 1\n\n"}}, ErrEventTooLarge, 12},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":   func(r io.Reader) io.Reader { return r },
		"onebyte": iotest.OneByteReader,
		"dataerr": iotest.DataErrReader,
		"halves":  func(r io.Reader) io.Reader { return &chunkReader{r: r, sizes: []int{3, 1, 5}} },
	}
	for _, tc := range tests {
		for rname, wrap := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				r := NewReader(wrap(strings.NewReader(tc.in)), tc.maxLen)
				got, err := readAll(r)
				if !errors.Is(err, tc.err) {
					t.Fatalf("Next(%q) error = %v; want %v", tc.in, err, tc.err)
				}
				if !equalEvents(got, tc.want) {
					t.Fatalf("Next(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
				}
				if _, _, err2 := r.Next(); !errors.Is(err2, tc.err) {
					t.Fatalf("Next after the end = %v; want %v again", err2, tc.err)
				}
			})
		}
	}
}

func equalEvents(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// chunkReader returns reads of the given sizes in turn (repeating).
type chunkReader struct {
	r     io.Reader
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	n := c.sizes[c.i%len(c.sizes)]
	c.i++
	if n == 0 {
		return 0, nil
	}
	return c.r.Read(p[:min(n, len(p))])
}

func TestReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(boom)), 0)
	if data, _, err := r.Next(); err != nil || string(data) != "a" {
		t.Fatalf("first event = %q, %v", data, err)
	}
	if _, _, err := r.Next(); !errors.Is(err, boom) {
		t.Fatalf("second Next error = %v; want %v", err, boom)
	}
}

func TestReaderNoProgress(t *testing.T) {
	r := NewReader(&chunkReader{r: strings.NewReader("x"), sizes: []int{0}}, 0)
	if _, _, err := r.Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("error = %v; want io.ErrNoProgress", err)
	}
}

func TestReaderReset(t *testing.T) {
	r := NewReader(strings.NewReader("data: a\n\ndata: partial"), 0)
	if _, _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	r.Reset(strings.NewReader("data: b\n\n"))
	got, err := readAll(r)
	if err != io.EOF || len(got) != 1 || got[0].data != "b" {
		t.Fatalf("after Reset got %+v, %v", got, err)
	}
}

func TestReaderLargeEventGrowsBuffer(t *testing.T) {
	big := strings.Repeat("x", 100_000)
	in := "data: " + big + "\n\ndata: " + big + "\ndata: y\n\n"
	r := NewReader(iotest.HalfReader(strings.NewReader(in)), 200_000)
	got, err := readAll(r)
	if err != io.EOF || len(got) != 2 || got[0].data != big || got[1].data != big+"\ny" {
		t.Fatalf("got %d events, err %v", len(got), err)
	}
}

func TestAppendEvent(t *testing.T) {
	tests := []struct{ data, want string }{
		{`{"a":1}`, "data: {\"a\":1}\n\n"},
		{"", "data: \n\n"},
		{"a\nb\r\nc\rd", "data: a\ndata: b\ndata: c\ndata: d\n\n"},
	}
	for _, tc := range tests {
		got := AppendEvent(nil, []byte(tc.data))
		if string(got) != tc.want {
			t.Errorf("AppendEvent(%q) = %q; want %q", tc.data, got, tc.want)
		}
		data, _, err := NewReader(bytes.NewReader(got), 0).Next()
		if err != nil || string(data) != strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(tc.data) {
			t.Errorf("AppendEvent(%q) reads back as %q, %v", tc.data, data, err)
		}
	}
	if got := AppendDone(nil); !IsDone(bytes.TrimSuffix(bytes.TrimPrefix(got, []byte("data: ")), []byte("\n\n"))) {
		t.Errorf("AppendDone = %q", got)
	}
	if IsDone([]byte("[DONE] ")) || !IsDone([]byte("[DONE]")) {
		t.Error("IsDone is wrong")
	}
}

func TestAppendErrorEvent(t *testing.T) {
	got := AppendErrorEvent(nil, `upstream "a" failed`, "server_error", "")
	want := "data: {\"error\":{\"message\":\"upstream \\\"a\\\" failed\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n"
	if string(got) != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	got = AppendErrorEvent(nil, "m", "t", "c")
	if !strings.Contains(string(got), `"code":"c"}}`) {
		t.Errorf("got %q", got)
	}
}

func TestScanUsage(t *testing.T) {
	tests := []struct {
		data       string
		prompt     int64
		completion int64
		ok         bool
	}{
		{`{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}`, 12, 34, true},
		{`{"usage": { "completion_tokens" : 3, "prompt_tokens": 4 } }`, 4, 3, true},
		{`{"id":"x","choices":[{"delta":{"content":"hi"}}],"usage":null}`, 0, 0, false},
		{`{"id":"x","choices":[{"delta":{"content":"\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}"}}]}`, 0, 0, false},
		{`{"choices":[{"usage":{"prompt_tokens":1,"completion_tokens":2}}]}`, 0, 0, false},
		{`{"us\u0061ge":{"prompt_tokens":1,"completion_tokens":2}}`, 1, 2, true},
		{`{"usage":{"prompt_tokens":1}}`, 0, 0, false},
		{`{"usage":{"prompt_tokens":1.5,"completion_tokens":2}}`, 0, 0, false},
		{`{"usage":{"prompt_tokens":1,"completion_tokens":2}`, 0, 0, false},
		{`[DONE]`, 0, 0, false},
		{``, 0, 0, false},
	}
	for _, tc := range tests {
		p, c, ok := ScanUsage([]byte(tc.data))
		if p != tc.prompt || c != tc.completion || ok != tc.ok {
			t.Errorf("ScanUsage(%s) = %d, %d, %v; want %d, %d, %v", tc.data, p, c, ok, tc.prompt, tc.completion, tc.ok)
		}
	}
}

func TestBuffered(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewReader(pr, 0)
	go func() {
		pw.Write([]byte("data: a\n\ndata: b\n\ndata: c"))
		pw.Write([]byte("\n\n"))
		pw.Close()
	}()
	var got []string
	var buffered []bool
	for {
		data, _, err := r.Next()
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		got = append(got, string(data))
		buffered = append(buffered, r.Buffered())
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("events %q", got)
	}
	// After "a", "b" is at hand; after "b", only a partial "c" is, so
	// Next would have to read: Buffered must say false there.
	if !buffered[0] || buffered[1] {
		t.Errorf("Buffered after each event = %v, want [true false ...]", buffered)
	}
}
