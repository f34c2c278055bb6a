package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The tool-calling mode (docs/simulator.md, "Tool calling"). A request with
// function tools whose last user message asks for calls, in lines
//
//	call <name> [<JSON arguments>]
//	then call <name> [<JSON arguments>]   (a later step)
//
// is answered with those calls; after their results (tool messages, or
// function_call_output items) the answer is text that quotes them. All of
// it is deterministic: the call ids and generated arguments are drawn from
// the prompt, so the same conversation gets the same answer.

// maxTools is OpenAI's limit on the tools of a request.
const maxTools = 128

// maxToolNameLen is OpenAI's limit on a function name.
const maxToolNameLen = 64

// toolDef is one function tool of a request.
type toolDef struct {
	name   string
	desc   string
	params []byte      // the parameters schema, compacted; nil when absent
	schema *jsonSchema // params decoded; nil when absent
}

// toolSet is the function tools a request offers and how it lets the model
// use them (tool_choice, parallel_tool_calls).
type toolSet struct {
	tools    []toolDef
	mode     string   // "none", "auto", "required" or "function" (call forced)
	forced   string   // the function of mode "function"
	allowed  []string // allowed_tools: the names that may be called; nil for all
	parallel bool     // several calls in one turn (parallel_tool_calls, default true)
}

func (ts *toolSet) find(name string) *toolDef {
	for i := range ts.tools {
		if ts.tools[i].name == name {
			return &ts.tools[i]
		}
	}
	return nil
}

// callable returns the tool the model may call by that name, or nil.
func (ts *toolSet) callable(name string) *toolDef {
	t := ts.find(name)
	if t == nil || ts.allowed == nil {
		return t
	}
	for _, a := range ts.allowed {
		if a == name {
			return t
		}
	}
	return nil
}

// firstCallable returns the first tool the model may call, or nil.
func (ts *toolSet) firstCallable() *toolDef {
	for i := range ts.tools {
		if t := ts.callable(ts.tools[i].name); t != nil {
			return t
		}
	}
	return nil
}

// refusal is the sentence the answer starts with when the prompt asks for a
// tool the model may not call.
func (ts *toolSet) refusal(name string) string {
	if ts.find(name) != nil {
		return "I cannot call " + name + ": it is not among the allowed tools."
	}
	return "I cannot call " + name + ": there is no such tool."
}

// addTools renders the tools into the prompt, before the messages, as chat
// templates put them into the system prompt: <tools> name description
// parameters ... <end>.
func addTools(h *tokenHasher, ts *toolSet) {
	if ts == nil || len(ts.tools) == 0 {
		return
	}
	h.addToken(tokenTools)
	for i := range ts.tools {
		t := &ts.tools[i]
		h.addText(t.name)
		h.addText(t.desc)
		h.addText(string(t.params))
	}
	h.addToken(tokenEndOfMessage)
}

var tokenTools = hashString("<|tools|>")

// checkToolName checks a function name as OpenAI does.
func checkToolName(param, name string) *apiError {
	if name == "" {
		return badRequest(param, "Missing required parameter: '%s'.", param)
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return badRequest(param, "Invalid '%s': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.", param)
		}
	}
	if len(name) > maxToolNameLen {
		return badRequest(param, "Invalid '%s': string too long. Expected a string with maximum length %d, but got a string with length %d instead.", param, maxToolNameLen, len(name))
	}
	return nil
}

func isNameByte(c byte) bool { return isWordByte(c) || c == '_' || c == '-' }

// present reports whether a raw field was given and is not null.
func present(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// jsonKind names the JSON type of a raw value for error messages.
func jsonKind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// decodeField decodes raw into v, mapping failures to a 400 naming the field
// under param.
func decodeField(raw []byte, v any, param string) *apiError {
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			p := param + "." + te.Field
			return badRequest(p, "Invalid type for '%s': expected %s, but got JSON %s instead.", p, jsonTypeName(te.Type.String()), te.Value)
		}
		return badRequest(param, "Invalid '%s': %v", param, err)
	}
	return nil
}

