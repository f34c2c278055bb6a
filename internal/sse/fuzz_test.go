package sse

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"testing"
)

// FuzzReader checks that the events parsed do not depend on how the stream
// is chunked, that raw events concatenate back to the input (less skipped
// blank lines), and that nothing panics.
func FuzzReader(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\ndata: [DONE]\n\n"), []byte{1, 2, 3}, uint8(0))
	f.Add([]byte(": ping\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\n\r\rdata: c\r\r"), []byte{5}, uint8(16))
	f.Add([]byte("data:x\ndata\n\n\n\ndata: partial"), []byte{0, 1}, uint8(8))
	f.Fuzz(func(t *testing.T, in, chunks []byte, maxSize uint8) {
		max := int(maxSize)
		whole, wholeErr := readAll(NewReader(bytes.NewReader(in), max))
		sizes := make([]int, 0, len(chunks)+1)
		for _, c := range chunks {
			sizes = append(sizes, int(c%17)) // 0 exercises empty reads
		}
		sizes = append(sizes, 1)
		peek := 0
		if len(chunks) > 0 {
			peek = int(chunks[0] % 3) // also check that Buffered changes nothing
		}
		chunked, chunkedErr := readAllPeeking(NewReader(&chunkReader{r: bytes.NewReader(in), sizes: sizes}, max), peek)
		if !errors.Is(chunkedErr, wholeErr) && !(errors.Is(wholeErr, ErrEventTooLarge) && errors.Is(chunkedErr, ErrEventTooLarge)) {
			if !errors.Is(chunkedErr, io.ErrNoProgress) { // sizes of all zeros
				t.Fatalf("errors differ: whole %v, chunked %v", wholeErr, chunkedErr)
			}
			return
		}
		if !equalEvents(whole, chunked) {
			t.Fatalf("events differ:\nwhole   %+v\nchunked %+v", whole, chunked)
		}
		var joined []byte
		for _, e := range whole {
			joined = append(joined, e.raw...)
			if max > 0 && len(e.raw) > max {
				t.Fatalf("event of %d bytes passed the %d limit", len(e.raw), max)
			}
			if !e.hasData && e.data != "" {
				t.Fatalf("data without a data line: %+v", e)
			}
		}
		if wholeErr == io.EOF || errors.Is(wholeErr, io.ErrUnexpectedEOF) {
			if !bytes.Equal(stripBlank(joined), stripBlank(in)) {
				t.Fatalf("raw events %q do not rebuild the input %q", joined, in)
			}
		}
	})
}

// stripBlank removes all line breaks so inputs compare without the blank
// lines the reader skips.
func stripBlank(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\n"), nil), []byte("\r"), nil)
}

// FuzzScanUsage checks ScanUsage against encoding/json on valid objects.
func FuzzScanUsage(f *testing.F) {
	for _, s := range []string{
		`{"usage":null}`, `{"usage":{"prompt_tokens":3,"completion_tokens":4}}`,
		`{"choices":[{"delta":{"content":"usage"}}],"usage":null}`,
		`{"usage" : {"completion_tokens":1,"prompt_tokens":2,"total_tokens":3}}`,
		`{"usage":{"prompt_tokens":1},"usage":null}`, `{"\u0075sage":{"prompt_tokens":1,"completion_tokens":2}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, c, ok := ScanUsage(data)
		// encoding/json matches struct fields case-insensitively, so decode
		// into maps, which keep keys exact (the last duplicate wins in both).
		var top map[string]json.RawMessage
		if !json.Valid(data) || json.Unmarshal(data, &top) != nil {
			return
		}
		var u map[string]json.RawMessage
		want := false
		var wp, wc int64
		if raw, has := top["usage"]; has && json.Unmarshal(raw, &u) == nil && u != nil {
			pn, okP := u["prompt_tokens"]
			cn, okC := u["completion_tokens"]
			if okP && okC {
				var errP, errC error
				wp, errP = strconv.ParseInt(string(pn), 10, 64)
				wc, errC = strconv.ParseInt(string(cn), 10, 64)
				want = errP == nil && errC == nil
			}
		}
		if ok != want || (ok && (p != wp || c != wc)) {
			t.Fatalf("ScanUsage(%s) = %d, %d, %v; encoding/json says %d, %d, %v", data, p, c, ok, wp, wc, want)
		}
	})
}
