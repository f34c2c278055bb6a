package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// The Responses API (POST /v1/responses, GET and DELETE /v1/responses/{id}).
// A response is generated like a chat completion with one choice: the same
// prompt rendering, engine, timing and faults. Only the wire format differs.

const responsesPrefix = "/v1/responses/"

// responseStoreBytes bounds the bytes of the stored responses, whatever
// their number.
const responseStoreBytes = 64 << 20

// responsesRequest holds the fields of a Responses API request the simulator
// uses or echoes; all others are accepted and ignored.
type responsesRequest struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input"`
	Instructions       *string         `json:"instructions"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	Stream             bool            `json:"stream"`
	Store              *bool           `json:"store"`
	Metadata           json.RawMessage `json:"metadata"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Temperature        *float64        `json:"temperature"`
	TopP               *float64        `json:"top_p"`
	ParallelToolCalls  *bool           `json:"parallel_tool_calls"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Tools              json.RawMessage `json:"tools"`
	Text               json.RawMessage `json:"text"`
	Truncation         *string         `json:"truncation"`
	User               *string         `json:"user"`
	SafetyIdentifier   *string         `json:"safety_identifier"`
	PromptCacheKey     *string         `json:"prompt_cache_key"`
	Background         *bool           `json:"background"`
}

// responsesItem is one element of an input list: a message (type "message"
// or none) or another item, of which only function calls and their outputs
// count toward the prompt.
type responsesItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	Output    json.RawMessage `json:"output"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	CallID    string          `json:"call_id"`
}

// respParams are the request values a response echoes, as JSON ready to be
// appended.
type respParams struct {
	instructions []byte // a JSON string or null
	maxOutput    []byte // a number or null
	prevID       []byte // a JSON string or null
	metadata     []byte // an object
	temperature  []byte
	topP         []byte
	parallel     bool
	toolChoice   []byte
	tools        []byte
	text         []byte
	truncation   []byte
	user         []byte // a JSON string, or nil to leave the field out
	safetyID     []byte
	cacheKey     []byte
	store        bool
	msgID        string
}

func (s *Server) responses(ctx *fasthttp.RequestCtx) {
	r, e := s.parseResponses(ctx.PostBody())
	if r != nil {
		r.resp.msgID = s.newID("msg_")
	}
	s.generate(ctx, r, e)
}

