package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// apiError is an OpenAI-style error answer.
type apiError struct {
	status  int
	typ     string
	code    string
	param   string
	message string
}

func (e *apiError) Error() string { return e.message }

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{status: 400, typ: "invalid_request_error", code: "invalid_value", param: param, message: fmt.Sprintf(format, args...)}
}

// decodeJSON decodes a request body and maps decoding failures to 400s naming
// the field.
func decodeJSON(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("", "the request body is empty; want a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest(te.Field, "invalid type for %q: got JSON %s, want %s", te.Field, te.Value, jsonTypeName(te.Type.String()))
		}
		return badRequest("", "the request body is not valid JSON: %v", err)
	}
	return nil
}

func jsonTypeName(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "float64":
		return "a number"
	}
	return "another type (" + goType + ")"
}

// streamOptions is the stream_options object.
type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// chatRequest holds the fields of a chat completion request the simulator
// uses; all others are accepted and ignored.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	N                   *int            `json:"n"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	Tools               json.RawMessage `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  json.RawMessage `json:"tool_calls"`   // assistant
	ToolCallID string          `json:"tool_call_id"` // tool
}

type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// completionRequest holds the fields of a legacy completions request.
type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOptions  `json:"stream_options"`
	MaxTokens     *int            `json:"max_tokens"`
	N             *int            `json:"n"`
	Seed          *int64          `json:"seed"`
	Echo          bool            `json:"echo"`
}

// embeddingRequest holds the fields of an embeddings request.
type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
}

// textInput is one prompt or embeddings input: a text or token ids.
type textInput struct {
	text string
	ids  []int64
	isID bool
}

// parseTextInputs decodes a prompt or input field: a string, an array of
// strings, an array of token ids or an array of arrays of token ids.
func parseTextInputs(raw json.RawMessage, field string) ([]textInput, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, badRequest(field, "%q is required", field)
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest(field, "invalid %q: %v", field, err)
		}
		return []textInput{{text: s}}, nil
	case '[':
	default:
		return nil, badRequest(field, "invalid type for %q: want a string or an array", field)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, badRequest(field, "invalid %q: %v", field, err)
	}
	if len(items) == 0 {
		return nil, badRequest(field, "%q must not be empty", field)
	}
	first := bytes.TrimSpace(items[0])
	if len(first) > 0 && (first[0] == '-' || first[0] >= '0' && first[0] <= '9') {
		var ids []int64
		if err := json.Unmarshal(raw, &ids); err != nil {
			return nil, badRequest(field, "invalid %q: want an array of token ids: %v", field, err)
		}
		return []textInput{{ids: ids, isID: true}}, nil
	}
	out := make([]textInput, len(items))
	for i, it := range items {
		it = bytes.TrimSpace(it)
		if len(it) > 0 && it[0] == '[' {
			var ids []int64
			if err := json.Unmarshal(it, &ids); err != nil {
				return nil, badRequest(field, "invalid %s[%d]: want an array of token ids: %v", field, i, err)
			}
			out[i] = textInput{ids: ids, isID: true}
			continue
		}
		if err := json.Unmarshal(it, &out[i].text); err != nil {
			return nil, badRequest(field, "invalid %s[%d]: want a string: %v", field, i, err)
		}
	}
	return out, nil
}

// messageText calls f with each text of a chat message content: a string,
// null or an array of content parts (only text parts count).
func messageText(raw json.RawMessage, i int, f func(string)) *apiError {
	return contentText(raw, "messages", i, "content", chatTextPart, f)
}

func chatTextPart(typ string) bool { return typ == "text" }

// contentText calls f with each text of the content field list[i].key: a
// string, null or an array of content parts, of which those whose type isText
// accepts count.
func contentText(raw json.RawMessage, list string, i int, key string, isText func(string) bool, f func(string)) *apiError {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	field := func() string { return fmt.Sprintf("%s[%d].%s", list, i, key) }
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return badRequest(field(), "invalid %s: %v", field(), err)
		}
		f(s)
		return nil
	case '[':
		var parts []contentPart
		if err := json.Unmarshal(raw, &parts); err != nil {
			return badRequest(field(), "invalid %s: %v", field(), err)
		}
		for _, p := range parts {
			if isText(p.Type) {
				f(p.Text)
			}
		}
		return nil
	}
	return badRequest(field(), "invalid type for %s: want a string or an array of parts", field())
}

// outputLimit picks the token limit of a request: max_completion_tokens, else
// max_tokens, else the default (whose end counts as a natural stop).
func outputLimit(maxCompletion, maxTokens *int, def int) (limit int, explicit bool, err *apiError) {
	switch {
	case maxCompletion != nil:
		if *maxCompletion < 1 {
			return 0, false, badRequest("max_completion_tokens", "max_completion_tokens must be at least 1, got %d", *maxCompletion)
		}
		return *maxCompletion, true, nil
	case maxTokens != nil:
		if *maxTokens < 1 {
			return 0, false, badRequest("max_tokens", "max_tokens must be at least 1, got %d", *maxTokens)
		}
		return *maxTokens, true, nil
	}
	return def, false, nil
}

func choiceCount(n *int) (int, *apiError) {
	if n == nil {
		return 1, nil
	}
	if *n < 1 || *n > 128 {
		return 0, badRequest("n", "n must be in 1..128, got %d", *n)
	}
	return *n, nil
}
