package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrSSELineTooLong is returned by SSEReader.Next when one line of the stream
// is longer than the reader's limit.
var ErrSSELineTooLong = errors.New("sse: line too long")

// SSEReader reads server-sent events from a stream as they arrive and yields
// the data of each event (the "data:" lines joined with "\n"). Comments,
// other fields (event, id, retry) and events without data are skipped.
// Lines end with LF or CRLF. Unlike the browser algorithm, an event still
// pending when the stream ends is dispatched rather than dropped, so a
// server that omits the final blank line still delivers its last event.
//
// The zero value is not usable; call Reset. An SSEReader is not safe for
// concurrent use and may be reused for another stream after Reset.
type SSEReader struct {
	r       io.Reader
	buf     []byte // read buffer; buf[pos:end] is unread
	pos     int
	end     int
	data    []byte // data of the event being assembled
	hasData bool
	eof     bool
	max     int
}

const (
	sseInitialBuf = 4 << 10
	// DefaultSSEMaxLine is the longest line SSEReader accepts by default.
	DefaultSSEMaxLine = 1 << 20
)

// Reset makes s read events from r, keeping its buffers. maxLine bounds the
// length of one line; maxLine <= 0 means DefaultSSEMaxLine.
func (s *SSEReader) Reset(r io.Reader, maxLine int) {
	if maxLine <= 0 {
		maxLine = DefaultSSEMaxLine
	}
	if s.buf == nil {
		s.buf = make([]byte, sseInitialBuf)
	}
	s.r, s.pos, s.end, s.data, s.hasData, s.eof, s.max = r, 0, 0, s.data[:0], false, false, maxLine
}

// Next returns the data of the next event. The slice is valid until the next
// call to Next or Reset. At the end of the stream it returns io.EOF; a read
// error is returned as it came (wrapped), and a line longer than the limit
// gives ErrSSELineTooLong.
func (s *SSEReader) Next() ([]byte, error) {
	for {
		line, ok, err := s.line()
		if err != nil {
			return nil, err
		}
		if !ok { // end of stream
			if s.hasData {
				s.hasData = false
				return s.data, nil
			}
			return nil, io.EOF
		}
		if len(line) == 0 {
			if s.hasData {
				s.hasData = false
				return s.data, nil
			}
			continue
		}
		if line[0] == ':' {
			continue // comment
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		if string(field) != "data" {
			continue
		}
		if s.hasData {
			s.data = append(s.data, '\n')
		} else {
			s.data = s.data[:0]
			s.hasData = true
		}
		s.data = append(s.data, value...)
	}
}

// line returns the next line without its terminator. ok is false at the end
// of the stream. The slice is valid until the next call.
func (s *SSEReader) line() (line []byte, ok bool, err error) {
	for {
		i := bytes.IndexByte(s.buf[s.pos:s.end], '\n')
		if i >= 0 || s.eof {
			if i < 0 {
				if s.pos == s.end {
					return nil, false, nil
				}
				i = s.end - s.pos // last line, unterminated
			}
			line = s.buf[s.pos : s.pos+i]
			s.pos = min(s.pos+i+1, s.end)
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if len(line) > s.max {
				return nil, false, s.tooLong()
			}
			return line, true, nil
		}
		// No line end yet: up to max bytes of line plus "\r" may be pending.
		if s.end-s.pos > s.max+1 {
			return nil, false, s.tooLong()
		}
		// Make room: move the partial line to the front, grow if full.
		if s.pos > 0 {
			s.end = copy(s.buf, s.buf[s.pos:s.end])
			s.pos = 0
		}
		if s.end == len(s.buf) {
			n := min(2*len(s.buf), s.max+2)
			nb := make([]byte, n)
			copy(nb, s.buf[:s.end])
			s.buf = nb
		}
		n, rerr := s.r.Read(s.buf[s.end:])
		s.end += n
		if rerr != nil {
			if rerr == io.EOF {
				s.eof = true
				continue
			}
			if n > 0 {
				// Serve what arrived first; the error is seen on the next read.
				s.pendingErr(rerr)
				continue
			}
			return nil, false, fmt.Errorf("sse: reading stream: %w", rerr)
		}
	}
}

func (s *SSEReader) tooLong() error {
	return fmt.Errorf("%w (over %d bytes)", ErrSSELineTooLong, s.max)
}

// pendingErr wraps s.r so the next Read returns err; used when a Read
// returned data and an error together.
func (s *SSEReader) pendingErr(err error) { s.r = errReader{err} }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// isDone reports whether an event's data is the OpenAI end marker "[DONE]".
func isDone(data []byte) bool {
	return string(bytes.TrimSpace(data)) == "[DONE]"
}

// isErrorEvent reports whether an event's data is an error object
// ({"error": ...}), which OpenAI-compatible servers send when a stream fails.
func isErrorEvent(data []byte) bool {
	data = skipSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return false
	}
	data = skipSpace(data[1:])
	return bytes.HasPrefix(data, []byte(`"error"`))
}

