// Package jsonscan scans JSON request bodies for the few top-level fields the
// gateway needs, validating the whole document strictly but decoding nothing
// else, and rewrites single top-level fields without re-encoding the body.
//
// Everything here works on []byte views of the caller's buffer and allocates
// nothing on the common path. No I/O.
package jsonscan

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects accepted, the same
// limit encoding/json applies.
const MaxDepth = 10000

// Error describes why a body was rejected: invalid JSON (Field is empty) or a
// known top-level field with the wrong type (Field names it).
type Error struct {
	Offset int    // byte offset in the body where the problem was found
	Field  string // the field with the wrong type; "" for a syntax error
	Msg    string // what is wrong, e.g. "expected ':' after object key" or "must be a string"
}

// Error returns "model must be a string" for a type error and
// "invalid JSON at byte 12: expected ..." for a syntax error.
func (e *Error) Error() string {
	if e.Duplicate() {
		return "the top-level key " + strconv.Quote(e.Field) + " " + e.Msg
	}
	if e.Field != "" {
		return e.Field + " " + e.Msg
	}
	return "invalid JSON at byte " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

// MsgDuplicate is the Msg of an Error for a top-level key that occurs more
// than once; Field then names the key.
const MsgDuplicate = "appears more than once"

// Duplicate reports whether e is about a duplicated top-level key.
func (e *Error) Duplicate() bool { return e.Msg == MsgDuplicate }

func syntaxErr(off int, msg string) *Error { return &Error{Offset: off, Msg: msg} }

func typeErr(off int, field, msg string) *Error { return &Error{Offset: off, Field: field, Msg: msg} }

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// describe names the byte at i for error messages without allocating on the
// success path.
func unexpected(b []byte, i int, want string) *Error {
	if i >= len(b) {
		return syntaxErr(i, "unexpected end of input, expected "+want)
	}
	return syntaxErr(i, "unexpected "+strconv.QuoteRune(rune(b[i]))+", expected "+want)
}

// skipString validates the string starting with the quote at b[i] and returns
// the index just past its closing quote and whether it contains escapes.
func skipString(b []byte, i int) (end int, esc bool, err *Error) {
	i++ // opening quote
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return 0, false, syntaxErr(i, "unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return 0, false, syntaxErr(i, "truncated \\u escape")
				}
				for k := i + 2; k < i+6; k++ {
					if unhex(b[k]) < 0 {
						return 0, false, syntaxErr(k, "invalid hex digit in \\u escape")
					}
				}
				i += 6
			default:
				return 0, false, syntaxErr(i, "invalid escape "+strconv.QuoteRune(rune(b[i+1])))
			}
		case c < 0x20:
			return 0, false, syntaxErr(i, "control character in string")
		default:
			i++
		}
	}
	return 0, false, syntaxErr(len(b), "unterminated string")
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipNumber validates the number starting at b[i] (RFC 8259 grammar).
func skipNumber(b []byte, i int) (int, *Error) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return 0, unexpected(b, i, "digit")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, unexpected(b, i, "digit after decimal point")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, unexpected(b, i, "digit in exponent")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	_ = start
	return i, nil
}

func skipLiteral(b []byte, i int, lit string) (int, *Error) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	return 0, syntaxErr(i, "invalid literal, expected "+lit)
}

