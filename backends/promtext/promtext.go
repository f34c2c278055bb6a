// Package promtext parses the Prometheus text exposition format (version
// 0.0.4), the format of a model server's /metrics page, one sample at a
// time and without building a structure: the caller looks at each sample in
// a callback and keeps what it needs. It is small on purpose: the gateway
// scrapes a handful of gauges from each backend every ~100 ms, so the parser
// works on []byte and allocates nothing per sample.
//
// What it reads, line by line: blank lines and comments (# HELP, # TYPE and
// any other "#" line) are skipped; a sample line is a metric name, optional
// labels in braces with quoted values (escapes \\, \" and \n), a value (a
// float, exponent forms, NaN, +Inf, -Inf) and an optional integer
// timestamp. Lines may end in \r\n. A line it cannot read stops the parse
// with a *SyntaxError naming the line; it never panics on any input.
package promtext

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// SyntaxError is a line that is not valid exposition format.
type SyntaxError struct {
	Line int    // 1-based
	Msg  string // what is wrong
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Sample is one sample line. It and everything it returns are borrowed from
// the parser: valid only during the callback that received it.
type Sample struct {
	Name         []byte
	Value        float64
	Timestamp    int64 // milliseconds since the epoch, when HasTimestamp
	HasTimestamp bool
	Line         int

	labels  []byte  // between the braces, already validated
	scratch *[]byte // the parser's buffer for unescaped values
}

// Label returns the unescaped value of the label named name and whether the
// sample has it. The value is valid until the next Label or EachLabel call
// on the sample, or the end of the callback.
func (s *Sample) Label(name string) ([]byte, bool) {
	var val []byte
	found := false
	s.EachLabel(func(n, v []byte) bool {
		if string(n) == name {
			val, found = v, true
			return false
		}
		return true
	})
	return val, found
}

// EachLabel calls fn with each label's name and unescaped value, in the
// order of the line, until fn returns false. Both slices are valid only
// during that call of fn.
func (s *Sample) EachLabel(fn func(name, value []byte) bool) {
	b := s.labels
	for {
		b = skipSpace(b)
		if len(b) == 0 {
			return
		}
		n := nameLen(b, false)
		name := b[:n]
		b = skipSpace(b[n:])
		b = skipSpace(b[1:]) // '='
		// b[0] is '"': labels were validated by the parser.
		raw, rest, escaped, _ := scanQuoted(b[1:])
		val := raw
		if escaped {
			*s.scratch = appendUnescaped((*s.scratch)[:0], raw)
			val = *s.scratch
		}
		if !fn(name, val) {
			return
		}
		b = skipSpace(rest)
		if len(b) > 0 && b[0] == ',' {
			b = b[1:]
		}
	}
}

// Parser parses exposition text. Its zero value is ready; reuse one to keep
// its buffers. A Parser is not safe for concurrent use.
type Parser struct {
	s       Sample
	scratch []byte
}

// Parse calls fn for each sample in data, in order. It stops at the first
// line it cannot read, returning a *SyntaxError, or at the first error fn
// returns, returning that error.
func (p *Parser) Parse(data []byte, fn func(s *Sample) error) error {
	line := 0
	for len(data) > 0 {
		line++
		l := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if err := p.line(l, line, fn); err != nil {
			return err
		}
	}
	return nil
}

// MaxLineBytes bounds a line read by ParseReader.
const MaxLineBytes = 1 << 20

// ParseReader is Parse reading from r, a line at a time, so the text need
// not be in memory at once. Lines longer than MaxLineBytes are an error.
func (p *Parser) ParseReader(r io.Reader, fn func(s *Sample) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	line := 0
	for {
		l, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(l) > MaxLineBytes {
				return &SyntaxError{Line: line + 1, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
			}
			long = append(long, l...)
			continue
		}
		if len(long) > 0 {
			if len(long)+len(l) > MaxLineBytes {
				return &SyntaxError{Line: line + 1, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
			}
			long = append(long, l...)
			l = long
		}
		if len(l) > 0 {
			line++
			if l[len(l)-1] == '\n' {
				l = l[:len(l)-1]
			}
			if perr := p.line(l, line, fn); perr != nil {
				return perr
			}
		}
		long = long[:0]
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading metrics after line %d: %w", line, err)
		}
	}
}

func (p *Parser) line(l []byte, line int, fn func(s *Sample) error) error {
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	l = skipSpace(l)
	if len(l) == 0 || l[0] == '#' {
		return nil
	}
	s := &p.s
	*s = Sample{Line: line, scratch: &p.scratch}
	n := nameLen(l, true)
	if n == 0 {
		return &SyntaxError{Line: line, Msg: fmt.Sprintf("want a metric name, found %s", quoteStart(l))}
	}
	s.Name = l[:n]
	l = l[n:]
	if len(l) > 0 && l[0] == '{' {
		end, msg := scanLabels(l[1:])
		if msg != "" {
			return &SyntaxError{Line: line, Msg: fmt.Sprintf("metric %q: %s", s.Name, msg)}
		}
		s.labels = l[1 : 1+end]
		l = l[1+end+1:]
	}
	if len(l) == 0 || (l[0] != ' ' && l[0] != '\t') {
		return &SyntaxError{Line: line, Msg: fmt.Sprintf("metric %q: want a space and a value, found %s", s.Name, quoteStart(l))}
	}
	l = skipSpace(l)
	tok, l := token(l)
	v, ok := parseValue(tok)
	if !ok {
		return &SyntaxError{Line: line, Msg: fmt.Sprintf("metric %q: bad value %s", s.Name, quoteStart(tok))}
	}
	s.Value = v
	l = skipSpace(l)
	if len(l) > 0 {
		tok, l = token(l)
		ts, err := strconv.ParseInt(string(tok), 10, 64)
		if err != nil {
			return &SyntaxError{Line: line, Msg: fmt.Sprintf("metric %q: bad timestamp %s", s.Name, quoteStart(tok))}
		}
		s.Timestamp, s.HasTimestamp = ts, true
		if l = skipSpace(l); len(l) > 0 {
			return &SyntaxError{Line: line, Msg: fmt.Sprintf("metric %q: unexpected %s after the timestamp", s.Name, quoteStart(l))}
		}
	}
	return fn(s)
}

// scanLabels checks the labels after a '{' and returns the index of the
// closing '}' in b, or a message saying what is wrong.
func scanLabels(b []byte) (int, string) {
	i := 0
	for {
		i += spaceLen(b[i:])
		if i >= len(b) {
			return 0, "labels not closed with '}'"
		}
		if b[i] == '}' {
			return i, ""
		}
		n := nameLen(b[i:], false)
		if n == 0 {
			return 0, fmt.Sprintf("want a label name, found %s", quoteStart(b[i:]))
		}
		name := b[i : i+n]
		i += n
		i += spaceLen(b[i:])
		if i >= len(b) || b[i] != '=' {
			return 0, fmt.Sprintf("label %q: want '='", name)
		}
		i++
		i += spaceLen(b[i:])
		if i >= len(b) || b[i] != '"' {
			return 0, fmt.Sprintf("label %q: want a quoted value", name)
		}
		i++
		raw, _, _, msg := scanQuoted(b[i:])
		if msg != "" {
			return 0, fmt.Sprintf("label %q: %s", name, msg)
		}
		i += len(raw) + 1
		i += spaceLen(b[i:])
		if i >= len(b) {
			return 0, "labels not closed with '}'"
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i, ""
		default:
			return 0, fmt.Sprintf("after label %q: want ',' or '}', found %s", name, quoteStart(b[i:]))
		}
	}
}

// scanQuoted reads a label value after its opening quote: raw is the value
// as written (escapes included), rest what follows the closing quote.
func scanQuoted(b []byte) (raw, rest []byte, escaped bool, msg string) {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			return b[:i], b[i+1:], escaped, ""
		case '\\':
			if i+1 >= len(b) {
				return nil, nil, false, "unterminated escape"
			}
			switch b[i+1] {
			case '\\', '"', 'n':
			default:
				return nil, nil, false, fmt.Sprintf("bad escape \\%c", b[i+1])
			}
			escaped = true
			i++
		case '\n':
			return nil, nil, false, "newline in a quoted value"
		}
	}
	return nil, nil, false, "unterminated quoted value"
}