func (s *Server) parseResponses(body []byte) (*genRequest, *apiError) {
	var r responsesRequest
	if e := decodeJSON(body, &r); e != nil {
		return nil, e
	}
	if e := s.checkModel(r.Model, false); e != nil {
		return nil, e
	}
	if r.Background != nil && *r.Background {
		return nil, badRequest("background", "background responses are not supported by this server")
	}
	p := &respParams{store: r.Store == nil || *r.Store, parallel: r.ParallelToolCalls == nil || *r.ParallelToolCalls}
	if r.PreviousResponseID != nil {
		if *r.PreviousResponseID == "" {
			return nil, badRequest("previous_response_id", "previous_response_id must be a non-empty string")
		}
		p.prevID = appendJSONString(nil, *r.PreviousResponseID)
	}
	ts, e := responsesTools(&r)
	if e != nil {
		return nil, e
	}
	h := s.newHasher()
	addTools(&h, ts)
	if r.Instructions != nil {
		p.instructions = appendJSONString(nil, *r.Instructions)
		addMessage(&h, "system", *r.Instructions)
	}
	var conv respConv
	conv.wantText = ts != nil
	if e := addResponsesInput(&h, r.Input, r.PreviousResponseID != nil, &conv); e != nil {
		return nil, e
	}
	h.addToken(tokenAssistant)
	var ans *toolAnswer
	if ts != nil || conv.toolItems {
		ans = decideTools(ts, &conv.toolConv, h.all)
	}

	if p.metadata, e = metadataJSON(r.Metadata); e != nil {
		return nil, e
	}
	p.temperature, p.topP = []byte("1"), []byte("1")
	if r.Temperature != nil {
		if *r.Temperature < 0 || *r.Temperature > 2 {
			return nil, badRequest("temperature", "temperature must be in 0..2, got %v", *r.Temperature)
		}
		p.temperature = strconv.AppendFloat(nil, *r.Temperature, 'g', -1, 64)
	}
	if r.TopP != nil {
		if *r.TopP < 0 || *r.TopP > 1 {
			return nil, badRequest("top_p", "top_p must be in 0..1, got %v", *r.TopP)
		}
		p.topP = strconv.AppendFloat(nil, *r.TopP, 'g', -1, 64)
	}
	if p.tools, e = echoJSON(r.Tools, "tools", '[', `[]`); e != nil {
		return nil, e
	}
	if ts != nil {
		p.tools = completeFunctionTools(p.tools)
	}
	if p.toolChoice, e = echoJSON(r.ToolChoice, "tool_choice", 0, `"auto"`); e != nil {
		return nil, e
	}
	if p.text, e = echoJSON(r.Text, "text", '{', `{"format":{"type":"text"}}`); e != nil {
		return nil, e
	}
	p.truncation = []byte(`"disabled"`)
	if r.Truncation != nil {
		if *r.Truncation != "auto" && *r.Truncation != "disabled" {
			return nil, badRequest("truncation", "truncation must be auto or disabled, got %q", *r.Truncation)
		}
		p.truncation = appendJSONString(nil, *r.Truncation)
	}
	if r.User != nil {
		p.user = appendJSONString(nil, *r.User)
	}
	if r.SafetyIdentifier != nil {
		p.safetyID = appendJSONString(nil, *r.SafetyIdentifier)
	}
	if r.PromptCacheKey != nil {
		p.cacheKey = appendJSONString(nil, *r.PromptCacheKey)
	}

	limit, explicit := s.o.DefaultMaxTokens, false
	if r.MaxOutputTokens != nil {
		if *r.MaxOutputTokens < 1 {
			return nil, badRequest("max_output_tokens", "max_output_tokens must be at least 1, got %d", *r.MaxOutputTokens)
		}
		limit, explicit = *r.MaxOutputTokens, true
		p.maxOutput = strconv.AppendInt(nil, int64(limit), 10)
	}
	seqs, u, e := s.buildSeqs([]tokenHasher{h}, 1, limit, explicit, 0, "input", "max_output_tokens", ans)
	if e != nil {
		return nil, e
	}
	return &genRequest{chat: true, resp: p, model: r.Model, stream: r.Stream, seqs: seqs, usage: u, nPerPrompt: 1}, nil
}

// addMessage renders one message of the prompt as chat does:
// <role> content <end>.
func addMessage(h *tokenHasher, role, text string) {
	h.addToken(hashString("<|" + role + "|>"))
	h.addText(text)
	h.addToken(tokenEndOfMessage)
}

// respConv is what addResponsesInput gathers for the tool mode.
type respConv struct {
	toolConv
	wantText  bool // fill in lastUser (the request has tools)
	toolItems bool // the input has function_call or function_call_output items
}