// skipValue validates the value starting at b[i] (no leading whitespace) and
// returns the index just past it.
func skipValue(b []byte, i, depth int) (int, *Error) {
	if i >= len(b) {
		return 0, unexpected(b, i, "value")
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := skipString(b, i)
		return end, err
	case c == '{':
		it, err := openObject(b, i, depth+1)
		if err != nil {
			return 0, err
		}
		for {
			_, ok, err := it.next()
			if err != nil {
				return 0, err
			}
			if !ok {
				return it.i, nil
			}
		}
	case c == '[':
		if depth+1 > MaxDepth {
			return 0, syntaxErr(i, "nesting too deep")
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			end, err := skipValue(b, i, depth+1)
			if err != nil {
				return 0, err
			}
			i = skipWS(b, end)
			if i >= len(b) {
				return 0, unexpected(b, i, "',' or ']'")
			}
			if b[i] == ']' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, unexpected(b, i, "',' or ']'")
			}
			i = skipWS(b, i+1)
		}
	case c == '-' || isDigit(c):
		return skipNumber(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return 0, unexpected(b, i, "value")
}

// member is one key/value pair of an object, as offsets into the scanned
// buffer.
type member struct {
	start    int    // index of the key's opening quote
	key      []byte // key between the quotes, still escaped when esc
	esc      bool
	valStart int
	valEnd   int
}

// objIter walks the members of one object, validating as it goes.
type objIter struct {
	b     []byte
	i     int // next position to read; past the closing '}' once done
	depth int
	n     int // members returned so far
	close int // index of the closing '}' once done
	done  bool
}

// openObject starts iterating the object whose '{' is at b[i].
func openObject(b []byte, i, depth int) (objIter, *Error) {
	if i >= len(b) || b[i] != '{' {
		return objIter{}, unexpected(b, i, "'{'")
	}
	if depth > MaxDepth {
		return objIter{}, syntaxErr(i, "nesting too deep")
	}
	return objIter{b: b, i: i + 1, depth: depth}, nil
}

// next returns the next member; ok is false once the closing '}' was read.
func (it *objIter) next() (m member, ok bool, err *Error) {
	if it.done {
		return member{}, false, nil
	}
	b := it.b
	i := skipWS(b, it.i)
	if it.n == 0 {
		if i < len(b) && b[i] == '}' {
			it.close, it.i, it.done = i, i+1, true
			return member{}, false, nil
		}
	} else {
		if i >= len(b) {
			return member{}, false, unexpected(b, i, "',' or '}'")
		}
		if b[i] == '}' {
			it.close, it.i, it.done = i, i+1, true
			return member{}, false, nil
		}
		if b[i] != ',' {
			return member{}, false, unexpected(b, i, "',' or '}'")
		}
		i = skipWS(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return member{}, false, unexpected(b, i, "object key string")
	}
	m.start = i
	end, esc, err := skipString(b, i)
	if err != nil {
		return member{}, false, err
	}
	m.key, m.esc = b[i+1:end-1], esc
	i = skipWS(b, end)
	if i >= len(b) || b[i] != ':' {
		return member{}, false, unexpected(b, i, "':' after object key")
	}
	i = skipWS(b, i+1)
	m.valStart = i
	end, err = skipValue(b, i, it.depth)
	if err != nil {
		return member{}, false, err
	}
	m.valEnd = end
	it.i = end
	it.n++
	return m, true, nil
}

// keyIs reports whether the member's key, unescaped, equals name.
func (m *member) keyIs(name string) bool {
	if !m.esc {
		return string(m.key) == name
	}
	if len(m.key) < len(name) {
		return false // escapes only make the raw form longer
	}
	var tmp [64]byte
	u := appendUnescaped(tmp[:0], m.key)
	return string(u) == name
}

// appendUnescaped appends the unescaped content of a validated JSON string
// (without its quotes) to dst. Invalid surrogate escapes become U+FFFD, as in
// encoding/json; raw bytes are copied unchanged.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			j := i + 1
			for j < len(s) && s[j] != '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if pair := utf16.DecodeRune(r, hex4(s[i+2:])); pair != utf8.RuneError {
						dst = utf8.AppendRune(dst, pair)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

func hex4(s []byte) rune {
	return rune(unhex(s[0])<<12 | unhex(s[1])<<8 | unhex(s[2])<<4 | unhex(s[3]))
}

// parseInt parses a JSON number that is an integer in int64 range.
func parseInt(raw []byte) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	neg := raw[0] == '-'
	i := 0
	if neg {
		i = 1
	}
	if i >= len(raw) {
		return 0, false
	}
	var n uint64
	for ; i < len(raw); i++ {
		c := raw[i]
		if !isDigit(c) {
			return 0, false
		}
		if n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// ParseInt parses raw JSON as an integer in int64 range; ok is false for any
// other value, fractions and exponents included.
func ParseInt(raw []byte) (n int64, ok bool) { return parseInt(raw) }

// Lookup returns the raw JSON value of the top-level key in obj, which must be
// a JSON object. When the key occurs more than once the last occurrence wins,
// as in encoding/json. ok is false when the key is absent or obj is not a
// valid JSON object.
func Lookup(obj []byte, key string) (raw []byte, ok bool) {
	it, err := openObject(obj, skipWS(obj, 0), 1)
	if err != nil {
		return nil, false
	}
	for {
		m, more, err := it.next()
		if err != nil {
			return nil, false
		}
		if !more {
			break
		}
		if m.keyIs(key) {
			raw, ok = obj[m.valStart:m.valEnd], true
		}
	}
	if skipWS(obj, it.i) != len(obj) {
		return nil, false
	}
	return raw, ok
}

// MetadataValue returns the string value of key in a raw metadata object (as
// in Fields.Metadata). ok is false when the key is absent or its value is not
// a string. The result is a view into meta unless the value contains JSON
// escapes, in which case it is a fresh copy, unescaped.
func MetadataValue(meta []byte, key string) ([]byte, bool) {
	raw, ok := Lookup(meta, key)
	if !ok || len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	s := raw[1 : len(raw)-1]
	for _, c := range s {
		if c == '\\' {
			return appendUnescaped(make([]byte, 0, len(s)), s), true
		}
	}
	return s, true
}

// AppendUnescaped appends the content of a validated JSON string (without
// its quotes) to dst, with its escapes undone; a lone surrogate becomes
// U+FFFD. s must have passed a JSON scan: its escapes are not checked.
func AppendUnescaped(dst, s []byte) []byte { return appendUnescaped(dst, s) }