func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\\' && i+1 < len(raw) {
			i++
			c = raw[i]
			if c == 'n' {
				c = '\n'
			}
		}
		dst = append(dst, c)
	}
	return dst
}

// nameLen is the length of the metric name (colons allowed) or label name
// at the start of b; 0 when there is none.
func nameLen(b []byte, metric bool) int {
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c == ':' && metric:
		case c >= '0' && c <= '9' && i > 0:
		default:
			return i
		}
	}
	return len(b)
}

func spaceLen(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' {
			return i
		}
	}
	return len(b)
}

func skipSpace(b []byte) []byte { return b[spaceLen(b):] }

// token splits b at its first space or tab.
func token(b []byte) (tok, rest []byte) {
	for i, c := range b {
		if c == ' ' || c == '\t' {
			return b[:i], b[i:]
		}
	}
	return b, nil
}

// parseValue reads a sample value: a Go float (strconv), which covers the
// exponent forms, NaN and ±Inf.
func parseValue(b []byte) (float64, bool) {
	switch string(b) {
	case "NaN":
		return math.NaN(), true
	case "+Inf":
		return math.Inf(1), true
	case "-Inf":
		return math.Inf(-1), true
	}
	if len(b) == 0 || len(b) > 64 {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		var ne *strconv.NumError
		// Out of range is still a value: ParseFloat returns ±Inf or 0.
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return v, true
		}
		return 0, false
	}
	return v, true
}

// quoteStart quotes the start of b for an error message.
func quoteStart(b []byte) string {
	if len(b) == 0 {
		return "the end of the line"
	}
	if len(b) > 32 {
		return strconv.Quote(string(b[:32])) + "..."
	}
	return strconv.Quote(string(b))
}
