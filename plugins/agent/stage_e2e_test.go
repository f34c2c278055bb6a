package agent_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"switchyard/internal/gwtest"
	"switchyard/internal/spectest"
	"switchyard/plugins/agent"
)

// startDemo serves the demo MCP server over streamable HTTP until the
// test ends and returns its URL.
func startDemo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	demo := agent.DemoServer()
	hs := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return demo }, nil)}
	served := make(chan struct{})
	go func() { defer close(served); _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		_ = hs.Close()
		<-served
		for ss := range demo.Sessions() {
			_ = ss.Close()
		}
	})
	return "http://" + ln.Addr().String() + "/"
}

func agentConfig(mcpURL, stage string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, insecure: true}
backends: [{name: sim, kind: sim, sim: {model: sim-chat, profile: fast, output-len: "60"}}]
models: [{name: sim-chat, targets: [{backend: sim}]}]
tools:
  mcp:
    - {name: demo, url: %q}
routes:
  - name: agent
    match: {model: sim-chat-agent}
    to: sim-chat
    chain: [{agent: %s}]
  - name: default
`, mcpURL, stage)
}

type chatReply struct {
	status int
	header http.Header
	body   []byte
}

func postChat(t *testing.T, url, body string) chatReply {
	t.Helper()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return chatReply{resp.StatusCode, resp.Header, b}
}

type completion struct {
	Choices []struct {
		Message struct {
			Content   *string           `json:"content"`
			ToolCalls []json.RawMessage `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// TestAgentLoop: the simulator calls a demo tool, the gateway runs it and
