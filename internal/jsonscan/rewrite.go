package jsonscan

import "unicode/utf8"

// Set appends to dst the JSON object body with its top-level key set to
// rawValue, which must be valid JSON, and returns the extended slice. The
// first occurrence of key keeps its place and gets the new value; later
// duplicates are removed. A missing key is added as the last member. All other
// bytes of body are copied unchanged.
//
// body must be a valid JSON object (Scan accepted it); otherwise Set appends
// body unchanged.
func Set(dst, body []byte, key string, rawValue []byte) []byte {
	return rewrite(dst, body, key, rawValue, true)
}

// Delete appends to dst the JSON object body without any top-level member
// named key and returns the extended slice. Commas are fixed up; everything
// else is copied unchanged. body must be a valid JSON object; otherwise Delete
// appends body unchanged.
func Delete(dst, body []byte, key string) []byte {
	return rewrite(dst, body, key, nil, false)
}

func rewrite(dst, body []byte, key string, rawValue []byte, set bool) []byte {
	n := len(dst)
	it, err := openObject(body, skipWS(body, 0), 1)
	if err != nil {
		return append(dst, body...)
	}
	// Output: everything up to the first member, then kept members joined by
	// the separator (",ws") that preceded them in body, then the tail.
	open := it.i // just past '{'
	dst = append(dst, body[:open]...)
	kept, replaced := 0, false
	prevEnd := it.i // end of the previous member's value, or just past '{'
	for {
		m, ok, err := it.next()
		if err != nil {
			return append(dst[:n], body...)
		}
		if !ok {
			break
		}
		drop := m.keyIs(key)
		if drop && set && !replaced {
			replaced, drop = true, false
			dst = appendSep(dst, body, prevEnd, m.start, kept, open)
			dst = append(dst, body[m.start:m.valStart]...)
			dst = append(dst, rawValue...)
			kept++
		} else if !drop {
			dst = appendSep(dst, body, prevEnd, m.start, kept, open)
			dst = append(dst, body[m.start:m.valEnd]...)
			kept++
		}
		prevEnd = m.valEnd
	}
	if skipWS(body, it.i) != len(body) {
		return append(dst[:n], body...)
	}
	if set && !replaced {
		if kept > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, key)
		dst = append(dst, ':')
		dst = append(dst, rawValue...)
	}
	// Whitespace between the last member and '}', then the rest.
	return append(dst, body[prevEnd:]...)
}

// appendSep writes what goes before a kept member: the original separator
// (or, for the first member of body, the whitespace after '{'), without its
// comma when no member was kept before this one.
func appendSep(dst, body []byte, prevEnd, start, kept, open int) []byte {
	if kept == 0 && prevEnd != open {
		// Skip the comma: the members before this one were all dropped.
		i := prevEnd
		for i < start && body[i] != ',' {
			i++
		}
		return append(dst, body[i+1:start]...)
	}
	return append(dst, body[prevEnd:start]...)
}

func validObject(b []byte) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	end, err := skipValue(b, i, 0)
	return err == nil && skipWS(b, end) == len(b)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s to dst as a JSON string, quoted and escaped.
// Invalid UTF-8 becomes U+FFFD, so the result is always valid UTF-8.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
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
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
