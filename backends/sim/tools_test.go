package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"switchyard/internal/spectest"
)

// testTools are the function tools of the tests.
const testTools = `[{"type":"function","function":{"name":"get_weather","description":"The weather in a city.",` +
	`"parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]},` +
	`"days":{"type":"integer","minimum":1,"maximum":7}},"required":["city","unit","days"]}}},` +
	`{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string"}},"required":["tz"]}}}]`

// toolsBody is a chat request with testTools and one user message; extra
// is appended to the request object (",\"tool_choice\":...").
func toolsBody(prompt, extra string) string {
	return fmt.Sprintf(`{"model":"m","max_tokens":40,"tools":%s,"messages":[{"role":"user","content":%q}]%s}`, testTools, prompt, extra)
}

// wireChat is the part of a chat completion the tests look at.
type wireChat struct {
	Choices []struct {
		Message struct {
			Role      string  `json:"role"`
			Content   *string `json:"content"`
			ToolCalls []struct {
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// calls renders the tool calls of choice 0 as "name args" lines.
func (c *wireChat) calls() []string {
	var out []string
	for _, tc := range c.Choices[0].Message.ToolCalls {
		out = append(out, tc.Function.Name+" "+tc.Function.Arguments)
	}
	return out
}

// chatPost posts a plain chat request, checks the answer against the spec
// and decodes it.
func chatPost(t *testing.T, url, body string) (*wireChat, []byte) {
	t.Helper()
	r := post(t, url, "/v1/chat/completions", body)
	raw := readBody(t, r)
	if r.StatusCode != 200 {
		t.Fatalf("status %d: %s", r.StatusCode, raw)
	}
	spectest.Check(t, "CreateChatCompletionResponse", raw)
	var v wireChat
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Choices) == 0 {
		t.Fatalf("no choices: %s", raw)
	}
	return &v, raw
}

func TestParseCallLine(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
		want callLine
	}{
		{"call get_weather", true, callLine{name: "get_weather"}},
		{`  call get_weather {"city": "Paris"}  `, true, callLine{name: "get_weather", args: `{"city": "Paris"}`}},
		{`call f{}`, true, callLine{name: "f", args: "{}"}},
		{"call\tmy-tool_2 {", true, callLine{name: "my-tool_2", args: "{"}},
		{`then call f {"a":1}`, true, callLine{name: "f", args: `{"a":1}`, then: true}},
		{"then  call f\r", true, callLine{name: "f", then: true}},
		{"call", false, callLine{}},
		{"call ", false, callLine{}},
		{"call {}", false, callLine{}},
		{"call me maybe", false, callLine{}},
		{"Call f", false, callLine{}},
		{"recall f", false, callLine{}},
		{"callf", false, callLine{}},
		{"then f", false, callLine{}},
		{"then", false, callLine{}},
		{"please call f", false, callLine{}},
	}
	for _, tc := range tests {
		got, ok := parseCallLine(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseCallLine(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCallSteps(t *testing.T) {
	text := "Plan a trip.\ncall a {}\ncall b\nthen call c\ncall d\nthanks"
	steps, prose := callSteps(text, true)
	if got := fmt.Sprint(steps); got != "[[{a {} false} {b  false}] [{c  true} {d  false}]]" {
		t.Errorf("parallel steps %s", got)
	}
	if prose != "Plan a trip.\nthanks\n" {
		t.Errorf("prose %q", prose)
	}
	steps, _ = callSteps(text, false)
	if len(steps) != 4 || steps[2][0].name != "c" {
		t.Errorf("sequential steps %v", steps)
	}
}

// TestToolConvention covers the call lines and tool_choice in plain chat
// answers.
func TestToolConvention(t *testing.T) {
	_, url := startServer(t, nil)
	weather := func(t *testing.T, args string) {
		t.Helper()
		var v struct {
			City string `json:"city"`
			Unit string `json:"unit"`
			Days int    `json:"days"`
		}
		if err := json.Unmarshal([]byte(args), &v); err != nil || v.City != "Paris" || v.Unit != "celsius" || v.Days < 1 || v.Days > 7 {
			t.Errorf("generated arguments %s (%v): want city Paris, unit celsius, days in 1..7", args, err)
		}
	}
	tests := []struct {
		name   string
		body   string
		calls  []string // "name args" per call; nil for a text answer
		gen    bool     // the first call's arguments are generated for get_weather
		prefix string   // the text answer starts so
	}{
		{"explicit arguments", toolsBody(`call get_time {"tz": "CET"}`, ""), []string{`get_time {"tz":"CET"}`}, false, ""},
		{"generated arguments", toolsBody("What is the weather in Paris?\ncall get_weather", ""), []string{"get_weather"}, true, ""},
		{"parallel calls", toolsBody("call get_time {\"tz\":\"UTC\"}\ncall get_time {\"tz\":\"CET\"}", ""),
			[]string{`get_time {"tz":"UTC"}`, `get_time {"tz":"CET"}`}, false, ""},
		{"parallel_tool_calls false", toolsBody("call get_time {\"tz\":\"UTC\"}\ncall get_time {\"tz\":\"CET\"}", `,"parallel_tool_calls":false`),
			[]string{`get_time {"tz":"UTC"}`}, false, ""},
		{"then starts a later step", toolsBody("call get_time {\"tz\":\"UTC\"}\nthen call get_time {\"tz\":\"CET\"}", ""),
			[]string{`get_time {"tz":"UTC"}`}, false, ""},
		{"malformed arguments verbatim", toolsBody(`call get_time {"tz": `, ""), []string{`get_time {"tz":`}, false, ""},
		{"no call line", toolsBody("What time is it?", ""), nil, false, ""},
		{"auto", toolsBody(`call get_time {"tz":"CET"}`, `,"tool_choice":"auto"`), []string{`get_time {"tz":"CET"}`}, false, ""},
		{"none", toolsBody(`call get_time {"tz":"CET"}`, `,"tool_choice":"none"`), nil, false, ""},
		{"required without a call line", toolsBody("What is the weather in Paris?", `,"tool_choice":"required"`), []string{"get_weather"}, true, ""},
		{"named function", toolsBody("Weather in Paris?\ncall get_time {\"tz\":\"CET\"}", `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}`),
			[]string{"get_weather"}, true, ""},
		{"named function with its line", toolsBody("call get_weather {\"city\":\"Oslo\"}\ncall get_time {\"tz\":\"CET\"}", `,"tool_choice":{"type":"function","function":{"name":"get_time"}}`),
			[]string{`get_time {"tz":"CET"}`}, false, ""},
		{"unknown tool", toolsBody("call get_stock {}", ""), nil, false, "I cannot call get_stock: there is no such tool."},
		{"unknown tool beside a known one", toolsBody("call get_stock {}\ncall get_time {\"tz\":\"CET\"}", ""), []string{`get_time {"tz":"CET"}`}, false, ""},
		{"allowed_tools", toolsBody(`call get_time {"tz":"CET"}`,
			`,"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[{"type":"function","function":{"name":"get_weather"}}]}}`),
			nil, false, "I cannot call get_time: it is not among the allowed tools."},
		{"allowed_tools required", toolsBody("Paris", `,"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"required","tools":[{"type":"function","function":{"name":"get_weather"}}]}}`),
			[]string{"get_weather"}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, raw := chatPost(t, url, tc.body)
			ch := v.Choices[0]
			if tc.calls == nil {
				if ch.Message.Content == nil || len(ch.Message.ToolCalls) != 0 || ch.FinishReason == "tool_calls" {
					t.Fatalf("want a text answer: %s", raw)
				}
				if !strings.HasPrefix(*ch.Message.Content, tc.prefix) {
					t.Errorf("text %q, want it to start with %q", *ch.Message.Content, tc.prefix)
				}
				return
			}
			if ch.Message.Content != nil || ch.FinishReason != "tool_calls" || ch.Message.Role != "assistant" {
				t.Fatalf("want content null and finish_reason tool_calls: %s", raw)
			}
			got := v.calls()
			if len(got) != len(tc.calls) {
				t.Fatalf("calls %q, want %q", got, tc.calls)
			}
			for i, want := range tc.calls {
				if i == 0 && tc.gen {
					name, args, _ := strings.Cut(got[0], " ")
					if name != want {
						t.Errorf("call 0 is %q, want %q", name, want)
					}
					weather(t, args)
					continue
				}
				if got[i] != want {
					t.Errorf("call %d = %q, want %q", i, got[i], want)
				}
			}
			for i, tc := range ch.Message.ToolCalls {
				if tc.Type != "function" || !strings.HasPrefix(tc.ID, "call_") || len(tc.ID) != len("call_")+24 {
					t.Errorf("call %d: type %q id %q", i, tc.Type, tc.ID)
				}
			}
			// Usage: each call is one token for its start plus its
			// arguments' tokens.
			want := 0
			for _, c := range ch.Message.ToolCalls {
				want += 1 + CountTokens(c.Function.Arguments)
			}
			if v.Usage.CompletionTokens != want {
				t.Errorf("completion_tokens %d, want %d", v.Usage.CompletionTokens, want)
			}
		})
	}
}

// TestToolArgumentsFromSchema checks generated arguments by schema.
func TestToolArgumentsFromSchema(t *testing.T) {
	tests := []struct {
		schema, prose, want string
	}{
		{``, "", `{}`},
		{`{"type":"object"}`, "", `{}`},
		{`{"type":"object","properties":{"q":{"type":"string"}}}`, "", `{}`},
		{`{"type":"object","properties":{"q":{"type":"string"},"r":{"type":"string"}},"required":["q","r"]}`, "find go docs", `{"q":"docs","r":"go"}`},
		{`{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}`, "", `{"q":"q"}`},
		{`{"type":"object","properties":{"b":{"type":"boolean"},"n":{"type":"null"},"e":{"enum":[3,"x"]},"c":{"const":{"k":[1, 2]}},"d":{"type":"string","default":"dflt"}},"required":["b","n","e","c","d"]}`,
			"", `{"b":true,"n":null,"e":3,"c":{"k":[1,2]},"d":"dflt"}`},
		{`{"type":"object","properties":{"l":{"type":"array","items":{"type":"string"}},"o":{"type":"object","properties":{"x":{"type":["null","boolean"]}},"required":["x"]}},"required":["l","o"]}`,
			"word", `{"l":["word"],"o":{"x":true}}`},
		{`{"type":"object","properties":{"a":{"anyOf":[{"type":"boolean"},{"type":"string"}]},"r":{"$ref":"#/$defs/R"}},"required":["a","r"],"$defs":{"R":{"type":"object","properties":{"z":{"const":"zz"}},"required":["z"]}}}`,
			"", `{"a":true,"r":{"z":"zz"}}`},
		{`{"type":"object","properties":{"n":{"type":"integer","minimum":5,"maximum":5}},"required":["n"]}`, "", `{"n":5}`},
		{`{"type":"object","properties":{"self":{"$ref":"#"}},"required":["self"]}`, "", ""}, // recursive: valid JSON, bounded
		{`{"type":"object","properties":{"a":{"$ref":"#"},"b":{"$ref":"#"}},"required":["a","b"]}`, "", ""},
		{`{"type":"object","properties":{"a":{"$ref":"#"}},"required":["a","` + strings.Repeat("k", 50000) + `"]}`, "", ""},
	}
	for i, tc := range tests {
		_, s, e := parseParameters(json.RawMessage(tc.schema), "p", "f")
		if e != nil {
			t.Fatalf("Test %d: %v", i, e)
		}
		args := callArgs(&toolDef{name: "f", schema: s}, "", tc.prose, 1)
		if !json.Valid([]byte(args)) || len(args) > maxArgBytes+60000 {
			t.Errorf("Test %d: invalid JSON %s", i, args)
		}
		if tc.want != "" && args != tc.want {
			t.Errorf("Test %d: schema %s, prose %q: got %s, want %s", i, tc.schema, tc.prose, args, tc.want)
		}
	}
}

// TestToolCallsDeterministic: the same request gets the same ids and
// arguments; another conversation other ids.
func TestToolCallsDeterministic(t *testing.T) {
	_, url := startServer(t, nil)
	body := toolsBody("Paris\ncall get_weather\ncall get_time", `,"n":2`)
	a, _ := chatPost(t, url, body)
	b, _ := chatPost(t, url, body)
	ja, _ := json.Marshal(a.Choices)
	jb, _ := json.Marshal(b.Choices)
	if string(ja) != string(jb) {
		t.Errorf("the same request answered\n%s\nand\n%s", ja, jb)
	}
	if a.Choices[0].Message.ToolCalls[0].ID == a.Choices[1].Message.ToolCalls[0].ID {
		t.Error("two choices have the same call id")
	}
	if fmt.Sprint(a.calls()) != fmt.Sprint(b.calls()) || len(a.Choices[1].Message.ToolCalls) != 2 {
		t.Errorf("choices differ in calls: %s", ja)
	}
	c, _ := chatPost(t, url, toolsBody("Oslo\ncall get_weather\ncall get_time", ""))
	if c.Choices[0].Message.ToolCalls[0].ID == a.Choices[0].Message.ToolCalls[0].ID {
		t.Error("another conversation got the same call id")
	}
}

// TestToolCallsStreamed: the SDK's accumulator reassembles the streamed
// calls into the plain answer, and every chunk matches the spec.
func TestToolCallsStreamed(t *testing.T) {
	_, url := startServer(t, nil)
	c := sdkClient(url)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, limit := range []int64{0, 25} { // the calls take 20 + 10 tokens: 25 cut the second
		t.Run(fmt.Sprintf("max_tokens %d", limit), func(t *testing.T) {
			params := sdkToolParams("What is the weather in Paris?\ncall get_weather\ncall get_time {\"tz\": \"CET\"}")
			if limit > 0 {
				params.MaxTokens = openai.Int(limit)
			}
			plain, err := c.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			spectest.Check(t, "CreateChatCompletionResponse", []byte(plain.RawJSON()))
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream := c.Chat.Completions.NewStreaming(ctx, params)
			var acc openai.ChatCompletionAccumulator
			chunks := 0
			for stream.Next() {
				ch := stream.Current()
				spectest.Check(t, "CreateChatCompletionStreamResponse", []byte(ch.RawJSON()))
				if !acc.AddChunk(ch) {
					t.Fatalf("the accumulator refused chunk %d: %s", chunks, ch.RawJSON())
				}
				chunks++
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			want, got := plain.Choices[0], acc.Choices[0]
			if got.FinishReason != want.FinishReason || got.Message.Content != "" || len(got.Message.ToolCalls) != len(want.Message.ToolCalls) {
				t.Fatalf("streamed %+v\nplain %s", got, plain.RawJSON())
			}
			for i := range want.Message.ToolCalls {
				w, g := want.Message.ToolCalls[i], got.Message.ToolCalls[i]
				if g.ID != w.ID || g.Type != "function" || g.Function.Name != w.Function.Name || g.Function.Arguments != w.Function.Arguments {
					t.Errorf("call %d: streamed %+v, plain %+v", i, g, w)
				}
			}
			if acc.Usage.CompletionTokens != plain.Usage.CompletionTokens || acc.Usage.PromptTokens != plain.Usage.PromptTokens {
				t.Errorf("usage: streamed %+v, plain %+v", acc.Usage, plain.Usage)
			}
			// One chunk per token, the finish chunk and the usage chunk.
			if n := int(plain.Usage.CompletionTokens) + 2; chunks != n {
				t.Errorf("%d chunks, want %d", chunks, n)
			}
			if limit > 0 {
				if want.FinishReason != "length" || plain.Usage.CompletionTokens != limit || json.Valid([]byte(want.Message.ToolCalls[1].Function.Arguments)) {
					t.Errorf("cut calls: %s", plain.RawJSON())
				}
			} else if want.FinishReason != "tool_calls" {
				t.Errorf("finish_reason %q", want.FinishReason)
			}
		})
	}
}

func sdkToolParams(prompt string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    "m",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
		Tools: []openai.ChatCompletionToolUnionParam{
			openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
				Name:        "get_weather",
				Description: openai.String("The weather in a city."),
				Parameters: shared.FunctionParameters{
					"type": "object",
					"properties": map[string]any{
						"city": map[string]any{"type": "string"},
						"unit": map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}},
					},
					"required": []string{"city", "unit"},
				},
			}),
			openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
				Name:       "get_time",
				Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"tz": map[string]any{"type": "string"}}},
			}),
		},
	}
}