// calls the model again, and the client gets one completion whose text
// uses the tool's result, plain and streamed, with the steps audited.
func TestAgentLoop(t *testing.T) {
	g := gwtest.Start(t, agentConfig(startDemo(t), "{}"))
	ask := `{"model":"sim-chat-agent","messages":[{"role":"user","content":"What is the weather in Paris?\ncall demo__get_weather"}]%s}`
	r := postChat(t, g.URL, fmt.Sprintf(ask, ""))
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	spectest.Check(t, "CreateChatCompletionResponse", r.body)
	var c completion
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatal(err)
	}
	msg := c.Choices[0].Message
	if msg.Content == nil || !strings.HasPrefix(*msg.Content, "According to demo__get_weather:") || len(msg.ToolCalls) != 0 || c.Choices[0].FinishReason == "tool_calls" {
		t.Fatalf("the answer does not use the tool's result: %s", r.body)
	}
	if r.header.Get("x-switchyard-agent-steps") != "2" || r.header.Get("x-switchyard-agent-tool-calls") != "1" {
		t.Errorf("steps %q, tool calls %q; want 2 and 1", r.header.Get("x-switchyard-agent-steps"), r.header.Get("x-switchyard-agent-tool-calls"))
	}
	if c.Usage.TotalTokens != c.Usage.PromptTokens+c.Usage.CompletionTokens || c.Usage.PromptTokens < 100 {
		t.Errorf("usage %+v: want both steps summed", c.Usage)
	}
	// The audit trail of the request.
	resp, err := http.Get(g.Admin + "/admin/audit?request_id=" + r.header.Get("x-request-id"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var audit struct {
		ToolCalls []struct {
			Tool, Decision, ArgumentsSHA256 string
			Step                            int
		} `json:"tool_calls"`
	}
	if err := json.Unmarshal(b, &audit); err != nil || len(audit.ToolCalls) != 1 || audit.ToolCalls[0].Tool != "demo__get_weather" ||
		audit.ToolCalls[0].Decision != "allow" || audit.ToolCalls[0].Step != 1 {
		t.Errorf("audit: %s", b)
	}
	if strings.Contains(string(b), "Paris") {
		t.Errorf("the audit holds the arguments, not their hash: %s", b)
	}

	// Streamed: one ordinary stream of the final answer.
	r = postChat(t, g.URL, fmt.Sprintf(ask, `,"stream":true,"stream_options":{"include_usage":true}`))
	if r.status != 200 {
		t.Fatalf("stream: %d %s", r.status, r.body)
	}
	var text strings.Builder
	sawUsage := false
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		spectest.Check(t, "CreateChatCompletionStreamResponse", []byte(line))
		var ch struct {
			Choices []struct {
				Delta struct {
					Content   string            `json:"content"`
					ToolCalls []json.RawMessage `json:"tool_calls"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(line), &ch); err != nil {
			t.Fatal(err)
		}
		for _, c := range ch.Choices {
			text.WriteString(c.Delta.Content)
			if len(c.Delta.ToolCalls) > 0 {
				t.Errorf("the gateway's tool call reached the client: %s", line)
			}
		}
		if ch.Usage != nil && ch.Usage.PromptTokens >= 100 {
			sawUsage = true
		}
	}
	if !strings.HasPrefix(text.String(), "According to demo__get_weather:") || !sawUsage {
		t.Errorf("stream: text %q, summed usage chunk %v", text.String(), sawUsage)
	}
}

// TestAgentBoundsAndRefusals: max_steps ends a loop the model never ends;
// a tool under approval is refused with a reason the model reads; the
// client's own tools are returned to it.
func TestAgentBoundsAndRefusals(t *testing.T) {
	url := startDemo(t)
	t.Run("max_steps", func(t *testing.T) {
		g := gwtest.Start(t, agentConfig(url, "{max_steps: 3}"))
		// tool_choice names the tool: the simulator calls it every turn.
		r := postChat(t, g.URL, `{"model":"sim-chat-agent","tool_choice":{"type":"function","function":{"name":"demo__add"}},"messages":[{"role":"user","content":"add two numbers"}]}`)
		var c completion
		if r.status != 200 || json.Unmarshal(r.body, &c) != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if c.Choices[0].FinishReason != "length" || c.Choices[0].Message.Content == nil || !strings.Contains(*c.Choices[0].Message.Content, "max_steps (3") {
			t.Errorf("want a length finish naming max_steps: %s", r.body)
		}
		if r.header.Get("x-switchyard-agent-steps") != "3" {
			t.Errorf("steps %q, want 3", r.header.Get("x-switchyard-agent-steps"))
		}
	})
	t.Run("approval", func(t *testing.T) {
		g := gwtest.Start(t, agentConfig(url, `{approval: ["demo__lookup_*"]}`))
		r := postChat(t, g.URL, `{"model":"sim-chat-agent","messages":[{"role":"user","content":"where is my order\ncall demo__lookup_order {\"order_id\":\"A-1001\"}"}]}`)
		var c completion
		if r.status != 200 || json.Unmarshal(r.body, &c) != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if !strings.Contains(*c.Choices[0].Message.Content, "needs a person's approval") {
			t.Errorf("the model did not get the refusal: %s", r.body)
		}
	})
	t.Run("client tools", func(t *testing.T) {
		g := gwtest.Start(t, agentConfig(url, "{}"))
		r := postChat(t, g.URL, `{"model":"sim-chat-agent","tools":[{"type":"function","function":{"name":"my_tool","parameters":{"type":"object","properties":{}}}}],"messages":[{"role":"user","content":"call my_tool"}]}`)
		var c completion
		if r.status != 200 || json.Unmarshal(r.body, &c) != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if c.Choices[0].FinishReason != "tool_calls" || len(c.Choices[0].Message.ToolCalls) != 1 || !strings.Contains(string(c.Choices[0].Message.ToolCalls[0]), "my_tool") {
			t.Errorf("the client's tool call was not returned to it: %s", r.body)
		}
		// A client tool named like one of the gateway's is refused.
		r = postChat(t, g.URL, `{"model":"sim-chat-agent","tools":[{"type":"function","function":{"name":"demo__add"}}],"messages":[{"role":"user","content":"hi"}]}`)
		if r.status != 400 || !strings.Contains(string(r.body), "demo__add") {
			t.Errorf("a clashing client tool: %d %s", r.status, r.body)
		}
	})
}
