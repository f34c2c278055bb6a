package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
)

func fuzzServer(f *testing.F) *Server {
	o, err := OptionsFromMap(map[string]string{"model": "m", "embed-model": "e", "max-model-len": "4096", "kv-blocks": "4096"})
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(o)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	return s
}

func FuzzParseChat(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"}]}],"max_tokens":5,"n":2,"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"m","messages":[{"role":"system","content":null}],"max_completion_tokens":0}`,
		`{"model":"m","messages":"x"}`, `[]`, `{`, ``,
		`{"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}}}],"messages":[{"role":"user","content":"x\ncall f\nthen call f {\"a\":1}"}],"max_tokens":3}`,
		`{"model":"m","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required","parallel_tool_calls":false,"n":2,"messages":[{"role":"user","content":"call g"}]}`,
		`{"model":"m","messages":[{"role":"user","content":"call f"},{"role":"assistant","content":"ok","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{"}}]},{"role":"tool","tool_call_id":"c","content":"r"}]}`,
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, e := s.parseChat(body)
		if (r == nil) == (e == nil) {
			t.Fatalf("parseChat(%q) = %v, %v: want exactly one", body, r, e)
		}
		if e != nil {
			if e.status < 400 || e.message == "" || !json.Valid(appendError(nil, e)) {
				t.Fatalf("bad error %+v", e)
			}
			return
		}
		for _, q := range r.seqs {
			if q.out < 1 || q.promptTokens < 1 || q.promptTokens+q.out > s.o.MaxModelLen {
				t.Fatalf("bad sequence %+v", q)
			}
			if q.tool.hasCalls() && (q.out > q.tool.tokens() || q.finish != "tool_calls" && q.finish != "length") {
				t.Fatalf("bad tool-call sequence %+v", q)
			}
		}
		if r.seqs[0].tool.hasCalls() {
			b := s.appendResponse(nil, r, "chatcmpl-1", 1, make([][]byte, len(r.seqs)))
			if !json.Valid(b) {
				t.Fatalf("tool-call answer is not JSON: %s", b)
			}
		}
	})
}

// FuzzParseCallLine checks the call-line parser: a parsed line has a name
// and arguments that are empty or an object's start, and it parses back
// from its canonical form; the steps keep every call; the arguments cut into
// tokens that are one token each and join up again.
func FuzzParseCallLine(f *testing.F) {
	for _, seed := range []string{
		"call f", `call get_weather {"city": "Paris"}`, "then call f {", "  call\tf{}  ", "call me maybe",
		"then then call f", "call f {\"a\":\"\u00e9\"} ", "call 日本", "call f {日本}", "recall", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, ok := parseCallLine(line)
		if ok {
			if c.name == "" || strings.TrimLeft(c.name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
				t.Fatalf("parseCallLine(%q): bad name %q", line, c.name)
			}
			if c.args != strings.TrimSpace(c.args) || c.args != "" && c.args[0] != '{' {
				t.Fatalf("parseCallLine(%q): bad arguments %q", line, c.args)
			}
			canon := "call " + c.name
			if c.args != "" {
				canon += " " + c.args
			}
			if c.then {
				canon = "then " + canon
			}
			if back, ok := parseCallLine(canon); !ok || back != c {
				t.Fatalf("parseCallLine(%q) = %+v; its canonical form %q parses as %+v, %v", line, c, canon, back, ok)
			}
			a := toolAnswer{calls: []toolCall{{name: c.name, args: c.args}}}
			a.tokenize()
			var joined strings.Builder
			for _, tk := range a.toks[1:] {
				piece := c.args[tk.start:tk.end]
				if CountTokens(piece) != 1 {
					t.Fatalf("arguments %q: piece %q is %d tokens", c.args, piece, CountTokens(piece))
				}
				joined.WriteString(piece)
			}
			if joined.String() != c.args || a.tokens() != 1+CountTokens(c.args) {
				t.Fatalf("arguments %q: pieces join to %q, %d tokens", c.args, joined.String(), a.tokens())
			}
		}
		calls := 0
		for _, par := range []bool{true, false} {
			steps, _ := callSteps(line, par)
			n := 0
			for _, st := range steps {
				if len(st) == 0 || !par && len(st) != 1 {
					t.Fatalf("callSteps(%q, %v): step %v", line, par, st)
				}
				n += len(st)
			}
			if par {
				calls = n
			} else if n != calls {
				t.Fatalf("callSteps(%q): %d calls in parallel, %d in sequence", line, calls, n)
			}
		}
	})
}

// FuzzToolSchema: any parameters schema the server accepts yields
// arguments that are valid JSON, the same every time.
func FuzzToolSchema(f *testing.F) {
	for _, seed := range []string{
		`{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer","minimum":-5,"maximum":1e300}},"required":["a","b","c"]}`,
		`{"type":"object","properties":{"l":{"type":"array","items":[{"enum":[null]}]}},"required":["l"]}`,
		`{"$defs":{"n":{"type":"object","properties":{"x":{"$ref":"#/$defs/n"}},"required":["x"]}},"properties":{"r":{"$ref":"#/$defs/n"}},"required":["r"]}`,
		`{"type":["object","null"],"allOf":[true,{"properties":{}}],"required":["q"],"properties":{"q":false}}`,
		`{"required":["d"],"properties":{"d":{"default":{"k":1},"type":"strin"}}}`, `{}`, `[]`, `{"type":"object","required":"a"}`,
	} {
		f.Add([]byte(seed), "some words here")
	}
	f.Fuzz(func(t *testing.T, schema []byte, prose string) {
		_, s, e := parseParameters(schema, "p", "f")
		if e != nil {
			if e.status != 400 || e.param != "p" {
				t.Fatalf("bad error %+v", e)
			}
			return
		}
		tool := &toolDef{name: "f", schema: s}
		args := callArgs(tool, "", prose, 7)
		if !json.Valid([]byte(args)) || args != callArgs(tool, "", prose, 7) {
			t.Fatalf("schema %s: arguments %q are not valid JSON or change", schema, args)
		}
	})
}

