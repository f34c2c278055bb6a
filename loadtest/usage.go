package loadtest

import "bytes"

// Usage is the token usage reported by the server.
type Usage struct {
	PromptTokens     int64
	CompletionTokens int64
	// CachedTokens is prompt_tokens_details.cached_tokens: the prompt
	// tokens the server found in its prefix cache (vLLM, the simulator,
	// OpenAI). 0 when absent.
	CachedTokens int64
}

// scanUsage finds the last non-null "usage" object in an OpenAI response or
// chunk and reads prompt_tokens and completion_tokens from it, without
// decoding the document. Keys inside JSON strings cannot match because their
// quotes are escaped there.
func scanUsage(b []byte) (u Usage, ok bool) {
	for {
		i := bytes.Index(b, []byte(`"usage"`))
		if i < 0 {
			return u, ok
		}
		b = b[i+len(`"usage"`):]
		v := skipSpace(b)
		if len(v) == 0 || v[0] != ':' {
			continue
		}
		v = skipSpace(v[1:])
		if len(v) == 0 || v[0] != '{' {
			continue
		}
		obj := v[:objectEnd(v)]
		p, pok := intField(obj, "prompt_tokens")
		c, cok := intField(obj, "completion_tokens")
		if pok || cok {
			u, ok = Usage{PromptTokens: p, CompletionTokens: c}, true
			if d, dok := findKey(obj, "prompt_tokens_details"); dok && len(d) > 0 && d[0] == '{' {
				u.CachedTokens, _ = intField(d[:objectEnd(d)], "cached_tokens")
			}
		}
		b = v[len(obj):]
	}
}

// objectEnd returns the length of the JSON object at the start of b ('{'
// first), or len(b) if it is not closed.
func objectEnd(b []byte) int {
	depth := 0
	inStr := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return len(b)
}

// findKey finds the first `"key"` followed by ':' in b and returns what
// follows the colon, leading space skipped.
func findKey(b []byte, key string) ([]byte, bool) {
	for {
		i := bytes.Index(b, []byte(key))
		if i < 0 {
			return nil, false
		}
		if i > 0 && b[i-1] == '"' && i+len(key) < len(b) && b[i+len(key)] == '"' {
			v := skipSpace(b[i+len(key)+1:])
			if len(v) > 0 && v[0] == ':' {
				return skipSpace(v[1:]), true
			}
		}
		b = b[i+len(key):]
	}
}

// intField reads a non-negative integer value of key in b.
func intField(b []byte, key string) (int64, bool) {
	v, ok := findKey(b, key)
	if !ok {
		return 0, false
	}
	var n int64
	i := 0
	for ; i < len(v) && v[i] >= '0' && v[i] <= '9' && i < 18; i++ {
		n = n*10 + int64(v[i]-'0')
	}
	return n, i > 0
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}