// parseTools decodes the tools of a request. Chat tools are
// {"type": "function", "function": {"name", "description", "parameters"}};
// Responses API tools are flat, {"type": "function", "name", ...}, and tools of
// other types (hosted tools) are accepted there and never called.
func parseTools(raw json.RawMessage, responses bool) ([]toolDef, *apiError) {
	if !present(raw) {
		return nil, nil
	}
	raw = bytes.TrimSpace(raw)
	if raw[0] != '[' {
		return nil, badRequest("tools", "Invalid type for 'tools': expected an array, but got %s instead.", jsonKind(raw))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, badRequest("tools", "Invalid 'tools': %v", err)
	}
	if len(items) > maxTools {
		return nil, badRequest("tools", "Invalid 'tools': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", maxTools, len(items))
	}
	tools := make([]toolDef, 0, len(items))
	for i, it := range items {
		param := fmt.Sprintf("tools[%d]", i)
		if bytes.TrimSpace(it)[0] != '{' {
			return nil, badRequest(param, "Invalid type for '%s': expected an object, but got %s instead.", param, jsonKind(it))
		}
		var w struct {
			Type        string          `json:"type"`
			Name        *string         `json:"name"`
			Description *string         `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
			Function    *struct {
				Name        *string         `json:"name"`
				Description *string         `json:"description"`
				Parameters  json.RawMessage `json:"parameters"`
			} `json:"function"`
		}
		if e := decodeField(it, &w, param); e != nil {
			return nil, e
		}
		if w.Type == "" {
			return nil, badRequest(param+".type", "Missing required parameter: '%s.type'.", param)
		}
		if w.Type != "function" {
			if responses {
				continue
			}
			return nil, badRequest(param+".type", "Invalid value for '%s.type': this server supports function tools only, got %q.", param, w.Type)
		}
		name, desc, params, at := w.Name, w.Description, w.Parameters, param
		if !responses {
			if w.Function == nil {
				return nil, badRequest(param+".function", "Missing required parameter: '%s.function'.", param)
			}
			name, desc, params, at = w.Function.Name, w.Function.Description, w.Function.Parameters, param+".function"
		}
		t := toolDef{}
		if name != nil {
			t.name = *name
		}
		if e := checkToolName(at+".name", t.name); e != nil {
			return nil, e
		}
		if desc != nil {
			t.desc = *desc
		}
		var e *apiError
		if t.params, t.schema, e = parseParameters(params, at+".parameters", t.name); e != nil {
			return nil, e
		}
		tools = append(tools, t)
	}
	return tools, nil
}

// parseToolChoice reads tool_choice into ts: "none", "auto", "required", a
// named function ({"type": "function", "function": {"name"}} in chat,
// {"type": "function", "name"} in the Responses API) or allowed_tools. In
// the Responses API other types (hosted tools) mean no function call.
func parseToolChoice(raw json.RawMessage, ts *toolSet, responses bool) *apiError {
	ts.mode = "auto"
	if !present(raw) {
		return nil
	}
	raw = bytes.TrimSpace(raw)
	if len(ts.tools) == 0 && !responses && !bytes.Equal(raw, []byte(`"none"`)) {
		return badRequest("tool_choice", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return badRequest("tool_choice", "Invalid 'tool_choice': %v", err)
		}
		switch s {
		case "none", "auto", "required":
			ts.mode = s
			return nil
		}
		return badRequest("tool_choice", "Invalid value: '%s'. Supported values are: 'none', 'auto', and 'required'.", s)
	}
	if raw[0] != '{' {
		return badRequest("tool_choice", "Invalid type for 'tool_choice': expected a string or an object, but got %s instead.", jsonKind(raw))
	}
	type named struct {
		Type     string `json:"type"`
		Name     string `json:"name"`
		Function *struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	var w struct {
		named
		Mode         string  `json:"mode"`
		Tools        []named `json:"tools"`
		AllowedTools *struct {
			Mode  string  `json:"mode"`
			Tools []named `json:"tools"`
		} `json:"allowed_tools"`
	}
	if e := decodeField(raw, &w, "tool_choice"); e != nil {
		return e
	}
	nameOf := func(n named) string {
		if !responses && n.Function != nil {
			return n.Function.Name
		}
		return n.Name
	}
	switch w.Type {
	case "function":
		name := nameOf(w.named)
		if name == "" {
			p := "tool_choice.function.name"
			if responses {
				p = "tool_choice.name"
			}
			return badRequest(p, "Missing required parameter: '%s'.", p)
		}
		if ts.find(name) == nil {
			return badRequest("tool_choice", "Invalid value for 'tool_choice': function %q is not among the tools.", name)
		}
		ts.mode, ts.forced = "function", name
		return nil
	case "allowed_tools":
		mode, list := w.Mode, w.Tools
		if !responses {
			if w.AllowedTools == nil {
				return badRequest("tool_choice.allowed_tools", "Missing required parameter: 'tool_choice.allowed_tools'.")
			}
			mode, list = w.AllowedTools.Mode, w.AllowedTools.Tools
		}
		if mode != "auto" && mode != "required" {
			return badRequest("tool_choice", "Invalid value for the allowed tools' mode: %q. Supported values are: 'auto' and 'required'.", mode)
		}
		ts.mode, ts.allowed = mode, []string{}
		for _, n := range list {
			if n.Type != "function" {
				continue
			}
			name := nameOf(n)
			if ts.find(name) == nil {
				return badRequest("tool_choice", "Invalid value for 'tool_choice': allowed function %q is not among the tools.", name)
			}
			ts.allowed = append(ts.allowed, name)
		}
		return nil
	case "":
		return badRequest("tool_choice.type", "Missing required parameter: 'tool_choice.type'.")
	}
	if responses {
		ts.mode = "none" // a hosted tool: no function call
		return nil
	}
	return badRequest("tool_choice.type", "Invalid value for 'tool_choice.type': this server supports function tools only, got %q.", w.Type)
}

// toolCall is a call the model makes: its name and the arguments (a JSON
// text, or what the prompt gave verbatim).
type toolCall struct {
	name, args string
}

// callTok is one generated token of the calls: the first token of a call
// (start < 0) carries its id and name, the others a piece of its
// arguments, args[start:end].
type callTok struct {
	call       int
	start, end int
}

// toolAnswer is what the tool mode answers instead of plain pseudo-text: the
// calls to make, or else lead, the text the answer starts with (refusals,
// then quotes of the tool results), followed by the usual pseudo-text. It
// is shared, read-only, by the sequences (choices) of a request.
type toolAnswer struct {
	calls []toolCall
	toks  []callTok
	lead  string
}

// hasCalls reports whether the answer is tool calls.
func (a *toolAnswer) hasCalls() bool { return a != nil && len(a.calls) > 0 }

// tokens is the number of tokens the calls take: one per call for its start
// (the name) plus the tokens of its arguments.
func (a *toolAnswer) tokens() int { return len(a.toks) }

func (a *toolAnswer) tokenize() {
	a.toks = a.toks[:0]
	for k, c := range a.calls {
		a.toks = append(a.toks, callTok{call: k, start: -1})
		for i := 0; i < len(c.args); {
			j := i + nextTokenEnd(c.args[i:])
			if strings.TrimSpace(c.args[j:]) == "" {
				j = len(c.args) // trailing space joins the last piece
			}
			a.toks = append(a.toks, callTok{call: k, start: i, end: j})
			i = j
		}
	}
}

// cut returns, for the first out tokens of the calls, the calls begun and
// how much of each one's arguments was generated.
func (a *toolAnswer) cut(out int) []toolCall {
	out = min(out, len(a.toks))
	if out == 0 {
		return nil
	}
	n := a.toks[out-1].call + 1
	calls := make([]toolCall, n)
	copy(calls, a.calls[:n])
	last := a.toks[out-1]
	if last.start < 0 {
		calls[n-1].args = ""
	} else {
		calls[n-1].args = calls[n-1].args[:last.end]
	}
	return calls
}

// callID appends the id of call k of a sequence: "call_" and 24 hex digits
// drawn from the sequence's seed, so the same conversation gets the same ids.
func callID(dst []byte, seed uint64, k int) []byte {
	return appendCallHex(append(dst, "call_"...), seed, k)
}

// appendCallHex appends the 24 hex digits of call k's id.
func appendCallHex(dst []byte, seed uint64, k int) []byte {
	r := splitmix64(seed ^ uint64(k+1)*0xD1B54A32D192ED03)
	x, y := r.next(), r.next()
	for i := range 8 {
		c := byte(x >> (8 * i))
		dst = append(dst, hexDigits[c>>4], hexDigits[c&15])
	}
	for i := range 4 {
		c := byte(y >> (8 * i))
		dst = append(dst, hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

// nextTokenEnd returns the length of s's first token under the simulator's
// tokenizer, with the whitespace before it; len(s) when s is only
// whitespace.
func nextTokenEnd(s string) int {
	i := 0
	for i < len(s) && isSpaceByte(s[i]) {
		i++
	}
	if i == len(s) {
		return i
	}
	if isWordByte(s[i]) {
		j := i
		for j < len(s) && j-i < maxWordTokenLen && isWordByte(s[j]) {
			j++
		}
		return j
	}
	_, n := utf8.DecodeRuneInString(s[i:])
	return i + n
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'
}

// callLine is one line of a prompt that asks for a tool call.
type callLine struct {
	name string
	args string // as written, trimmed; "" to generate them from the schema
	then bool   // the line began with "then": the call is a later step
}

// parseCallLine parses "call <name> [<args>]" or "then call <name> [<args>]",
// with optional leading and trailing whitespace. The name is a run of
// letters, digits, '_' and '-'; the arguments, if any, are the rest of the
// line and must begin with '{'. ok is false for any other line.
func parseCallLine(line string) (c callLine, ok bool) {
	s := strings.TrimLeft(line, " \t")
	if rest, found := cutWord(s, "then"); found {
		c.then = true
		s = rest
	}
	s, found := cutWord(s, "call")
	if !found {
		return callLine{}, false
	}
	n := 0
	for n < len(s) && isNameByte(s[n]) {
		n++
	}
	if n == 0 {
		return callLine{}, false
	}
	c.name = s[:n]
	c.args = strings.TrimSpace(s[n:])
	if c.args != "" && c.args[0] != '{' {
		return callLine{}, false
	}
	return c, true
}

// cutWord cuts word and the blanks after it off s; the word must be
// followed by at least one blank.
func cutWord(s, word string) (string, bool) {
	if len(s) <= len(word) || s[:len(word)] != word || s[len(word)] != ' ' && s[len(word)] != '\t' {
		return s, false
	}
	return strings.TrimLeft(s[len(word):], " \t"), true
}

// callSteps splits the call lines of a prompt into steps, the calls of one
// model turn: a "then" line begins a new step; without parallel calls every
// call is a step of its own. prose is the prompt without its call lines.
func callSteps(text string, parallel bool) (steps [][]callLine, prose string) {
	var b strings.Builder
	for line := range strings.SplitSeq(text, "\n") {
		c, ok := parseCallLine(line)
		if !ok {
			b.WriteString(line)
			b.WriteByte('\n')
			continue
		}
		if len(steps) == 0 || c.then || !parallel {
			steps = append(steps, nil)
		}
		steps[len(steps)-1] = append(steps[len(steps)-1], c)
	}
	return steps, b.String()
}

// toolConv is what the tool mode reads of a conversation.
type toolConv struct {
	lastUser string       // the text of the last user message
	steps    int          // assistant turns with tool calls after it
	results  []toolResult // the tool results after it, in order
}

// toolResult is one tool result: the name of the tool (the call id when the
// call is not in the request) and its text.
type toolResult struct {
	name, text string
}

// decideTools picks the answer to a conversation: tool calls, a text lead,
// or nil for plain pseudo-text. ts is nil when the request has no tools.
func decideTools(ts *toolSet, c *toolConv, seed uint64) *toolAnswer {
	a := &toolAnswer{}
	var lead []string
	if ts != nil && ts.mode != "none" {
		steps, prose := callSteps(c.lastUser, ts.parallel)
		var want []callLine
		if c.steps < len(steps) {
			want = steps[c.steps]
		}
		for _, l := range want {
			if ts.mode == "function" && l.name != ts.forced {
				continue
			}
			t := ts.callable(l.name)
			if t == nil {
				lead = append(lead, ts.refusal(l.name))
				continue
			}
			a.calls = append(a.calls, toolCall{name: t.name, args: callArgs(t, l.args, prose, seed)})
			if ts.mode == "function" {
				break
			}
		}
		if len(a.calls) == 0 {
			var t *toolDef
			switch ts.mode {
			case "function":
				t = ts.find(ts.forced)
			case "required":
				t = ts.firstCallable()
			}
			if t != nil {
				a.calls = append(a.calls, toolCall{name: t.name, args: callArgs(t, "", prose, seed)})
			}
		}
		if len(a.calls) > 0 {
			a.tokenize()
			return a
		}
	}
	for _, r := range c.results {
		lead = append(lead, quoteResult(r))
	}
	if len(lead) == 0 {
		return nil
	}
	a.lead = strings.Join(lead, " ")
	return a
}

// maxQuoteWords bounds the words of a tool result an answer quotes.
const maxQuoteWords = 24

// quoteResult is the sentence that uses a tool result: "According to NAME:
// <its first non-empty line, at most 24 words>."
func quoteResult(r toolResult) string {
	line := ""
	for l := range strings.SplitSeq(r.text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			line = l
			break
		}
	}
	if line == "" {
		return r.name + " returned nothing."
	}
	if f := strings.Fields(line); len(f) > maxQuoteWords {
		line = strings.Join(f[:maxQuoteWords], " ") + " ..."
	}
	if !strings.HasSuffix(line, ".") && !strings.HasSuffix(line, "!") && !strings.HasSuffix(line, "?") {
		line += "."
	}
	return "According to " + r.name + ": " + line
}

// callArgs returns the arguments of a call of t: given ones compacted when
// they are valid JSON and verbatim when not (a model may emit malformed
// arguments; tests of a tool loop need that too), or generated from t's
// schema.
func callArgs(t *toolDef, given, prose string, seed uint64) string {
	if given != "" {
		var b bytes.Buffer
		if json.Compact(&b, []byte(given)) == nil {
			return b.String()
		}
		return given
	}
	g := argGen{root: t.schema, words: proseWords(prose), seed: seed ^ hashString(t.name)}
	return string(g.value(nil, t.schema, t.name, 0))
}

// proseWords returns the words (runs of letters and digits) of s.
func proseWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// jsonSchema is the part of a JSON schema the simulator reads to check a
// tool's parameters and to generate arguments for them. true and false are
// schemas too (anything, nothing).
type jsonSchema struct {
	Type        json.RawMessage        `json:"type"`
	Properties  map[string]*jsonSchema `json:"properties"`
	Required    []string               `json:"required"`
	Items       json.RawMessage        `json:"items"`
	Enum        []json.RawMessage      `json:"enum"`
	Const       json.RawMessage        `json:"const"`
	Default     json.RawMessage        `json:"default"`
	AnyOf       []*jsonSchema          `json:"anyOf"`
	OneOf       []*jsonSchema          `json:"oneOf"`
	AllOf       []*jsonSchema          `json:"allOf"`
	Ref         string                 `json:"$ref"`
	Defs        map[string]*jsonSchema `json:"$defs"`
	Definitions map[string]*jsonSchema `json:"definitions"`
	Minimum     *float64               `json:"minimum"`
	Maximum     *float64               `json:"maximum"`

	types []string    // Type decoded (by check)
	item  *jsonSchema // Items decoded (by check); nil for none or a boolean
}

func (s *jsonSchema) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("true")) || bytes.Equal(b, []byte("false")) {
		*s = jsonSchema{}
		return nil
	}
	type plain jsonSchema
	return json.Unmarshal(b, (*plain)(s))
}

// validTypes are the JSON schema type names.
var validTypes = [...]string{"string", "number", "integer", "boolean", "object", "array", "null"}

// parseParameters decodes and checks a function's parameters schema: an
// object whose type, if given, is "object", with valid type names all
// through.
func parseParameters(raw json.RawMessage, param, fn string) ([]byte, *jsonSchema, *apiError) {
	if !present(raw) {
		return nil, nil, nil
	}
	raw = bytes.TrimSpace(raw)
	if raw[0] != '{' {
		return nil, nil, badRequest(param, "Invalid type for '%s': expected an object, but got %s instead.", param, jsonKind(raw))
	}
	var s jsonSchema
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, nil, badRequest(param, "Invalid schema for function '%s': %v", fn, schemaErr(err))
	}
	if e := s.check(param, fn, 0); e != nil {
		return nil, nil, e
	}
	if len(s.types) > 0 && (len(s.types) != 1 || s.types[0] != "object") {
		return nil, nil, badRequest(param, "Invalid schema for function '%s': schema must be a JSON Schema of 'type: \"object\"', got 'type: %s'.", fn, bytes.TrimSpace(s.Type))
	}
	var b bytes.Buffer
	_ = json.Compact(&b, raw) // raw decoded, so it is valid
	return b.Bytes(), &s, nil
}

// schemaErr words a decoding error of a schema.
func schemaErr(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("'%s' must be %s, got JSON %s.", te.Field, jsonTypeName(te.Type.String()), te.Value)
	}
	return err.Error() + "."
}

// maxSchemaDepth bounds the nesting the simulator follows in a schema.
const maxSchemaDepth = 64

// check decodes the type keywords of s and everything under it.
func (s *jsonSchema) check(param, fn string, depth int) *apiError {
	if s == nil {
		return nil
	}
	if depth > maxSchemaDepth {
		return badRequest(param, "Invalid schema for function '%s': nested deeper than %d levels.", fn, maxSchemaDepth)
	}
	bad := func() *apiError {
		return badRequest(param, "Invalid schema for function '%s': %s is not valid under any of the given schemas.", fn, bytes.TrimSpace(s.Type))
	}
	if t := bytes.TrimSpace(s.Type); len(t) > 0 {
		switch t[0] {
		case '"':
			var one string
			if json.Unmarshal(t, &one) != nil {
				return bad()
			}
			s.types = []string{one}
		case '[':
			if json.Unmarshal(t, &s.types) != nil || len(s.types) == 0 {
				return bad()
			}
		default:
			return bad()
		}
		for _, ty := range s.types {
			ok := false
			for _, v := range validTypes {
				ok = ok || ty == v
			}
			if !ok {
				return badRequest(param, "Invalid schema for function '%s': '%s' is not valid under any of the given schemas.", fn, ty)
			}
		}
	}
	for _, m := range [...]map[string]*jsonSchema{s.Properties, s.Defs, s.Definitions} {
		for _, sub := range m {
			if e := sub.check(param, fn, depth+1); e != nil {
				return e
			}
		}
	}
	for _, l := range [...][]*jsonSchema{s.AnyOf, s.OneOf, s.AllOf} {
		for _, sub := range l {
			if e := sub.check(param, fn, depth+1); e != nil {
				return e
			}
		}
	}
	if raw := bytes.TrimSpace(s.Items); len(raw) > 0 && !isBoolJSON(raw) {
		if s.item = decodeItems(raw); s.item == nil {
			return badRequest(param, "Invalid schema for function '%s': 'items' must be a schema.", fn)
		}
		if e := s.item.check(param, fn, depth+1); e != nil {
			return e
		}
	}
	return nil
}

func isBoolJSON(b []byte) bool {
	b = bytes.TrimSpace(b)
	return bytes.Equal(b, []byte("true")) || bytes.Equal(b, []byte("false"))
}

// decodeItems decodes the schema of an array's items: items itself, or the
// first of a tuple (older drafts); nil when it is not a schema.
func decodeItems(raw []byte) *jsonSchema {
	if raw[0] == '[' {
		var l []*jsonSchema
		if json.Unmarshal(raw, &l) != nil || len(l) == 0 || l[0] == nil {
			return nil
		}
		return l[0]
	}
	var it jsonSchema
	if json.Unmarshal(raw, &it) != nil {
		return nil
	}
	return &it
}

// argGen generates deterministic arguments from a parameters schema: const,
// else the first enum value, else default, else by type: an object of its
// required properties (in the order required lists them), an array of one
// item, a string taken from the prompt's words (the last word first, then
// the one before, ...; the property's name when the prompt has none), an
// integer or number in 0..99 (within minimum and maximum) from a hash of the
// prompt and the property's path, true, null. anyOf and oneOf take their
// first branch, allOf its first member with a type or properties; local
// $refs (#/$defs/..., #/definitions/...) are followed.
//
// Generation is bounded (maxArgValues values, about maxArgBytes bytes):
// past the bounds values are null and objects get no more properties, so a
// recursive schema still yields valid JSON, quickly.
type argGen struct {
	root    *jsonSchema
	words   []string
	strings int // strings generated so far
	values  int // values generated so far
	seed    uint64
}

const (
	maxArgValues = 4096
	maxArgBytes  = 64 << 10
)

func (g *argGen) value(dst []byte, s *jsonSchema, path string, depth int) []byte {
	if g.values++; g.values > maxArgValues || len(dst) > maxArgBytes {
		return append(dst, "null"...)
	}
	s = g.resolve(s, 0)
	if s == nil {
		if depth == 0 {
			return append(dst, "{}"...)
		}
		return g.str(dst, path)
	}
	switch {
	case len(bytes.TrimSpace(s.Const)) > 0:
		return appendCompact(dst, s.Const)
	case len(s.Enum) > 0:
		return appendCompact(dst, s.Enum[0])
	case len(bytes.TrimSpace(s.Default)) > 0:
		return appendCompact(dst, s.Default)
	case len(s.AnyOf) > 0:
		return g.value(dst, s.AnyOf[0], path, depth+1)
	case len(s.OneOf) > 0:
		return g.value(dst, s.OneOf[0], path, depth+1)
	}
	for _, m := range s.AllOf {
		if m = g.resolve(m, 0); m != nil && (len(m.types) > 0 || m.Properties != nil) {
			return g.value(dst, m, path, depth+1)
		}
	}
	typ := ""
	for _, t := range s.types {
		if t != "null" {
			typ = t
			break
		}
	}
	if typ == "" {
		switch {
		case len(s.types) > 0:
			typ = "null"
		case s.Properties != nil || s.Required != nil || depth == 0:
			typ = "object"
		case len(s.Items) > 0:
			typ = "array"
		default:
			typ = "string"
		}
	}
	if depth > maxSchemaDepth && (typ == "object" || typ == "array") {
		return append(dst, "null"...)
	}
	switch typ {
	case "object":
		dst = append(dst, '{')
		for i, name := range s.Required {
			if len(dst) > maxArgBytes {
				break
			}
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, name)
			dst = append(dst, ':')
			dst = g.value(dst, s.Properties[name], path+"."+name, depth+1)
		}
		return append(dst, '}')
	case "array":
		if it := s.item; it != nil {
			dst = append(dst, '[')
			dst = g.value(dst, it, path+"[0]", depth+1)
			return append(dst, ']')
		}
		return append(dst, "[]"...)
	case "integer", "number":
		return strconv.AppendInt(dst, g.number(s, path), 10)
	case "boolean":
		return append(dst, "true"...)
	case "null":
		return append(dst, "null"...)
	}
	return g.str(dst, path)
}

func (g *argGen) str(dst []byte, path string) []byte {
	if len(g.words) == 0 {
		name := path[strings.LastIndexByte(path, '.')+1:]
		return appendJSONString(dst, strings.TrimSuffix(name, "[0]"))
	}
	w := g.words[len(g.words)-1-g.strings%len(g.words)]
	g.strings++
	return appendJSONString(dst, w)
}

func (g *argGen) number(s *jsonSchema, path string) int64 {
	r := splitmix64(g.seed ^ hashString(path))
	lo, hi := int64(0), int64(99)
	if s.Minimum != nil && s.Maximum != nil && *s.Maximum >= *s.Minimum && *s.Maximum-*s.Minimum < 1e15 {
		lo, hi = int64(*s.Minimum), int64(*s.Maximum)
	} else if s.Minimum != nil && *s.Minimum > -1e15 && *s.Minimum < 1e15 {
		lo, hi = int64(*s.Minimum), int64(*s.Minimum)+99
	} else if s.Maximum != nil && *s.Maximum > -1e15 && *s.Maximum < 1e15 {
		lo, hi = int64(*s.Maximum)-99, int64(*s.Maximum)
	}
	if hi < lo {
		return lo
	}
	return lo + int64(r.next()%uint64(hi-lo+1))
}

// resolve follows local $refs of the root schema.
func (g *argGen) resolve(s *jsonSchema, hops int) *jsonSchema {
	for s != nil && s.Ref != "" && g.root != nil {
		if hops++; hops > maxSchemaDepth {
			return nil
		}
		var m map[string]*jsonSchema
		name := ""
		switch {
		case strings.HasPrefix(s.Ref, "#/$defs/"):
			m, name = g.root.Defs, s.Ref[len("#/$defs/"):]
		case strings.HasPrefix(s.Ref, "#/definitions/"):
			m, name = g.root.Definitions, s.Ref[len("#/definitions/"):]
		case s.Ref == "#":
			return g.root
		default:
			return s
		}
		next, ok := m[name]
		if !ok {
			return s
		}
		s = next
	}
	return s
}

// appendCompact appends a raw JSON value without its whitespace.
func appendCompact(dst, raw []byte) []byte {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return append(dst, "null"...)
	}
	return append(dst, b.Bytes()...)
}

// wireToolCall is a tool call of an assistant message in a chat request.
type wireToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string  `json:"name"`
		Arguments *string `json:"arguments"`
	} `json:"function"`
}

// chatTools reads the tools, tool_choice and parallel_tool_calls of a chat
// request; nil when it offers no tools.
func chatTools(r *chatRequest) (*toolSet, *apiError) {
	tools, e := parseTools(r.Tools, false)
	if e != nil {
		return nil, e
	}
	ts := &toolSet{tools: tools, parallel: r.ParallelToolCalls == nil || *r.ParallelToolCalls}
	if e := parseToolChoice(r.ToolChoice, ts, false); e != nil {
		return nil, e
	}
	if len(tools) == 0 {
		return nil, nil
	}
	return ts, nil
}

// decodeToolCalls decodes the tool_calls of message i.
func decodeToolCalls(raw json.RawMessage, i int) ([]wireToolCall, *apiError) {
	param := fmt.Sprintf("messages[%d].tool_calls", i)
	if bytes.TrimSpace(raw)[0] != '[' {
		return nil, badRequest(param, "Invalid type for '%s': expected an array, but got %s instead.", param, jsonKind(raw))
	}
	var calls []wireToolCall
	if err := json.Unmarshal(raw, &calls); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, badRequest(param, "Invalid type in '%s': %q must be %s, got JSON %s.", param, te.Field, jsonTypeName(te.Type.String()), te.Value)
		}
		return nil, badRequest(param, "Invalid '%s': %v", param, err)
	}
	for j, c := range calls {
		at := fmt.Sprintf("%s[%d]", param, j)
		switch {
		case c.ID == "":
			return nil, badRequest(at+".id", "Missing required parameter: '%s.id'.", at)
		case c.Type != "function":
			return nil, badRequest(at+".type", "Invalid value for '%s.type': this server supports function tool calls only, got %q.", at, c.Type)
		case c.Function.Name == "":
			return nil, badRequest(at+".function.name", "Missing required parameter: '%s.function.name'.", at)
		case c.Function.Arguments == nil:
			return nil, badRequest(at+".function.arguments", "Missing required parameter: '%s.function.arguments'.", at)
		}
	}
	return calls, nil
}

// addAssistantCalls renders an assistant message with tool calls: its text,
// if it has any, as an assistant message, then each call as an assistant
// message of its name and arguments (as the Responses API renders its
// function_call items).
func addAssistantCalls(h *tokenHasher, m *chatMessage, i int, calls []wireToolCall) *apiError {
	text := false
	if e := messageText(m.Content, i, func(t string) { text = text || t != "" }); e != nil {
		return e
	}
	if text {
		h.addToken(hashString("<|assistant|>"))
		_ = messageText(m.Content, i, h.addText)
		h.addToken(tokenEndOfMessage)
	}
	for _, c := range calls {
		addMessage(h, "assistant", c.Function.Name+" "+*c.Function.Arguments)
	}
	return nil
}

// joinedText returns the text parts of a content joined by newlines.
func joinedText(raw json.RawMessage, i int) string {
	var b strings.Builder
	_ = messageText(raw, i, func(t string) {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(t)
	})
	return b.String()
}

// invalidMessage is a 400 with OpenAI's param "messages.[i].<field>" and a
// null code, as OpenAI answers a broken tool conversation.
func invalidMessage(i int, field, format string, args ...any) *apiError {
	return &apiError{status: 400, typ: "invalid_request_error", param: fmt.Sprintf("messages.[%d].%s", i, field), message: fmt.Sprintf(format, args...)}
}

// chatConv checks the tool conversation of a chat request as OpenAI does
// (every tool message answers a call of the assistant message before it,
// every call is answered before the next other message) and reads what the
// tool mode needs. calls holds the decoded tool calls per message, or is nil
// when no message has any.
func chatConv(msgs []chatMessage, calls [][]wireToolCall) (*toolConv, *apiError) {
	c := &toolConv{}
	last := -1
	for i := range msgs {
		if msgs[i].Role == "user" {
			last = i
		}
	}
	if last >= 0 {
		c.lastUser = joinedText(msgs[last].Content, last)
	}
	open := -1 // the assistant message whose calls are being answered
	var pending []string
	missing := func() *apiError {
		return invalidMessage(open, "role", "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: %s", strings.Join(pending, ", "))
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Role == "tool" {
			if open < 0 {
				return nil, invalidMessage(i, "role", "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.")
			}
			if m.ToolCallID == "" {
				p := fmt.Sprintf("messages[%d].tool_call_id", i)
				return nil, badRequest(p, "Missing required parameter: '%s'.", p)
			}
			name := ""
			for _, tc := range calls[open] {
				if tc.ID == m.ToolCallID {
					name = tc.Function.Name
					break
				}
			}
			if name == "" {
				return nil, invalidMessage(i, "tool_call_id", "Invalid parameter: 'tool_call_id' of '%s' not found in 'tool_calls' of previous message.", m.ToolCallID)
			}
			for k, id := range pending {
				if id == m.ToolCallID {
					pending = append(pending[:k], pending[k+1:]...)
					break
				}
			}
			if i > last {
				c.results = append(c.results, toolResult{name: name, text: joinedText(m.Content, i)})
			}
			continue
		}
		if len(pending) > 0 {
			return nil, missing()
		}
		open = -1
		if calls != nil && len(calls[i]) > 0 {
			open = i
			for _, tc := range calls[i] {
				pending = append(pending, tc.ID)
			}
			if i > last {
				c.steps++
			}
		}
	}
	if len(pending) > 0 {
		return nil, missing()
	}
	return c, nil
}

// appendToolCalls appends the tool_calls array of a message; ids are drawn
// from seed.
func appendToolCalls(b []byte, calls []toolCall, seed uint64) []byte {
	b = append(b, '[')
	for k, c := range calls {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = callID(b, seed, k)
		b = append(b, `","type":"function","function":{"name":`...)
		b = appendJSONString(b, c.name)
		b = append(b, `,"arguments":`...)
		b = appendJSONString(b, c.args)
		b = append(b, "}}"...)
	}
	return append(b, ']')
}

// appendCallDelta appends the tool_calls of a streamed delta for token step
// of the calls: the call's index, id, type, name and empty arguments for its
// first token, then the index and a piece of the arguments.
func appendCallDelta(b []byte, a *toolAnswer, step int, seed uint64) []byte {
	t := a.toks[step]
	b = append(b, `"tool_calls":[{"index":`...)
	b = strconv.AppendInt(b, int64(t.call), 10)
	if t.start < 0 {
		b = append(b, `,"id":"`...)
		b = callID(b, seed, t.call)
		b = append(b, `","type":"function","function":{"name":`...)
		b = appendJSONString(b, a.calls[t.call].name)
		return append(b, `,"arguments":""}}]`...)
	}
	b = append(b, `,"function":{"arguments":`...)
	b = appendJSONString(b, a.calls[t.call].args[t.start:t.end])
	return append(b, "}}]"...)
}