// TestToolLoop runs a whole two-step loop through the SDK, plain and
// streamed: the calls of each step, their results, and the final text that
// quotes them.
func TestToolLoop(t *testing.T) {
	_, url := startServer(t, nil)
	c := sdkClient(url)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	results := map[string]string{"get_weather": "Sunny, 21 C\nwind 3 m/s", "get_time": "14:05"}
	run := func(t *testing.T, stream bool) string {
		params := sdkToolParams("What is the weather in Paris, and the time?\ncall get_weather\nthen call get_time {\"tz\":\"Europe/Paris\"}")
		params.MaxTokens = openai.Int(30)
		var steps []string
		for step := 0; ; step++ {
			if step > 3 {
				t.Fatal("the loop does not end")
			}
			var msg openai.ChatCompletionMessage
			var finish string
			if stream {
				s := c.Chat.Completions.NewStreaming(ctx, params)
				var acc openai.ChatCompletionAccumulator
				for s.Next() {
					acc.AddChunk(s.Current())
				}
				if err := s.Err(); err != nil {
					t.Fatal(err)
				}
				msg, finish = acc.Choices[0].Message, acc.Choices[0].FinishReason
			} else {
				r, err := c.Chat.Completions.New(ctx, params)
				if err != nil {
					t.Fatal(err)
				}
				msg, finish = r.Choices[0].Message, r.Choices[0].FinishReason
			}
			if len(msg.ToolCalls) == 0 {
				if finish != "length" {
					t.Errorf("final finish_reason %q", finish)
				}
				steps = append(steps, "text")
				if got := strings.Join(steps, ", "); got != "get_weather, get_time, text" {
					t.Errorf("steps %s", got)
				}
				return msg.Content
			}
			if finish != "tool_calls" {
				t.Errorf("step %d: finish_reason %q", step, finish)
			}
			params.Messages = append(params.Messages, msg.ToParam())
			for _, tc := range msg.ToolCalls {
				steps = append(steps, tc.Function.Name)
				params.Messages = append(params.Messages, openai.ToolMessage(results[tc.Function.Name], tc.ID))
			}
		}
	}
	plain := run(t, false)
	const want = "According to get_weather: Sunny, 21 C. According to get_time: 14:05. "
	if !strings.HasPrefix(plain, want) || CountTokens(plain) != 30 {
		t.Errorf("final text %q (%d tokens), want 30 tokens starting %q", plain, CountTokens(plain), want)
	}
	if streamed := run(t, true); streamed != plain {
		t.Errorf("streamed loop ended with %q, plain with %q", streamed, plain)
	}
}