func FuzzParseCompletions(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","prompt":"hi"}`, `{"model":"m","prompt":["a","b"],"max_tokens":3}`,
		`{"model":"m","prompt":[1,2,3]}`, `{"model":"m","prompt":[[1],[2,3]]}`, `{"model":"m","prompt":[]}`,
		`{"model":"m","prompt":[1,"a"]}`, `{"model":"m","prompt":""}`,
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, e := s.parseCompletions(body)
		if (r == nil) == (e == nil) {
			t.Fatalf("parseCompletions(%q): want exactly one of result and error", body)
		}
	})
}

func FuzzParseResponses(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","input":"hi"}`,
		`{"model":"m","instructions":"x","input":[{"role":"user","content":[{"type":"input_text","text":"a"}]},{"type":"function_call_output","call_id":"c","output":"o"}],"max_output_tokens":5,"stream":true}`,
		"{\"model\":\"m\",\"input\":\"x\",\"tools\":[\n{\"type\":\"function\",\"name\":\"f\"}\n],\"text\":{\"format\":{\"type\":\"text\"}},\"tool_choice\":\"none\"}",
		`{"model":"m","input":"x","metadata":{"k":"v"},"temperature":0.2,"top_p":0.5,"store":false,"previous_response_id":"resp_1","user":"u"}`,
		`{"model":"m","input":[]}`, `{"model":"m","input":[{"content":"x"}]}`, `{"model":"m","input":3}`,
		`{"model":"m","tools":[{"type":"function","name":"f"},{"type":"web_search"}],"tool_choice":{"type":"allowed_tools","mode":"required","tools":[{"type":"function","name":"f"}]},"input":"call f {}","stream":true}`,
		`{"model":"m","input":[{"role":"user","content":"call f"},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"r"}]}`,
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, e := s.parseResponses(body)
		if (r == nil) == (e == nil) {
			t.Fatalf("parseResponses(%q): want exactly one of result and error", body)
		}
		if e != nil {
			return
		}
		// Echoed request values must keep the response valid JSON on one
		// line, since it goes into SSE data lines.
		for _, st := range []respState{{}, {done: true, text: []byte("a\nb")}} {
			b := appendResponseObject(nil, r, "resp_1", 1, st)
			if !json.Valid(b) || bytes.ContainsAny(b, "\r\n") {
				t.Fatalf("response object for %q is not one line of JSON: %s", body, b)
			}
		}
	})
}

