package sse

import (
	"bytes"

	"switchyard/internal/jsonscan"
)

var (
	usageKey      = []byte(`"usage"`)
	unicodeEscape = []byte(`\u`)
)

// Done is the data payload of OpenAI's final stream event.
const Done = "[DONE]"

// IsDone reports whether data is the "[DONE]" sentinel that ends an OpenAI
// stream.
func IsDone(data []byte) bool { return string(data) == Done }

// AppendEvent appends data framed as one event, "data: " + data + "\n\n", to
// dst. A payload with line breaks becomes one data line per line, so the
// receiver rebuilds it with "\n" separators.
func AppendEvent(dst, data []byte) []byte {
	dst = append(dst, "data: "...)
	if bytes.IndexByte(data, '\n') < 0 && bytes.IndexByte(data, '\r') < 0 {
		dst = append(dst, data...)
		return append(dst, '\n', '\n')
	}
	start := 0
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c != '\n' && c != '\r' {
			continue
		}
		dst = append(dst, data[start:i]...)
		dst = append(dst, "\ndata: "...)
		if c == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		start = i + 1
	}
	dst = append(dst, data[start:]...)
	return append(dst, '\n', '\n')
}

// AppendDone appends the "data: [DONE]\n\n" event to dst.
func AppendDone(dst []byte) []byte { return append(dst, "data: [DONE]\n\n"...) }

// AppendErrorEvent appends an OpenAI-style error event to dst:
//
//	data: {"error":{"message":...,"type":...,"param":null,"code":...}}
//
// followed by a blank line. An empty code is written as null.
func AppendErrorEvent(dst []byte, message, typ, code string) []byte {
	dst = append(dst, `data: {"error":{"message":`...)
	dst = jsonscan.AppendString(dst, message)
	dst = append(dst, `,"type":`...)
	dst = jsonscan.AppendString(dst, typ)
	dst = append(dst, `,"param":null,"code":`...)
	if code == "" {
		dst = append(dst, "null"...)
	} else {
		dst = jsonscan.AppendString(dst, code)
	}
	return append(dst, "}}\n\n"...)
}

// ScanUsage reads the token counts of a chunk's top-level "usage" object,
// {"prompt_tokens":N,"completion_tokens":M,...}. ok is false when data is not
// a JSON object, has no usage, or its usage is null or lacks either count.
// It allocates nothing.
func ScanUsage(data []byte) (prompt, completion int64, ok bool) {
	// Fast path: without the plain key or any \u escape (which could spell
	// it), there is no usage to find.
	escaped := bytes.Contains(data, unicodeEscape)
	i := bytes.Index(data, usageKey)
	if i < 0 && !escaped {
		return 0, 0, false
	}
	// Fast path for streams with include_usage, where every chunk but the
	// last carries "usage":null: one key, followed by null.
	if i >= 0 && !escaped && bytes.Index(data[i+len(usageKey):], usageKey) < 0 {
		j := skipSpace(data, i+len(usageKey))
		if j < len(data) && data[j] == ':' {
			if j = skipSpace(data, j+1); j < len(data) && data[j] == 'n' {
				return 0, 0, false
			}
		}
	}
	usage, found := jsonscan.Lookup(data, "usage")
	if !found || len(usage) == 0 || usage[0] != '{' {
		return 0, 0, false
	}
	p, okP := jsonscan.Lookup(usage, "prompt_tokens")
	c, okC := jsonscan.Lookup(usage, "completion_tokens")
	if !okP || !okC {
		return 0, 0, false
	}
	if prompt, okP = jsonscan.ParseInt(p); !okP {
		return 0, 0, false
	}
	if completion, okC = jsonscan.ParseInt(c); !okC {
		return 0, 0, false
	}
	return prompt, completion, true
}

// ScanCachedTokens reads usage.prompt_tokens_details.cached_tokens of a
// chunk or body that has a usage object (0 when absent). Call it after
// ScanUsage found the usage: it looks the object up again.
func ScanCachedTokens(data []byte) int64 {
	usage, ok := jsonscan.Lookup(data, "usage")
	if !ok || len(usage) == 0 || usage[0] != '{' {
		return 0
	}
	d, ok := jsonscan.Lookup(usage, "prompt_tokens_details")
	if !ok || len(d) == 0 || d[0] != '{' {
		return 0
	}
	v, ok := jsonscan.Lookup(d, "cached_tokens")
	if !ok {
		return 0
	}
	n, ok := jsonscan.ParseInt(v)
	if !ok || n < 0 {
		return 0
	}
	return n
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
