package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"switchyard/gateway/config"
)

// MaxFunctionName is the longest function name OpenAI accepts.
const MaxFunctionName = 64

// MaxArguments bounds a tool call's arguments (their JSON).
const MaxArguments = 1 << 20

// FunctionName maps a server's tool to the function name the model sees:
// "<server>__<tool>", where each byte of the tool's name outside
// [a-zA-Z0-9_-] becomes '_', and a name that would be longer than 64 bytes
// is cut, its end replaced by '_' and 8 hex digits of the SHA-256 of the
// tool's name, so that it stays unique and the same from one listing to
// the next. Server names are checked by the config (letters, digits, '-'
// and '_', at most 32 bytes, no "__", not ending in '_'), so the first
// "__" of a function name always ends the server's name. It returns ""
// for an empty tool name.
//
// Two tools of one server can map to the same name ("a.b" and "a_b"):
// the registry refuses both rather than guess (see ToolSet).
func FunctionName(server, tool string) string {
	if tool == "" {
		return ""
	}
	b := make([]byte, 0, min(len(server)+len(config.ToolNameSeparator)+len(tool), MaxFunctionName))
	b = append(b, server...)
	b = append(b, config.ToolNameSeparator...)
	prefix := len(b)
	for i := 0; i < len(tool); i++ {
		c := tool[i]
		if !functionByte(c) {
			c = '_'
		}
		b = append(b, c)
	}
	if len(b) > MaxFunctionName {
		sum := sha256.Sum256([]byte(tool))
		keep := MaxFunctionName - 9
		if keep < prefix {
			keep = prefix // cannot happen with a valid server name
		}
		b = append(b[:keep], '_')
		b = hex.AppendEncode(b, sum[:4])
	}
	return string(b)
}

// functionByte says whether c may appear in an OpenAI function name.
func functionByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// ValidFunctionName says whether name is a usable OpenAI function name:
// 1 to 64 bytes of [a-zA-Z0-9_-].
func ValidFunctionName(name string) bool {
	if name == "" || len(name) > MaxFunctionName {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !functionByte(name[i]) {
			return false
		}
	}
	return true
}

// CheckArguments checks a tool call's arguments as the model wrote them
// (the "arguments" string of an OpenAI tool call) and returns them as the
// JSON object to send: empty or blank arguments are the empty object {}
// (models send "" for tools without parameters); anything else must be
// one JSON object, at most MaxArguments bytes. The error says what is
// wrong, for the model to correct.
func CheckArguments(args []byte) (json.RawMessage, error) {
	t := bytes.TrimSpace(args)
	if len(t) == 0 {
		return json.RawMessage("{}"), nil
	}
	if len(t) > MaxArguments {
		return nil, fmt.Errorf("arguments are %d bytes, more than the %d allowed", len(t), MaxArguments)
	}
	if t[0] != '{' {
		return nil, fmt.Errorf("arguments must be a JSON object, got %s", describeJSON(t))
	}
	if !json.Valid(t) {
		// Say where, so that the model can fix it.
		var v any
		err := json.Unmarshal(t, &v)
		if se, ok := err.(*json.SyntaxError); ok {
			return nil, fmt.Errorf("arguments are not valid JSON: %v (at byte %d)", se, se.Offset)
		}
		return nil, fmt.Errorf("arguments are not valid JSON: %v", err)
	}
	return json.RawMessage(t), nil
}

// describeJSON names the kind of JSON value that starts t.
func describeJSON(t []byte) string {
	switch c := t[0]; {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	}
	return "something that is not JSON"
}