// TestToolResultsWithoutTools: tool results are quoted even when the last
// request offers no tools (a loop's final call), and tool_choice "none"
// quotes them too.
func TestToolResultsWithoutTools(t *testing.T) {
	_, url := startServer(t, nil)
	conv := `"messages":[{"role":"user","content":"call get_time"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_time","arguments":"{}"}}]},` +
		`{"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"   \n  It is 14:05 "}]}]`
	for _, body := range []string{
		`{"model":"m","max_tokens":20,` + conv + `}`,
		`{"model":"m","max_tokens":20,"tools":` + testTools + `,"tool_choice":"none",` + conv + `}`,
	} {
		v, _ := chatPost(t, url, body)
		if got := *v.Choices[0].Message.Content; !strings.HasPrefix(got, "According to get_time: It is 14:05. ") {
			t.Errorf("text %q", got)
		}
	}
	// Empty and long results.
	long := strings.Repeat("word ", 30)
	for res, want := range map[string]string{
		"":   "get_time returned nothing. ",
		long: "According to get_time: " + strings.Repeat("word ", 24) + "... ",
	} {
		body := strings.Replace(`{"model":"m","max_tokens":60,`+conv+`}`, `   \n  It is 14:05 `, res, 1)
		v, _ := chatPost(t, url, body)
		if got := *v.Choices[0].Message.Content; !strings.HasPrefix(got, want) {
			t.Errorf("result %q: text %q, want it to start %q", res, got, want)
		}
	}
}

