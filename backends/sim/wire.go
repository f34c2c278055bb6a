package sim

import (
	"strconv"
	"switchyard/internal/jsonscan"
)

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte { return jsonscan.AppendString(dst, s) }

// appendHead appends `{"id":ID,"object":OBJ,"created":N,"model":M` (no closing brace).
func appendHead(dst []byte, id, object string, created int64, model string) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, id)
	dst = append(dst, `,"object":"`...)
	dst = append(dst, object...)
	dst = append(dst, `","created":`...)
	dst = strconv.AppendInt(dst, created, 10)
	dst = append(dst, `,"model":`...)
	return appendJSONString(dst, model)
}

// usage is a request's token accounting.
type usage struct {
	prompt, completion, cached int
}

func appendUsage(dst []byte, u usage, details bool) []byte {
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.prompt), 10)
	if u.completion >= 0 {
		dst = append(dst, `,"completion_tokens":`...)
		dst = strconv.AppendInt(dst, int64(u.completion), 10)
	}
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.prompt+max(u.completion, 0)), 10)
	if details {
		dst = append(dst, `,"prompt_tokens_details":{"cached_tokens":`...)
		dst = strconv.AppendInt(dst, int64(u.cached), 10)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendError appends an OpenAI error body.
func appendError(dst []byte, e *apiError) []byte {
	dst = append(dst, `{"error":{"message":`...)
	dst = appendJSONString(dst, e.message)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, e.typ)
	dst = append(dst, `,"param":`...)
	if e.param == "" {
		dst = append(dst, "null"...)
	} else {
		dst = appendJSONString(dst, e.param)
	}
	dst = append(dst, `,"code":`...)
	if e.code == "" {
		dst = append(dst, "null"...)
	} else {
		dst = appendJSONString(dst, e.code)
	}
	return append(dst, "}}"...)
}