// addResponsesInput renders the input field: a string (one user message) or
// a list of items. It may be absent only when a previous response is named.
// It checks the function calls and outputs of the input as OpenAI does
// (every call has an output; an output answers a call of the input, unless
// the calls are in the previous response) and gathers the conversation into
// conv.
func addResponsesInput(h *tokenHasher, raw json.RawMessage, hasPrevious bool, conv *respConv) *apiError {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		if hasPrevious {
			return nil
		}
		return badRequest("input", "%q is required", "input")
	}
	switch raw[0] {
	case '"':
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return badRequest("input", "invalid %q: %v", "input", err)
		}
		addMessage(h, "user", text)
		conv.lastUser = text
		return nil
	case '[':
	default:
		return badRequest("input", "invalid type for %q: want a string or an array of input items", "input")
	}
	var items []responsesItem
	if err := json.Unmarshal(raw, &items); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest("input", "invalid input item: %q must be %s", te.Field, jsonTypeName(te.Type.String()))
		}
		return badRequest("input", "invalid %q: %v", "input", err)
	}
	if len(items) == 0 && !hasPrevious {
		return badRequest("input", "%q must not be empty", "input")
	}
	lastUser := -1
	var names map[string]string // call_id -> name of the input's function calls
	var pending []string        // calls without an output yet
	prevCall := false
	for i, it := range items {
		switch it.Type {
		case "", "message":
			switch it.Role {
			case "user", "assistant", "system", "developer":
			case "":
				return badRequest(fmt.Sprintf("input[%d].role", i), "input[%d].role is required", i)
			default:
				return badRequest(fmt.Sprintf("input[%d].role", i), "input[%d].role must be user, assistant, system or developer, got %q", i, it.Role)
			}
			h.addToken(hashString("<|" + it.Role + "|>"))
			if e := contentText(it.Content, "input", i, "content", responsesTextPart, h.addText); e != nil {
				return e
			}
			h.addToken(tokenEndOfMessage)
			if it.Role == "user" {
				lastUser, conv.steps, conv.results = i, 0, nil
			}
		case "function_call":
			if it.CallID == "" {
				return badRequest(fmt.Sprintf("input[%d].call_id", i), "Missing required parameter: 'input[%d].call_id'.", i)
			}
			addMessage(h, "assistant", it.Name+" "+it.Arguments)
			if names == nil {
				names = make(map[string]string)
			}
			names[it.CallID] = it.Name
			pending = append(pending, it.CallID)
			if !prevCall {
				conv.steps++
			}
			conv.toolItems = true
		case "function_call_output":
			if it.CallID == "" {
				return badRequest(fmt.Sprintf("input[%d].call_id", i), "Missing required parameter: 'input[%d].call_id'.", i)
			}
			h.addToken(hashString("<|tool|>"))
			var out strings.Builder
			if e := contentText(it.Output, "input", i, "output", responsesTextPart, func(t string) {
				h.addText(t)
				if out.Len() > 0 {
					out.WriteByte('\n')
				}
				out.WriteString(t)
			}); e != nil {
				return e
			}
			h.addToken(tokenEndOfMessage)
			name, ok := names[it.CallID]
			if !ok {
				if !hasPrevious {
					return badRequest("input", "No tool call found for function call output with call_id %s.", it.CallID)
				}
				name = it.CallID // the call is in the previous response
			}
			for k, id := range pending {
				if id == it.CallID {
					pending = append(pending[:k], pending[k+1:]...)
					break
				}
			}
			conv.results = append(conv.results, toolResult{name: name, text: out.String()})
			conv.toolItems = true
		}
		prevCall = it.Type == "function_call"
	}
	if len(pending) > 0 {
		return badRequest("input", "No tool output found for function call %s.", pending[0])
	}
	if lastUser >= 0 && conv.wantText {
		var b strings.Builder
		_ = contentText(items[lastUser].Content, "input", lastUser, "content", responsesTextPart, func(t string) {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(t)
		})
		conv.lastUser = b.String()
	}
	return nil
}

// responsesTools reads the function tools, tool_choice and
// parallel_tool_calls of a Responses API request; nil when it offers no
// function tools.
func responsesTools(r *responsesRequest) (*toolSet, *apiError) {
	if !present(r.Tools) && !present(r.ToolChoice) {
		return nil, nil
	}
	tools, e := parseTools(r.Tools, true)
	if e != nil {
		return nil, e
	}
	ts := &toolSet{tools: tools, parallel: r.ParallelToolCalls == nil || *r.ParallelToolCalls}
	if e := parseToolChoice(r.ToolChoice, ts, true); e != nil {
		return nil, e
	}
	if len(tools) == 0 {
		return nil, nil
	}
	return ts, nil
}

// responsesTextPart reports whether a content part of that type is text that
// counts toward the prompt.
func responsesTextPart(typ string) bool {
	return typ == "input_text" || typ == "output_text" || typ == "text"
}