func FuzzParseTextInputs(f *testing.F) {
	for _, seed := range []string{`"x"`, `["a","b"]`, `[1,2]`, `[[1],[2]]`, `[]`, `null`, `3`, `[1,[2]]`, `["a",[1]]`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, e := parseTextInputs(raw, "input")
		if e == nil && len(in) == 0 {
			t.Fatalf("no inputs and no error for %q", raw)
		}
		v := make([]float32, 8)
		for _, x := range in {
			embed(v, x)
		}
	})
}

func FuzzOptionsFromMap(f *testing.F) {
	f.Add("itl", "5ms", "profile", "fast")
	f.Add("output-len", "uniform:1-9", "speed", "0.5")
	f.Add("listen", "127.0.0.1:1,127.0.0.1:2", "speed", "1,2")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		o, err := OptionsFromMap(map[string]string{k1: v1, k2: v2})
		if err != nil {
			return
		}
		for _, so := range o.PerServer() {
			if _, err := New(so); err != nil {
				t.Fatalf("validated options rejected by New: %v (%+v)", err, so)
			}
		}
	})
}

func FuzzParseInfer(f *testing.F) {
	for _, seed := range []string{
		`{"id":"1","inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}]}`,
		`{"inputs":[{"name":"input","shape":[2,3],"datatype":"FP64","data":[[1e-3,-2.5,3],[4,5E2,-0]]}],"outputs":[{"name":"label"}]}`,
		`{"inputs":[{"name":"input","shape":[1,3],"datatype":"INT8","data":[[-128,0,127]]}],"outputs":[{"name":"probabilities"},{"name":"label"}]}`,
		`{"inputs":[{"name":"input","shape":[1,3],"datatype":"UINT64","data":[18446744073709551615,0,1]}],"parameters":{"a":1}}`,
		`{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[[[1,2,3]]]}]}`,
		`{"inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","data":[[1,2,3],4,5,6]}]}`,
		`{"inputs":[{"name":"input","shape":[9,3],"datatype":"BOOL","data":[true]}]}`,
		`{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,"2",null]}],"outputs":[{"name":"x"}]}`,
		`{"inputs":[]}`, `{"inputs":[{}]}`, `[]`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	o, err := OptionsFromMap(map[string]string{"model": "m", "profile": "fast", "classifier-model": "c",
		"classifier-features": "3", "classifier-classes": "2", "classifier-max-batch": "8"})
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(o)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, body []byte) {
		c, e := s.parseInfer(body)
		if (c == nil) == (e == nil) {
			t.Fatalf("parseInfer(%q) = %v, %v: want exactly one", body, c, e)
		}
		if e != nil {
			if e.status != 400 || e.message == "" {
				t.Fatalf("parseInfer(%q): bad error %+v", body, e)
			}
			return
		}
		if c.n < 1 || c.n > 8 || len(c.x) != c.n*3 || len(c.order) == 0 || len(c.order) > 2 {
			t.Fatalf("parseInfer(%q): bad call %+v", body, c)
		}
		for _, x := range c.x {
			if math.IsInf(float64(x), 0) || math.IsNaN(float64(x)) {
				t.Fatalf("parseInfer(%q): element %v", body, x)
			}
		}
		// For FP32, encoding/json reading the numbers must agree.
		var r struct {
			Inputs []struct {
				Datatype string `json:"datatype"`
				Data     any    `json:"data"`
			} `json:"inputs"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("parseInfer accepted %q, which encoding/json rejects: %v", body, err)
		}
		if r.Inputs[0].Datatype == "FP32" {
			var flat []float32
			var walk func(v any)
			walk = func(v any) {
				switch v := v.(type) {
				case []any:
					for _, e := range v {
						walk(e)
					}
				case json.Number:
					x, _ := strconv.ParseFloat(string(v), 32)
					flat = append(flat, float32(x))
				default:
					t.Fatalf("parseInfer(%q) accepted the element %v", body, v)
				}
			}
			walk(r.Inputs[0].Data)
			if fmt.Sprint(flat) != fmt.Sprint(c.x) {
				t.Fatalf("parseInfer(%q) read %v; encoding/json reads %v", body, c.x, flat)
			}
		}
		if b := s.appendInferResponse(nil, c); !json.Valid(b) {
			t.Fatalf("the answer to %q is not JSON: %s", body, b)
		}
	})
}