// TestToolPromptTokens: the tools and the calls count toward the prompt.
func TestToolPromptTokens(t *testing.T) {
	_, url := startServer(t, nil)
	plain, _ := chatPost(t, url, chatBody("hi", 3))
	withTools, _ := chatPost(t, url, `{"model":"m","max_tokens":3,"tools":[{"type":"function","function":{"name":"f","description":"Does f.","parameters":{"type": "object"}}}],"messages":[{"role":"user","content":"hi"}]}`)
	want := plain.Usage.PromptTokens + 2 + CountTokens("f") + CountTokens("Does f.") + CountTokens(`{"type":"object"}`)
	if withTools.Usage.PromptTokens != want {
		t.Errorf("prompt tokens with a tool %d, want %d", withTools.Usage.PromptTokens, want)
	}
	loop, _ := chatPost(t, url, `{"model":"m","max_tokens":3,"messages":[{"role":"user","content":"hi"},`+
		`{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"ok"}]}`)
	want = plain.Usage.PromptTokens + 2 + CountTokens("f {}") + 2 + CountTokens("ok")
	if loop.Usage.PromptTokens != want {
		t.Errorf("prompt tokens with a call and its result %d, want %d", loop.Usage.PromptTokens, want)
	}
}

func TestToolErrors(t *testing.T) {
	_, url := startServer(t, nil)
	tool := func(fn string) string {
		return `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":` + fn + `}]}`
	}
	msgs := func(m string) string { return `{"model":"m","messages":[` + m + `]}` }
	call := `{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]}`
	many := strings.Repeat(`{"type":"function","function":{"name":"f"}},`, 129)
	tests := []struct {
		name, body string
		param      string
		msg        string // the error message contains it
	}{
		{"tools not an array", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":{}}`, "tools", "expected an array"},
		{"too many tools", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[` + many[:len(many)-1] + `]}`, "tools", "maximum length 128"},
		{"tool without type", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"function":{"name":"f"}}]}`, "tools[0].type", "Missing required parameter"},
		{"custom tool", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","custom":{"name":"f"}}]}`, "tools[0].type", "function tools only"},
		{"no function", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}`, "tools[0].function", "Missing required parameter"},
		{"no name", tool(`{"description":"d"}`), "tools[0].function.name", "Missing required parameter"},
		{"bad name", tool(`{"name":"get weather"}`), "tools[0].function.name", "does not match pattern"},
		{"long name", tool(`{"name":"` + strings.Repeat("n", 65) + `"}`), "tools[0].function.name", "maximum length 64"},
		{"name not a string", tool(`{"name":3}`), "tools[0].function.name", "expected a string"},
		{"parameters not an object", tool(`{"name":"f","parameters":"x"}`), "tools[0].function.parameters", "expected an object"},
		{"parameters not of type object", tool(`{"name":"f","parameters":{"type":"string"}}`), "tools[0].function.parameters", `schema must be a JSON Schema of 'type: "object"'`},
		{"unknown type", tool(`{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"strin"}}}}`), "tools[0].function.parameters", "'strin' is not valid"},
		{"type not a name", tool(`{"name":"f","parameters":{"type":"object","properties":{"a":{"type":3}}}}`), "tools[0].function.parameters", "is not valid"},
		{"required not an array", tool(`{"name":"f","parameters":{"type":"object","required":"a"}}`), "tools[0].function.parameters", "Invalid schema for function 'f'"},
		{"bad items", tool(`{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"array","items":3}}}}`), "tools[0].function.parameters", "'items' must be a schema"},
		{"tool_choice without tools", `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"auto"}`, "tool_choice", "only allowed when 'tools' are specified"},
		{"bad tool_choice", tool(`{"name":"f"}`)[:len(tool(`{"name":"f"}`))-1] + `,"tool_choice":"sometimes"}`, "tool_choice", "Supported values are"},
		{"tool_choice names an unknown tool", tool(`{"name":"f"}`)[:len(tool(`{"name":"f"}`))-1] + `,"tool_choice":{"type":"function","function":{"name":"g"}}}`, "tool_choice", `"g" is not among the tools`},
		{"allowed_tools names an unknown tool", tool(`{"name":"f"}`)[:len(tool(`{"name":"f"}`))-1] +
			`,"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[{"type":"function","function":{"name":"g"}}]}}}`, "tool_choice", `"g" is not among the tools`},
		{"missing tool result", msgs(`{"role":"user","content":"x"},` + call), "messages.[1].role",
			"An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_1"},
		{"result after another message", msgs(`{"role":"user","content":"x"},` + call + `,{"role":"user","content":"y"},{"role":"tool","tool_call_id":"call_1","content":"r"}`), "messages.[1].role", "did not have response messages: call_1"},
		{"tool message without a call", msgs(`{"role":"user","content":"x"},{"role":"tool","tool_call_id":"call_1","content":"r"}`), "messages.[1].role",
			"Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."},
		{"unknown tool_call_id", msgs(`{"role":"user","content":"x"},` + call + `,{"role":"tool","tool_call_id":"call_2","content":"r"}`), "messages.[2].tool_call_id", "'call_2' not found"},
		{"no tool_call_id", msgs(`{"role":"user","content":"x"},` + call + `,{"role":"tool","content":"r"}`), "messages[2].tool_call_id", "Missing required parameter"},
		{"call without id", msgs(`{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}`), "messages[0].tool_calls[0].id", "Missing required parameter"},
		{"call without arguments", msgs(`{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f"}}]}`), "messages[0].tool_calls[0].function.arguments", "Missing required parameter"},
		{"tool_calls not an array", msgs(`{"role":"assistant","tool_calls":{}}`), "messages[0].tool_calls", "expected an array"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, url, "/v1/chat/completions", tc.body)
			raw := readBody(t, r)
			if r.StatusCode != 400 {
				t.Fatalf("status %d: %s", r.StatusCode, raw)
			}
			spectest.Check(t, "ErrorResponse", raw)
			var v struct {
				Error struct {
					Message string  `json:"message"`
					Param   *string `json:"param"`
					Type    string  `json:"type"`
				} `json:"error"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			if v.Error.Param == nil || *v.Error.Param != tc.param || !strings.Contains(v.Error.Message, tc.msg) || v.Error.Type != "invalid_request_error" {
				t.Errorf("error %s, want param %q and a message with %q", raw, tc.param, tc.msg)
			}
		})
	}
}

// respTools are testTools in the Responses API's form, with a hosted tool
// that is never called.
const respTools = `[{"type":"function","name":"get_weather","description":"The weather in a city.",` +
	`"parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city","unit"]}},` +
	`{"type":"function","name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string"}},"required":["tz"]},"strict":null},` +
	`{"type":"web_search"}]`

// wireCalls is the output of a response made of function calls.
type wireCalls struct {
	Status string `json:"status"`
	Output []struct {
		ID        string `json:"id"`
		Type      string `json:"type"`
		Status    string `json:"status"`
		CallID    string `json:"call_id"`
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"output"`
	Usage struct {
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

func TestResponsesFunctionCalls(t *testing.T) {
	_, url := startServer(t, nil)
	ask := func(extra string) string {
		return `{"model":"m","tools":` + respTools + `,"input":"Weather in Paris?\ncall get_weather\ncall get_time {\"tz\": \"CET\"}"` + extra + `}`
	}
	r := post(t, url, "/v1/responses", ask(""))
	raw := readBody(t, r)
	if r.StatusCode != 200 {
		t.Fatalf("status %d: %s", r.StatusCode, raw)
	}
	spectest.Check(t, "Response", raw)
	var plain wireCalls
	if err := json.Unmarshal(raw, &plain); err != nil {
		t.Fatal(err)
	}
	if plain.Status != "completed" || len(plain.Output) != 2 {
		t.Fatalf("response %s", raw)
	}
	wantTokens := 0
	for i, o := range plain.Output {
		if o.Type != "function_call" || o.Status != "completed" || !strings.HasPrefix(o.CallID, "call_") || o.ID != "fc_"+strings.TrimPrefix(o.CallID, "call_") {
			t.Errorf("output %d: %+v", i, o)
		}
		wantTokens += 1 + CountTokens(o.Arguments)
	}
	if plain.Output[0].Name != "get_weather" || plain.Output[0].Arguments != `{"city":"Paris","unit":"celsius"}` ||
		plain.Output[1].Name != "get_time" || plain.Output[1].Arguments != `{"tz":"CET"}` {
		t.Errorf("calls %+v", plain.Output)
	}
	if plain.Usage.OutputTokens != wantTokens {
		t.Errorf("output tokens %d, want %d", plain.Usage.OutputTokens, wantTokens)
	}

	t.Run("SDK", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := sdkClient(url)
		r, err := c.Responses.New(ctx, responses.ResponseNewParams{
			Model: "m",
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("call get_time {\"tz\": \"CET\"}")},
			Tools: []responses.ToolUnionParam{responses.ToolParamOfFunction("get_time",
				map[string]any{"type": "object", "properties": map[string]any{"tz": map[string]any{"type": "string"}}}, false)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Output) != 1 {
			t.Fatalf("output %s", r.RawJSON())
		}
		fc := r.Output[0].AsFunctionCall()
		if fc.Type != "function_call" || fc.Name != "get_time" || fc.Arguments != `{"tz":"CET"}` || !strings.HasPrefix(fc.CallID, "call_") {
			t.Errorf("function call %+v", fc)
		}
	})

	t.Run("streamed", func(t *testing.T) {
		r := post(t, url, "/v1/responses", ask(`,"stream":true`))
		evs := readEvents(t, r.Body)
		want := []string{"response.created", "response.in_progress"}
		for _, o := range plain.Output {
			want = append(want, "response.output_item.added")
			for range CountTokens(o.Arguments) {
				want = append(want, "response.function_call_arguments.delta")
			}
			want = append(want, "response.function_call_arguments.done", "response.output_item.done")
		}
		want = append(want, "response.completed")
		if len(evs) != len(want) {
			t.Fatalf("%d events, want %d", len(evs), len(want))
		}
		args := map[string]string{}
		var final []byte
		for i, e := range evs {
			if e.name != want[i] {
				t.Fatalf("event %d is %s, want %s", i, e.name, want[i])
			}
			spectest.Check(t, streamSchemas[e.name], e.data)
			var d struct {
				ItemID         string          `json:"item_id"`
				OutputIndex    int             `json:"output_index"`
				SequenceNumber int             `json:"sequence_number"`
				Delta          string          `json:"delta"`
				Arguments      string          `json:"arguments"`
				Name           string          `json:"name"`
				Response       json.RawMessage `json:"response"`
			}
			if err := json.Unmarshal(e.data, &d); err != nil {
				t.Fatal(err)
			}
			if d.SequenceNumber != i {
				t.Errorf("event %d has sequence_number %d", i, d.SequenceNumber)
			}
			switch e.name {
			case "response.function_call_arguments.delta":
				args[d.ItemID] += d.Delta
			case "response.function_call_arguments.done":
				o := plain.Output[d.OutputIndex]
				if d.ItemID != o.ID || d.Name != o.Name || d.Arguments != o.Arguments || args[d.ItemID] != o.Arguments {
					t.Errorf("done %s: deltas %q; want %+v", e.data, args[d.ItemID], o)
				}
			case "response.completed":
				final = d.Response
			}
		}
		var got wireCalls
		if err := json.Unmarshal(final, &got); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.Output) != fmt.Sprint(plain.Output) || got.Usage != plain.Usage {
			t.Errorf("streamed response %s\nplain %s", final, raw)
		}
	})

	t.Run("incomplete", func(t *testing.T) {
		v, _ := createResponse(t, url, ask(`,"max_output_tokens":5`))
		r := post(t, url, "/v1/responses", ask(`,"max_output_tokens":5`))
		var c wireCalls
		if err := json.Unmarshal(readBody(t, r), &c); err != nil {
			t.Fatal(err)
		}
		if v.Status != "incomplete" || len(c.Output) != 1 || c.Output[0].Status != "incomplete" || c.Output[0].Arguments != `{"city"` || c.Usage.OutputTokens != 5 {
			t.Errorf("cut calls: %+v", c)
		}
		r = post(t, url, "/v1/responses", ask(`,"max_output_tokens":5,"stream":true`))
		evs := readEvents(t, r.Body)
		if last := evs[len(evs)-1]; last.name != "response.incomplete" {
			t.Errorf("the stream ends with %s", last.name)
		}
	})

	t.Run("follow-up", func(t *testing.T) {
		input := `[{"role":"user","content":"Weather in Paris?\ncall get_weather\ncall get_time {\"tz\": \"CET\"}"},` +
			`{"type":"function_call","call_id":"` + plain.Output[0].CallID + `","name":"get_weather","arguments":"{}"},` +
			`{"type":"function_call","call_id":"` + plain.Output[1].CallID + `","name":"get_time","arguments":"{}"},` +
			`{"type":"function_call_output","call_id":"` + plain.Output[1].CallID + `","output":"14:05"},` +
			`{"type":"function_call_output","call_id":"` + plain.Output[0].CallID + `","output":[{"type":"input_text","text":"Sunny"}]}]`
		v, _ := createResponse(t, url, `{"model":"m","tools":`+respTools+`,"max_output_tokens":40,"input":`+input+`}`)
		if got := v.text(t); !strings.HasPrefix(got, "According to get_time: 14:05. According to get_weather: Sunny. ") {
			t.Errorf("text %q", got)
		}
		// The calls are in the previous response: the outputs are quoted
		// under their call ids.
		v, _ = createResponse(t, url, `{"model":"m","max_output_tokens":20,"previous_response_id":"resp_1","input":[{"type":"function_call_output","call_id":"call_9","output":"done"}]}`)
		if got := v.text(t); !strings.HasPrefix(got, "According to call_9: done. ") {
			t.Errorf("text %q", got)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct{ body, param, msg string }{
			{`{"model":"m","input":[{"role":"user","content":"x"},{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"}]}`, "input", "No tool output found for function call c1."},
			{`{"model":"m","input":[{"type":"function_call_output","call_id":"c1","output":"x"}]}`, "input", "No tool call found for function call output with call_id c1."},
			{`{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}`, "input[0].call_id", "Missing required parameter"},
			{`{"model":"m","input":"x","tools":[{"type":"function"}]}`, "tools[0].name", "Missing required parameter"},
			{`{"model":"m","input":"x","tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{"a":{"type":"int"}}}}]}`, "tools[0].parameters", "'int' is not valid"},
			{`{"model":"m","input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"g"}}`, "tool_choice", `"g" is not among the tools`},
		} {
			r := post(t, url, "/v1/responses", tc.body)
			e := errorBody(t, r)
			if r.StatusCode != 400 || e["param"] != tc.param || !strings.Contains(fmt.Sprint(e["message"]), tc.msg) {
				t.Errorf("%s: status %d, error %v; want param %q with %q", tc.body, r.StatusCode, e, tc.param, tc.msg)
			}
		}
	})

	t.Run("tool_choice", func(t *testing.T) {
		for choice, want := range map[string]string{
			`"none"`:                                "",
			`{"type":"web_search"}`:                 "",
			`{"type":"function","name":"get_time"}`: "get_time",
			`"required"`:                            "get_weather get_time",
			`{"type":"allowed_tools","mode":"auto","tools":[{"type":"function","name":"get_time"}]}`: "get_time",
		} {
			r := post(t, url, "/v1/responses", ask(`,"tool_choice":`+choice))
			body := readBody(t, r)
			var c wireCalls
			if err := json.Unmarshal(body, &c); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, o := range c.Output {
				if o.Type == "function_call" {
					names = append(names, o.Name)
				}
			}
			if strings.Join(names, " ") != want {
				t.Errorf("tool_choice %s: calls %v, want %q: %s", choice, names, want, body)
			}
		}
	})
}