// metadataJSON checks the metadata field (at most 16 string pairs, keys of at
// most 64 and values of at most 512 characters) and encodes it with sorted
// keys; absent or null metadata is {}.
func metadataJSON(raw json.RawMessage) ([]byte, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return []byte("{}"), nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, badRequest("metadata", "invalid %q: want an object of string values: %v", "metadata", err)
	}
	if len(m) > 16 {
		return nil, badRequest("metadata", "metadata has %d pairs; at most 16 are allowed", len(m))
	}
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if utf8.RuneCountInString(k) > 64 || utf8.RuneCountInString(v) > 512 {
			return nil, badRequest("metadata", "metadata key %q: keys may have 64 and values 512 characters at most", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}'), nil
}

// echoJSON returns a request value to echo in the response, compacted so that
// it fits on one SSE data line, or def when it is absent or null. A non-zero
// kind is the first byte the value must have ('[' or '{').
func echoJSON(raw json.RawMessage, field string, kind byte, def string) ([]byte, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return []byte(def), nil
	}
	if kind != 0 && raw[0] != kind {
		want := "an array"
		if kind == '{' {
			want = "an object"
		}
		return nil, badRequest(field, "invalid type for %q: want %s", field, want)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, badRequest(field, "invalid %q: %v", field, err)
	}
	return b.Bytes(), nil
}

// completeFunctionTools fills in the parameters and strict fields that an
// echoed function tool lacks, with OpenAI's defaults (null and true): the
// specification's FunctionTool requires both. tools is a compacted array.
func completeFunctionTools(tools []byte) []byte {
	var items []json.RawMessage
	if json.Unmarshal(tools, &items) != nil {
		return tools
	}
	changed := false
	for i, it := range items {
		var t struct {
			Type       string          `json:"type"`
			Parameters json.RawMessage `json:"parameters"`
			Strict     json.RawMessage `json:"strict"`
		}
		if json.Unmarshal(it, &t) != nil || t.Type != "function" || t.Parameters != nil && t.Strict != nil {
			continue
		}
		b := bytes.Clone(it[:len(it)-1]) // without the closing brace
		if t.Parameters == nil {
			b = append(b, `,"parameters":null`...)
		}
		if t.Strict == nil {
			b = append(b, `,"strict":true`...)
		}
		items[i], changed = append(b, '}'), true
	}
	if !changed {
		return tools
	}
	b := []byte{'['}
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, ']')
}

// respState is how far a response is: in progress (no output yet), or done
// with its text.
type respState struct {
	done      bool
	text      []byte
	completed int64 // unix time, when done
}

// incomplete reports whether the response ran into max_output_tokens.
func (r *genRequest) incomplete() bool { return r.seqs[0].finish == "length" }

// appendResponsesBody appends the finished response object.
func (s *Server) appendResponsesBody(b []byte, r *genRequest, id string, created int64, text []byte) []byte {
	return appendResponseObject(b, r, id, created, respState{done: true, text: text, completed: time.Now().Unix()})
}