// hasTokenContent reports whether a chunk carries generated text: a choice
// whose delta.content (chat) or text (completions) is a non-empty string.
// Chunks with choices but no text, such as the finish chunk OpenAI, vLLM
// and the simulator send after the last token (chat "delta": {},
// completions "text": "" with the finish_reason), and the usage-only chunk
// ("choices": []) are not tokens: counting them would add a near-zero gap
// per stream to the inter-token latency. Only the chunk's own members are
// read (a "content" key in logprobs, or in a string, does not count), and
// nothing is allocated.
func hasTokenContent(data []byte) bool {
	choices, ok := member(data, "choices")
	if !ok || len(choices) == 0 || choices[0] != '[' {
		return false
	}
	b := skipSpace(choices[1:])
	for len(b) > 0 && b[0] == '{' {
		n := objectEnd(b)
		choice := b[:n]
		if delta, ok := member(choice, "delta"); ok {
			if c, ok := member(delta, "content"); ok && nonEmptyString(c) {
				return true
			}
		}
		if t, ok := member(choice, "text"); ok && nonEmptyString(t) {
			return true
		}
		b = skipSpace(b[n:])
		if len(b) == 0 || b[0] != ',' {
			return false
		}
		b = skipSpace(b[1:])
	}
	return false
}

// member returns the value of the top-level member key of the JSON object
// at the start of obj (leading space allowed), or false if obj is not an
// object, has no such member or is malformed before it. Member names are
// compared as written, escapes and all.
func member(obj []byte, key string) ([]byte, bool) {
	b := skipSpace(obj)
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	b = b[1:]
	for {
		b = skipSpace(b)
		if len(b) == 0 || b[0] != '"' {
			return nil, false // '}' (no more members) or malformed
		}
		n := stringEnd(b)
		name := b[1:max(1, n-1)]
		b = skipSpace(b[n:])
		if len(b) == 0 || b[0] != ':' {
			return nil, false
		}
		b = skipSpace(b[1:])
		v := b[:valueEnd(b)]
		if string(name) == key {
			return v, true
		}
		b = skipSpace(b[len(v):])
		if len(b) == 0 || b[0] != ',' {
			return nil, false
		}
		b = b[1:]
	}
}

// stringEnd returns the length of the JSON string at the start of b ('"'
// first), quotes included, or len(b) if it is not closed.
func stringEnd(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the length of the JSON value at the start of b.
func valueEnd(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	switch b[0] {
	case '"':
		return stringEnd(b)
	case '{', '[':
		return objectEnd(b)
	}
	i := 0
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// nonEmptyString reports whether v is a JSON string with at least one
// character.
func nonEmptyString(v []byte) bool {
	return len(v) >= 2 && v[0] == '"' && v[1] != '"'
}
