package policy

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The values that cross between Go and a policy compiled to WebAssembly
// travel as text: opa_value_dump writes a value as JSON, except that sets
// are set literals ({1, 2}, and set() when empty) and object keys may be
// any value; opa_value_parse reads the same. parseValue and appendValue are
// the Go side of that text. Unlike JSON they keep sets as sets, so a
// decision read from a WebAssembly evaluation is the value OPA's
// interpreter would have produced, set order and all.

// appendValue appends v as value text.
func appendValue(dst []byte, v ast.Value) ([]byte, error) {
	switch x := v.(type) {
	case ast.Null:
		return append(dst, "null"...), nil
	case ast.Boolean:
		return strconv.AppendBool(dst, bool(x)), nil
	case ast.Number:
		if !isJSONNumber(string(x)) {
			return nil, fmt.Errorf("the number %s has no JSON form", string(x))
		}
		return append(dst, x...), nil
	case ast.String:
		return appendJSONString(dst, string(x)), nil
	case *ast.Array:
		dst = append(dst, '[')
		var err error
		for i := range x.Len() {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendValue(dst, x.Elem(i).Value); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case ast.Object:
		dst = append(dst, '{')
		var err error
		for i, k := range x.Keys() {
			if i > 0 {
				dst = append(dst, ',')
			}
			if _, ok := k.Value.(ast.String); !ok {
				// opa_value_parse reads string keys only.
				return nil, fmt.Errorf("an object key is %s, not a string", ast.ValueName(k.Value))
			}
			if dst, err = appendValue(dst, k.Value); err != nil {
				return nil, err
			}
			dst = append(dst, ':')
			if dst, err = appendValue(dst, x.Get(k).Value); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case ast.Set:
		if x.Len() == 0 {
			return append(dst, "set()"...), nil
		}
		dst = append(dst, '{')
		var err error
		for i, e := range x.Slice() {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendValue(dst, e.Value); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	}
	return nil, fmt.Errorf("%s is not a value", ast.ValueName(v))
}

// isJSONNumber reports whether s is a number in JSON's grammar.
func isJSONNumber(s string) bool {
	_, n, ok := scanNumber([]byte(s))
	return ok && n == len(s)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as JSON: quotes, backslashes and
// control characters escaped, everything else as it is (bytes of invalid
// UTF-8 included, which the callers rule out where it matters).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// parseValue reads one value of value text, which must be all of b
// (surrounding white space aside).
func parseValue(b []byte) (ast.Value, error) {
	p := valueParser{b: b}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.b) {
		return nil, fmt.Errorf("value text: %q after the value", p.rest())
	}
	return v, nil
}

// maxValueDepth bounds the nesting parseValue follows.
const maxValueDepth = 1000

type valueParser struct {
	b []byte
	i int
}

func (p *valueParser) rest() string {
	r := p.b[p.i:]
	if len(r) > 16 {
		r = r[:16]
	}
	return string(r)
}

func (p *valueParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *valueParser) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

var (
	errValueEnd = errors.New("value text: unexpected end")
	errDupKey   = errors.New("value text: a key twice in an object")
)

func (p *valueParser) value(depth int) (ast.Value, error) {
	if depth > maxValueDepth {
		return nil, errors.New("value text: nested too deeply")
	}
	p.space()
	if p.i >= len(p.b) {
		return nil, errValueEnd
	}
	switch c := p.b[p.i]; {
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return ast.String(s), nil
	case c == '[':
		p.i++
		var elems []*ast.Term
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return ast.NewArray(), nil
		}
		for {
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			elems = append(elems, ast.NewTerm(v))
			end, err := p.next(']')
			if err != nil {
				return nil, err
			}
			if end {
				return ast.NewArray(elems...), nil
			}
		}
	case c == '{':
		return p.braces(depth)
	case c == 't' && p.literal("true"):
		return ast.Boolean(true), nil
	case c == 'f' && p.literal("false"):
		return ast.Boolean(false), nil
	case c == 'n' && p.literal("null"):
		return ast.Null{}, nil
	case c == 's' && p.literal("set()"):
		return ast.NewSet(), nil
	case c == '-' || c >= '0' && c <= '9':
		s, n, ok := scanNumber(p.b[p.i:])
		if !ok {
			return nil, fmt.Errorf("value text: bad number %q", p.rest())
		}
		p.i += n
		return ast.Number(s), nil
	}
	return nil, fmt.Errorf("value text: unexpected %q", p.rest())
}

// next reads the separator after an element: ',' (false) or close (true).
func (p *valueParser) next(close byte) (bool, error) {
	p.space()
	if p.i >= len(p.b) {
		return false, errValueEnd
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		return false, nil
	case close:
		p.i++
		return true, nil
	}
	return false, fmt.Errorf("value text: unexpected %q", p.rest())
}

// braces reads an object or a non-empty set: the first element tells,
// by the ':' after it.
func (p *valueParser) braces(depth int) (ast.Value, error) {
	p.i++
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return ast.NewObject(), nil
	}
	var obj ast.Object
	var elems []*ast.Term
	for first := true; ; first = false {
		k, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.space()
		isItem := p.i < len(p.b) && p.b[p.i] == ':'
		if !first && isItem != (obj != nil) {
			return nil, errors.New("value text: an object and a set mixed")
		}
		if !isItem {
			elems = append(elems, ast.NewTerm(k))
		} else {
			p.i++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if obj == nil {
				obj = ast.NewObject()
			}
			kt := ast.NewTerm(k)
			if obj.Get(kt) != nil {
				return nil, errDupKey
			}
			obj.Insert(kt, ast.NewTerm(v))
		}
		end, err := p.next('}')
		if err != nil {
			return nil, err
		}
		if end {
			break
		}
	}
	if obj != nil {
		return obj, nil
	}
	return ast.NewSet(elems...), nil
}

// str reads a JSON string. Without escapes it is the bytes as they are.
func (p *valueParser) str() (string, error) {
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			return string(p.b[start:j]), nil
		case c == '\\':
			return p.escaped(start, j)
		case c < 0x20:
			return "", errors.New("value text: a control character in a string")
		}
	}
	return "", errValueEnd
}

// escaped reads the rest of a string that has an escape at j, decoding
// as encoding/json does (a lone surrogate becomes U+FFFD).
func (p *valueParser) escaped(start, j int) (string, error) {
	out := append([]byte(nil), p.b[start:j]...)
	for j < len(p.b) {
		c := p.b[j]
		switch {
		case c == '"':
			p.i = j + 1
			return string(out), nil
		case c < 0x20:
			return "", errors.New("value text: a control character in a string")
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(p.b) {
			return "", errValueEnd
		}
		e := p.b[j+1]
		j += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(p.b[j:])
			if !ok {
				return "", errors.New(`value text: bad \u escape`)
			}
			j += 4
			if r >= 0xd800 && r < 0xdc00 {
				if r2, ok := hex4(p.b[min(j+2, len(p.b)):]); ok && j+1 < len(p.b) && p.b[j] == '\\' && p.b[j+1] == 'u' && r2 >= 0xdc00 && r2 < 0xe000 {
					r = (r-0xd800)<<10 + (r2 - 0xdc00) + 0x10000
					j += 6
				} else {
					r = utf8.RuneError
				}
			} else if r >= 0xdc00 && r < 0xe000 {
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", fmt.Errorf("value text: bad escape \\%c", e)
		}
	}
	return "", errValueEnd
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// scanNumber reads a JSON number at the start of b.
func scanNumber(b []byte) (string, int, bool) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return "", 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return "", 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return "", 0, false
		}
	}
	return string(b[:i]), i, true
}
