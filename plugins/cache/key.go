package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// The exact cache's key is a SHA-256 over the scope (tenant, route, model
// pool, operation) and the request in a canonical form: every top-level
// field except those that do not change the answer (ignored), objects with
// sorted keys, numbers in one spelling (0, 0.0 and 0e0 are the same), a
// message content of one text part as its plain string. Anything else that
// differs (a word, a tool, a response format, a sampling parameter, a seed,
// n, max_tokens) makes another key.

// ignored are the top-level request fields that never change the answer.
var ignored = map[string]bool{
	"model":             true, // the model pool is in the scope
	"stream":            true, // a cached answer replays as a stream when asked
	"stream_options":    true,
	"user":              true,
	"metadata":          true,
	"store":             true,
	"service_tier":      true,
	"request_id":        true,
	"prompt_cache_key":  true,
	"safety_identifier": true,
}

// maxCanonDepth bounds the nesting the canonical form follows.
const maxCanonDepth = 64

// errDepth: a body nested deeper than maxCanonDepth is not cached.
var errDepth = errors.New("cache: request nested too deeply to key")

// request is a decoded request body.
type request map[string]any

// parse decodes a request body.
func parse(body []byte) (request, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("cache: reading the request: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("cache: the request is not a JSON object")
	}
	for k := range m {
		if ignored[k] {
			delete(m, k)
		}
	}
	if msgs, ok := m["messages"].([]any); ok {
		for _, msg := range msgs {
			if mm, ok := msg.(map[string]any); ok {
				if c, ok := mm["content"]; ok {
					mm["content"] = flattenContent(c)
				}
			}
		}
	}
	return m, nil
}

// deterministic reports whether the request asks for a reproducible
// answer: temperature 0, or a seed.
func (r request) deterministic() bool {
	if s, ok := r["seed"]; ok && s != nil {
		return true
	}
	if t, ok := r["temperature"].(json.Number); ok {
		f, err := t.Float64()
		return err == nil && f == 0
	}
	return false
}

// canonical appends the request's canonical form to dst.
func (r request) canonical(dst []byte) ([]byte, error) {
	return appendCanon(dst, map[string]any(r), 0)
}

// lastUserTurn splits a chat request for the semantic cache: the text of
// its last message, which must be the user's and plain text, and the
// canonical form of everything else (system prompt, earlier turns, tools,
// parameters), which partitions the entries. ok is false for a request the
// semantic cache does not take.
func (r request) lastUserTurn(dst []byte) (context []byte, text string, ok bool) {
	msgs, _ := r["messages"].([]any)
	if len(msgs) == 0 {
		return dst, "", false
	}
	last, _ := msgs[len(msgs)-1].(map[string]any)
	if last == nil || last["role"] != "user" {
		return dst, "", false
	}
	text, isText := last["content"].(string)
	if !isText || text == "" || len(last) > 2 { // a name or other fields: exact only
		return dst, "", false
	}
	rest := make(map[string]any, len(r))
	for k, v := range r {
		rest[k] = v
	}
	rest["messages"] = msgs[:len(msgs)-1]
	out, err := appendCanon(dst, rest, 0)
	if err != nil {
		return dst, "", false
	}
	return out, text, true
}

// flattenContent turns a content array of one text part into its string,
// which the API treats alike.
func flattenContent(c any) any {
	parts, ok := c.([]any)
	if !ok || len(parts) != 1 {
		return c
	}
	p, ok := parts[0].(map[string]any)
	if !ok || len(p) != 2 || p["type"] != "text" {
		return c
	}
	if s, ok := p["text"].(string); ok {
		return s
	}
	return c
}

func appendCanon(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxCanonDepth {
		return dst, errDepth
	}
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, t), nil
	case string:
		b, _ := json.Marshal(t)
		return append(dst, b...), nil
	case json.Number:
		f, err := t.Float64()
		if err != nil || math.IsInf(f, 0) {
			return append(dst, t...), nil // out of float range: as written
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range t {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendCanon(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			b, _ := json.Marshal(k)
			dst = append(append(dst, b...), ':')
			var err error
			if dst, err = appendCanon(dst, t[k], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	return dst, fmt.Errorf("cache: unexpected JSON value %T", v)
}

// scope is what partitions the cache: no entry is ever found under another
// scope.
type scope struct {
	Owner string // "tenant:<name>", "key:<id>" or "global"
	Route string
	Pool  string
	Op    string
	Epoch uint64 // bumped by a purge of the owner or the route
}

// scopeBytes appends sc's parts to dst, length-prefixed so that no two
// scopes read alike.
func (sc scope) append(dst []byte) []byte {
	for _, s := range []string{sc.Owner, sc.Route, sc.Pool, sc.Op} {
		dst = strconv.AppendInt(dst, int64(len(s)), 10)
		dst = append(append(dst, ':'), s...)
	}
	dst = strconv.AppendUint(dst, sc.Epoch, 10)
	return append(dst, '|')
}

// keyOf returns the exact cache's key for a request under sc.
func keyOf(sc scope, r request, buf []byte) (string, []byte, error) {
	buf = sc.append(buf[:0])
	buf, err := r.canonical(buf)
	if err != nil {
		return "", buf, err
	}
	sum := sha256.Sum256(buf)
	return string(sum[:]), buf, nil
}

// partitionOf returns the semantic partition of a chat request under sc
// and its last user turn; ok is false when the semantic cache does not
// take the request.
func partitionOf(sc scope, r request, buf []byte) (part [32]byte, text string, ok bool) {
	buf = sc.append(buf[:0])
	buf, text, ok = r.lastUserTurn(buf)
	if !ok {
		return part, "", false
	}
	return sha256.Sum256(buf), text, true
}
