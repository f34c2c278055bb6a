package oip

import (
	"strconv"

	"switchyard/internal/jsonscan"
)

// The scanner below works on offsets into one body. Every function takes the
// index of the first byte of what it reads (no leading whitespace unless it
// says so) and returns the index just past it.

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// at returns b[i], or 0 (which starts no JSON value) past the end.
func at(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

func syntaxErr(off int, msg string) *Error {
	return &Error{Offset: off, Msg: "invalid JSON at byte " + strconv.Itoa(off) + ": " + msg}
}

// unexpected describes the byte at i, or the end of input, for a syntax
// error.
func unexpected(b []byte, i int, want string) *Error {
	if i >= len(b) {
		return syntaxErr(i, "unexpected end of input, expected "+want)
	}
	return syntaxErr(i, "unexpected "+strconv.QuoteRune(rune(b[i]))+", expected "+want)
}

// skipString validates the string whose opening quote is at b[i]. esc
// reports whether it contains escapes.
func skipString(b []byte, i int) (end int, esc bool, err *Error) {
	i++
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

// number describes a scanned JSON number.
type number struct {
	neg      bool   // it starts with '-'
	integer  bool   // no fraction and no exponent
	overflow bool   // the integer part does not fit mag
	mag      uint64 // magnitude of the integer part
}

// scanNumber validates the number at b[i] (RFC 8259 grammar) and reads the
// magnitude of its integer part.
func scanNumber(b []byte, i int) (int, number, *Error) {
	var n number
	if i < len(b) && b[i] == '-' {
		n.neg = true
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for ; i < len(b) && isDigit(b[i]); i++ {
			const cut = (1<<64 - 1) / 10 // 1844674407370955161
			d := uint64(b[i] - '0')
			if n.mag > cut || n.mag == cut && d > (1<<64-1)%10 {
				n.overflow = true
			}
			n.mag = n.mag*10 + d
		}
	default:
		return 0, n, unexpected(b, i, "digit")
	}
	n.integer = true
	if i < len(b) && b[i] == '.' {
		n.integer = false
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, n, unexpected(b, i, "digit after decimal point")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		n.integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, n, unexpected(b, i, "digit in exponent")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, n, nil
}

func skipLiteral(b []byte, i int, lit string) (int, *Error) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	return 0, syntaxErr(i, "invalid literal, expected "+lit)
}

// skipValue validates the value at b[i], which sits inside depth containers.
func skipValue(b []byte, i, depth int) (int, *Error) {
	if i >= len(b) {
		return 0, unexpected(b, i, "value")
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := skipString(b, i)
		return end, err
	case c == '{':
		if depth+1 > MaxDepth {
			return 0, syntaxErr(i, "nesting too deep")
		}
		j, more := objStart(b, i)
		for more {
			_, _, v, err := objKey(b, j)
			if err != nil {
				return 0, err
			}
			end, err := skipValue(b, v, depth+1)
			if err != nil {
				return 0, err
			}
			if j, more, err = objAfter(b, end); err != nil {
				return 0, err
			}
		}
		return j, nil
	case c == '[':
		if depth+1 > MaxDepth {
			return 0, syntaxErr(i, "nesting too deep")
		}
		j, more := arrStart(b, i)
		for more {
			end, err := skipValue(b, j, depth+1)
			if err != nil {
				return 0, err
			}
			if j, more, err = arrAfter(b, end); err != nil {
				return 0, err
			}
		}
		return j, nil
	case c == '-' || isDigit(c):
		end, _, err := scanNumber(b, i)
		return end, err
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return 0, unexpected(b, i, "value")
}

// skipValidated returns the end of the value at b[i] of a document already
// validated: scalars other than strings end at the next delimiter.
func skipValidated(b []byte, i int) int {
	switch b[i] {
	case '"':
		end, _, _ := skipString(b, i)
		return end
	case '[', '{':
		end, _ := skipValue(b, i, 0)
		return end
	}
	for i < len(b) {
		switch b[i] {
		case ',', ']', '}', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// objStart begins the object whose '{' is at b[i]. When it is empty, more is
// false and next is past its '}'; otherwise next is where the first key
// should be.
func objStart(b []byte, i int) (next int, more bool) {
	j := skipWS(b, i+1)
	if j < len(b) && b[j] == '}' {
		return j + 1, false
	}
	return j, true
}

// objKey reads `"key" :` at b[i] and returns the key between its quotes
// (still escaped when esc) and the index of the value.
func objKey(b []byte, i int) (key []byte, esc bool, val int, err *Error) {
	if i >= len(b) || b[i] != '"' {
		return nil, false, 0, unexpected(b, i, "object key string")
	}
	end, esc, err := skipString(b, i)
	if err != nil {
		return nil, false, 0, err
	}
	key = b[i+1 : end-1]
	j := skipWS(b, end)
	if j >= len(b) || b[j] != ':' {
		return nil, false, 0, unexpected(b, j, "':' after object key")
	}
	return key, esc, skipWS(b, j+1), nil
}

// objAfter reads what follows a member value ending at i: ',' (more is true,
// next is the next key) or '}' (next is past it).
func objAfter(b []byte, i int) (next int, more bool, err *Error) {
	i = skipWS(b, i)
	if i < len(b) {
		switch b[i] {
		case ',':
			return skipWS(b, i+1), true, nil
		case '}':
			return i + 1, false, nil
		}
	}
	return 0, false, unexpected(b, i, "',' or '}'")
}

// arrStart begins the array whose '[' is at b[i], like objStart.
func arrStart(b []byte, i int) (next int, more bool) {
	j := skipWS(b, i+1)
	if j < len(b) && b[j] == ']' {
		return j + 1, false
	}
	return j, true
}

// arrAfter reads what follows an element ending at i, like objAfter.
func arrAfter(b []byte, i int) (next int, more bool, err *Error) {
	i = skipWS(b, i)
	if i < len(b) {
		switch b[i] {
		case ',':
			return skipWS(b, i+1), true, nil
		case ']':
			return i + 1, false, nil
		}
	}
	return 0, false, unexpected(b, i, "',' or ']'")
}

// maxKnownKey bounds the escaped length of a key that may still unescape to
// one of the keys this package knows (at most 18 bytes, each written as a
// 6-byte \u escape at worst).
const maxKnownKey = 6 * 18

// keyText returns the key as text to compare with known keys: the key itself
// without escapes, else its unescaped form in buf. A longer escaped key
// cannot be a known one and is returned as it is (it still holds a
// backslash, which no known key has).
func keyText(key []byte, esc bool, buf *[maxKnownKey]byte) []byte {
	if !esc || len(key) > maxKnownKey {
		return key
	}
	return appendUnescaped(buf[:0], key)
}

// appendUnescaped appends the content of a validated JSON string (without
// its quotes) to dst, unescaped.
func appendUnescaped(dst, s []byte) []byte { return jsonscan.AppendUnescaped(dst, s) }

// isString reports whether b is exactly one JSON string, quotes included.
func isString(b []byte) bool {
	if len(b) < 2 || b[0] != '"' {
		return false
	}
	end, _, err := skipString(b, 0)
	return err == nil && end == len(b)
}

// appendCompact appends the validated JSON value v without the whitespace
// between its tokens.
func appendCompact(dst, v []byte) []byte {
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case isWS(c):
			i++
		case c == '"':
			end, _, _ := skipString(v, i)
			dst = append(dst, v[i:end]...)
			i = end
		default:
			dst = append(dst, c)
			i++
		}
	}
	return dst
}

// equalCompact reports whether the validated JSON values a and b are equal
// once the whitespace between their tokens is removed (as appendCompact
// would), without building either.
func equalCompact(a, b []byte) bool {
	i, j := 0, 0
	for {
		for i < len(a) && isWS(a[i]) {
			i++
		}
		for j < len(b) && isWS(b[j]) {
			j++
		}
		if i == len(a) || j == len(b) {
			return i == len(a) && j == len(b)
		}
		if a[i] != b[j] {
			return false
		}
		if a[i] == '"' {
			ea, _, _ := skipString(a, i)
			eb, _, _ := skipString(b, j)
			if string(a[i:ea]) != string(b[j:eb]) {
				return false
			}
			i, j = ea, eb
			continue
		}
		i++
		j++
	}
}

// quoteSnippet renders a value of the body for an error message, cut short
// when long.
func quoteSnippet(v []byte) string {
	const max = 40
	if len(v) > max {
		return string(v[:max]) + "..."
	}
	return string(v)
}