// appendResponseObject appends a Response object with every field the
// OpenAPI specification requires, in OpenAI's order.
func appendResponseObject(b []byte, r *genRequest, id string, created int64, st respState) []byte {
	p := r.resp
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"object":"response","created_at":`...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"status":`...)
	switch {
	case !st.done:
		b = append(b, `"in_progress","background":false,"completed_at":null`...)
	case r.incomplete():
		b = append(b, `"incomplete","background":false,"completed_at":null`...)
	default:
		b = append(b, `"completed","background":false,"completed_at":`...)
		b = strconv.AppendInt(b, st.completed, 10)
	}
	b = append(b, `,"error":null,"incomplete_details":`...)
	if st.done && r.incomplete() {
		b = append(b, `{"reason":"max_output_tokens"}`...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"instructions":`...)
	b = appendRaw(b, p.instructions)
	b = append(b, `,"max_output_tokens":`...)
	b = appendRaw(b, p.maxOutput)
	b = append(b, `,"max_tool_calls":null,"model":`...)
	b = appendJSONString(b, r.model)
	b = append(b, `,"output":[`...)
	if q := &r.seqs[0]; st.done && q.tool.hasCalls() {
		for k, c := range q.tool.cut(q.out) {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendFunctionCall(b, q.textSeed, k, c, callStatus(r, k, q.out))
		}
	} else if st.done {
		b = appendOutputMessage(b, p.msgID, messageStatus(r), st.text, true)
	}
	b = append(b, `],"parallel_tool_calls":`...)
	b = strconv.AppendBool(b, p.parallel)
	b = append(b, `,"previous_response_id":`...)
	b = appendRaw(b, p.prevID)
	b = append(b, `,"prompt_cache_key":`...)
	b = appendRaw(b, p.cacheKey)
	b = append(b, `,"reasoning":{"effort":null,"summary":null},"safety_identifier":`...)
	b = appendRaw(b, p.safetyID)
	b = append(b, `,"service_tier":"default","store":`...)
	b = strconv.AppendBool(b, p.store)
	b = append(b, `,"temperature":`...)
	b = append(b, p.temperature...)
	b = append(b, `,"text":`...)
	b = append(b, p.text...)
	b = append(b, `,"tool_choice":`...)
	b = append(b, p.toolChoice...)
	b = append(b, `,"tools":`...)
	b = append(b, p.tools...)
	b = append(b, `,"top_logprobs":0,"top_p":`...)
	b = append(b, p.topP...)
	b = append(b, `,"truncation":`...)
	b = append(b, p.truncation...)
	if st.done {
		b = append(b, `,"usage":`...)
		b = appendResponsesUsage(b, r.usage)
	}
	if p.user != nil {
		b = append(b, `,"user":`...)
		b = append(b, p.user...)
	}
	b = append(b, `,"metadata":`...)
	b = append(b, p.metadata...)
	return append(b, '}')
}

// appendRaw appends v, or null when v is nil.
func appendRaw(b, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return append(b, v...)
}

// messageStatus is the status of the finished output message: incomplete
// when it was cut at max_output_tokens, as OpenAI reports it.
func messageStatus(r *genRequest) string {
	if r.incomplete() {
		return "incomplete"
	}
	return "completed"
}

// appendOutputMessage appends the assistant message item; without a part it
// has no content yet (output_item.added).
func appendOutputMessage(b []byte, msgID, status string, text []byte, part bool) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, msgID)
	b = append(b, `,"type":"message","status":"`...)
	b = append(b, status...)
	b = append(b, `","content":[`...)
	if part {
		b = appendOutputText(b, text)
	}
	return append(b, `],"role":"assistant"}`...)
}

// callStatus is the status of function call k of a finished response whose
// calls took out tokens: incomplete for a call max_output_tokens cut.
func callStatus(r *genRequest, k, out int) string {
	if r.incomplete() && k == r.seqs[0].tool.toks[out-1].call {
		return "incomplete"
	}
	return "completed"
}

// appendFunctionCall appends function_call output item k: its id is "fc_"
// and the hex digits of its call_id.
func appendFunctionCall(b []byte, seed uint64, k int, c toolCall, status string) []byte {
	b = append(b, `{"id":"fc_`...)
	b = appendCallHex(b, seed, k)
	b = append(b, `","type":"function_call","status":"`...)
	b = append(b, status...)
	b = append(b, `","arguments":`...)
	b = appendJSONString(b, c.args)
	b = append(b, `,"call_id":"`...)
	b = callID(b, seed, k)
	b = append(b, `","name":`...)
	b = appendJSONString(b, c.name)
	return append(b, '}')
}

// appendOutputText appends an output_text content part.
func appendOutputText(b, text []byte) []byte {
	b = append(b, `{"type":"output_text","annotations":[],"logprobs":[],"text":`...)
	b = appendJSONString(b, string(text))
	return append(b, '}')
}

func appendResponsesUsage(b []byte, u usage) []byte {
	b = append(b, `{"input_tokens":`...)
	b = strconv.AppendInt(b, int64(u.prompt), 10)
	b = append(b, `,"input_tokens_details":{"cached_tokens":`...)
	b = strconv.AppendInt(b, int64(u.cached), 10)
	b = append(b, `,"cache_write_tokens":0},"output_tokens":`...)
	b = strconv.AppendInt(b, int64(u.completion), 10)
	b = append(b, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
	b = strconv.AppendInt(b, int64(u.prompt+u.completion), 10)
	return append(b, '}')
}

// sseEvents builds the typed events of a streamed response and numbers them.
type sseEvents struct {
	buf []byte
	seq int
}

// begin starts event typ: `event: typ`, then the data object up to and
// including its sequence_number; the caller appends the rest and calls end.
func (e *sseEvents) begin(typ string) {
	e.buf = append(e.buf, "event: "...)
	e.buf = append(e.buf, typ...)
	e.buf = append(e.buf, "\ndata: {\"type\":\""...)
	e.buf = append(e.buf, typ...)
	e.buf = append(e.buf, `","sequence_number":`...)
	e.buf = strconv.AppendInt(e.buf, int64(e.seq), 10)
	e.seq++
}

func (e *sseEvents) end() { e.buf = append(e.buf, "}\n\n"...) }

// part appends the item_id, output_index and content_index of the one text part.
func (e *sseEvents) part(msgID string) {
	e.buf = append(e.buf, `,"item_id":`...)
	e.buf = appendJSONString(e.buf, msgID)
	e.buf = append(e.buf, `,"output_index":0,"content_index":0`...)
}

func (e *sseEvents) flush(w *bufio.Writer) error {
	_, err := w.Write(e.buf)
	e.buf = e.buf[:0]
	if err != nil {
		return errClientGone
	}
	if err := w.Flush(); err != nil {
		return errClientGone
	}
	return nil
}

// streamResponses writes a streamed response as OpenAI does: created,
// in_progress, the message item and its part added (at admission, before the
// prefill), one output_text.delta per token, then the text, part and item
// done, and response.completed (response.incomplete when max_output_tokens
// cut it) with the whole response. There is no [DONE].
func (s *Server) streamResponses(w *bufio.Writer, r *genRequest, g *group, sl *sleeper, itlFactor float64, drop bool, id string, created int64) {
	p := r.resp
	var ev sseEvents
	ev.started(r, id, created)
	if r.seqs[0].tool.hasCalls() {
		s.streamFunctionCalls(w, &ev, r, g, sl, itlFactor, drop, id, created)
		return
	}
	ev.begin("response.output_item.added")
	ev.buf = append(ev.buf, `,"output_index":0,"item":`...)
	ev.buf = appendOutputMessage(ev.buf, p.msgID, "in_progress", nil, false)
	ev.end()
	ev.begin("response.content_part.added")
	ev.part(p.msgID)
	ev.buf = append(ev.buf, `,"part":`...)
	ev.buf = appendOutputText(ev.buf, nil)
	ev.end()
	if ev.flush(w) != nil {
		s.eng.release(g)
		return
	}

	gen := newSeqGen(&r.seqs[0])
	dropAt := -1
	if drop {
		dropAt = g.seqsMaxOut() / 2
	}
	var text []byte
	err := s.eng.run(s.ctx, g, sl, itlFactor, func(step int) error {
		if step == dropAt {
			_ = w.Flush()
			return errClientGone // the caller closes the connection
		}
		n := len(text)
		text = gen.next(text, step == 0)
		ev.begin("response.output_text.delta")
		ev.part(p.msgID)
		ev.buf = append(ev.buf, `,"delta":`...)
		ev.buf = appendJSONString(ev.buf, string(text[n:]))
		ev.buf = append(ev.buf, `,"logprobs":[]`...)
		ev.end()
		return ev.flush(w)
	})
	if err != nil {
		s.failed(w, &ev, err)
		return
	}
	r.usage.cached = cachedUsage(r, g)
	status := messageStatus(r)
	ev.begin("response.output_text.done")
	ev.part(p.msgID)
	ev.buf = append(ev.buf, `,"text":`...)
	ev.buf = appendJSONString(ev.buf, string(text))
	ev.buf = append(ev.buf, `,"logprobs":[]`...)
	ev.end()
	ev.begin("response.content_part.done")
	ev.part(p.msgID)
	ev.buf = append(ev.buf, `,"part":`...)
	ev.buf = appendOutputText(ev.buf, text)
	ev.end()
	ev.begin("response.output_item.done")
	ev.buf = append(ev.buf, `,"output_index":0,"item":`...)
	ev.buf = appendOutputMessage(ev.buf, p.msgID, status, text, true)
	ev.end()
	s.finished(w, &ev, r, id, created, text)
}

// started appends response.created and response.in_progress.
func (e *sseEvents) started(r *genRequest, id string, created int64) {
	for _, typ := range [...]string{"response.created", "response.in_progress"} {
		e.begin(typ)
		e.buf = append(e.buf, `,"response":`...)
		e.buf = appendResponseObject(e.buf, r, id, created, respState{})
		e.end()
	}
}

// failed ends a stream that the server's shutdown cut with an error event;
// a gone client gets nothing more.
func (s *Server) failed(w *bufio.Writer, ev *sseEvents, err error) {
	if !errors.Is(err, errClosed) {
		return
	}
	e := s.admissionError(err)
	ev.begin("error")
	ev.buf = append(ev.buf, `,"code":`...)
	ev.buf = appendJSONString(ev.buf, e.code)
	ev.buf = append(ev.buf, `,"message":`...)
	ev.buf = appendJSONString(ev.buf, e.message)
	ev.buf = append(ev.buf, `,"param":null`...)
	ev.end()
	_ = ev.flush(w)
}

// finished writes response.completed (response.incomplete when
// max_output_tokens cut it) with the whole response, and stores it.
func (s *Server) finished(w *bufio.Writer, ev *sseEvents, r *genRequest, id string, created int64, text []byte) {
	final := "response.completed"
	if r.incomplete() {
		final = "response.incomplete"
	}
	ev.begin(final)
	ev.buf = append(ev.buf, `,"response":`...)
	start := len(ev.buf)
	ev.buf = s.appendResponsesBody(ev.buf, r, id, created, text)
	s.keep(r, id, bytes.Clone(ev.buf[start:]))
	ev.end()
	_ = ev.flush(w)
}

// streamFunctionCalls streams an answer of function calls as OpenAI does:
// per call response.output_item.added (the function_call in_progress, with
// empty arguments) on its first token, one
// response.function_call_arguments.delta per token of its arguments, then
// response.function_call_arguments.done and response.output_item.done; the
// stream ends with response.completed (response.incomplete when
// max_output_tokens cut the calls).
func (s *Server) streamFunctionCalls(w *bufio.Writer, ev *sseEvents, r *genRequest, g *group, sl *sleeper, itlFactor float64, drop bool, id string, created int64) {
	q := &r.seqs[0]
	a := q.tool
	if ev.flush(w) != nil {
		s.eng.release(g)
		return
	}
	dropAt := -1
	if drop {
		dropAt = g.seqsMaxOut() / 2
	}
	var idb []byte
	itemID := func(k int) string {
		idb = append(idb[:0], "fc_"...)
		idb = appendCallHex(idb, q.textSeed, k)
		return string(idb)
	}
	done := func(k int, args, status string) {
		ev.begin("response.function_call_arguments.done")
		ev.buf = append(ev.buf, `,"item_id":`...)
		ev.buf = appendJSONString(ev.buf, itemID(k))
		ev.buf = append(ev.buf, `,"output_index":`...)
		ev.buf = strconv.AppendInt(ev.buf, int64(k), 10)
		ev.buf = append(ev.buf, `,"name":`...)
		ev.buf = appendJSONString(ev.buf, a.calls[k].name)
		ev.buf = append(ev.buf, `,"arguments":`...)
		ev.buf = appendJSONString(ev.buf, args)
		ev.end()
		ev.begin("response.output_item.done")
		ev.buf = append(ev.buf, `,"output_index":`...)
		ev.buf = strconv.AppendInt(ev.buf, int64(k), 10)
		ev.buf = append(ev.buf, `,"item":`...)
		ev.buf = appendFunctionCall(ev.buf, q.textSeed, k, toolCall{name: a.calls[k].name, args: args}, status)
		ev.end()
	}
	err := s.eng.run(s.ctx, g, sl, itlFactor, func(step int) error {
		if step == dropAt {
			_ = w.Flush()
			return errClientGone // the caller closes the connection
		}
		t := a.toks[step]
		if t.start < 0 {
			if t.call > 0 {
				done(t.call-1, a.calls[t.call-1].args, "completed")
			}
			ev.begin("response.output_item.added")
			ev.buf = append(ev.buf, `,"output_index":`...)
			ev.buf = strconv.AppendInt(ev.buf, int64(t.call), 10)
			ev.buf = append(ev.buf, `,"item":`...)
			ev.buf = appendFunctionCall(ev.buf, q.textSeed, t.call, toolCall{name: a.calls[t.call].name}, "in_progress")
			ev.end()
		} else {
			ev.begin("response.function_call_arguments.delta")
			ev.buf = append(ev.buf, `,"item_id":`...)
			ev.buf = appendJSONString(ev.buf, itemID(t.call))
			ev.buf = append(ev.buf, `,"output_index":`...)
			ev.buf = strconv.AppendInt(ev.buf, int64(t.call), 10)
			ev.buf = append(ev.buf, `,"delta":`...)
			ev.buf = appendJSONString(ev.buf, a.calls[t.call].args[t.start:t.end])
			ev.end()
		}
		return ev.flush(w)
	})
	if err != nil {
		s.failed(w, ev, err)
		return
	}
	r.usage.cached = cachedUsage(r, g)
	calls := a.cut(q.out)
	last := len(calls) - 1
	done(last, calls[last].args, callStatus(r, last, q.out))
	s.finished(w, ev, r, id, created, nil)
}

// keep stores a finished response for GET /v1/responses/{id} unless the
// request said store: false. body must not change afterwards.
func (s *Server) keep(r *genRequest, id string, body []byte) {
	if r.resp.store {
		s.store.put(id, body)
	}
}

func (s *Server) getResponse(ctx *fasthttp.RequestCtx, id string) {
	body, ok := s.store.get(id)
	if !ok {
		s.writeError(ctx, responseNotFound(id))
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

func (s *Server) deleteResponse(ctx *fasthttp.RequestCtx, id string) {
	if !s.store.delete(id) {
		s.writeError(ctx, responseNotFound(id))
		return
	}
	b := append([]byte(nil), `{"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"object":"response.deleted","deleted":true}`...)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func responseNotFound(id string) *apiError {
	return &apiError{status: 404, typ: "invalid_request_error", code: "not_found",
		message: fmt.Sprintf("response with id %q not found", id)}
}

// responseStore keeps the latest finished responses by id, at most n of them
// and at most maxBytes in all; the oldest are evicted first. It is safe for
// concurrent use.
type responseStore struct {
	n, maxBytes int

	mu    sync.Mutex
	m     map[string][]byte
	order []string // ring of ids in insertion order; deleted ids stay until evicted
	head  int      // index of the oldest id in order
	count int      // ids in order
	bytes int
}

func newResponseStore(n, maxBytes int) *responseStore {
	return &responseStore{n: n, maxBytes: maxBytes, m: make(map[string][]byte)}
}

func (st *responseStore) put(id string, body []byte) {
	if st.n == 0 || len(body) > st.maxBytes {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for st.count > 0 && (st.count >= st.n || st.bytes+len(body) > st.maxBytes) {
		old := st.order[st.head]
		st.order[st.head] = ""
		st.head = (st.head + 1) % len(st.order)
		st.count--
		if b, ok := st.m[old]; ok {
			st.bytes -= len(b)
			delete(st.m, old)
		}
	}
	if st.count == len(st.order) { // grow the ring up to n
		grown := make([]string, min(max(2*len(st.order), 64), st.n))
		for i := range st.count {
			grown[i] = st.order[(st.head+i)%len(st.order)]
		}
		st.order, st.head = grown, 0
	}
	st.order[(st.head+st.count)%len(st.order)] = id
	st.count++
	st.m[id] = body
	st.bytes += len(body)
}

func (st *responseStore) get(id string) ([]byte, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, ok := st.m[id]
	return b, ok
}

func (st *responseStore) delete(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, ok := st.m[id]
	if ok {
		st.bytes -= len(b)
		delete(st.m, id)
	}
	return ok
}

// len returns the number of stored responses.
func (st *responseStore) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.m)
}
