package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/internal/jsonscan"
)

// Stage is the agent stage: the gateway runs the tool loop for the client.
// It adds the registry's permitted tools to a chat request as OpenAI
// function tools, calls the model, runs the calls the model makes to those
// tools (in parallel when allowed), appends their results, and calls the
// model again, until it answers, calls one of the client's own tools, or a
// bound is hit. The client gets one ordinary chat completion (a stream
// when it asked for one: the final answer replayed), never the gateway's
// own tool calls.
type Stage struct {
	// Tools are globs over the registry's tool names (<server>__<tool>)
	// this route may use. Default all.
	Tools []string `yaml:"tools"`
	// MaxSteps bounds the model calls of one request. Default 8, at most
	// 64.
	MaxSteps int `yaml:"max_steps"`
	// MaxToolCalls bounds the tool calls of one request. Default 32, at
	// most 1024.
	MaxToolCalls int `yaml:"max_tool_calls"`
	// StepTimeout bounds each step's tool calls. Default 60s.
	StepTimeout config.Duration `yaml:"step_timeout"`
	// TotalTimeout bounds the whole loop: no step starts after it.
	// Default 5m.
	TotalTimeout config.Duration `yaml:"total_timeout"`
	// ParallelToolCalls lets the model make several calls in one step,
	// run at once. Default true.
	ParallelToolCalls *bool `yaml:"parallel_tool_calls"`
	// Approval are globs of tools whose every call needs a person's
	// approval first (the review stage); until it exists such calls are
	// refused with a clear reason.
	Approval []string `yaml:"approval"`
	// LogArguments records tool arguments in the audit trail as they are;
	// by default only their SHA-256.
	LogArguments bool `yaml:"log_arguments"`

	tools    toolbox
	parallel bool
	route    string
	log      *slog.Logger
	audit    *auditLog

	steps, calls             *metrics.Counter
	bounded, failed, refused *metrics.Counter
	stepTime                 *metrics.PrometheusHistogram
}

// toolbox is what the stage needs of the tool registry (*Registry).
type toolbox interface {
	Tools() *ToolSet
	Call(ctx context.Context, name string, args []byte) (Result, error)
}

var _ toolbox = (*Registry)(nil)

// Stage defaults and bounds.
const (
	DefaultMaxSteps     = 8
	DefaultMaxToolCalls = 32
	DefaultStepTimeout  = 60 * time.Second
	DefaultTotalTimeout = 5 * time.Minute
)

// Validate checks and defaults the settings.
func (s *Stage) Validate() error {
	if len(s.Tools) == 0 {
		s.Tools = []string{"*"}
	}
	for _, g := range append(append([]string(nil), s.Tools...), s.Approval...) {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("tools/approval: bad glob %q: %v", g, err)
		}
	}
	if s.MaxSteps == 0 {
		s.MaxSteps = DefaultMaxSteps
	}
	if s.MaxSteps < 1 || s.MaxSteps > 64 {
		return fmt.Errorf("max_steps: must be from 1 to 64, got %d", s.MaxSteps)
	}
	if s.MaxToolCalls == 0 {
		s.MaxToolCalls = DefaultMaxToolCalls
	}
	if s.MaxToolCalls < 1 || s.MaxToolCalls > 1024 {
		return fmt.Errorf("max_tool_calls: must be from 1 to 1024, got %d", s.MaxToolCalls)
	}
	if s.StepTimeout == 0 {
		s.StepTimeout = config.Duration(DefaultStepTimeout)
	}
	if s.TotalTimeout == 0 {
		s.TotalTimeout = config.Duration(DefaultTotalTimeout)
	}
	if s.StepTimeout < 0 || s.TotalTimeout < 0 {
		return errors.New("step_timeout, total_timeout: must be positive")
	}
	s.parallel = s.ParallelToolCalls == nil || *s.ParallelToolCalls
	return nil
}

// Provision finds the tool registry and registers the stage's metrics.
func (s *Stage) Provision(env *gateway.Env) error {
	r := RegistryOf(env)
	if r == nil {
		return errors.New("the agent stage needs the tool registry (tools.mcp in the config)")
	}
	s.tools, s.route, s.log = r, env.Route, env.Log
	lbl := `{route=` + strconv.Quote(env.Route) + `}`
	m := env.Metrics
	s.steps = m.Counter("switchyard_agent_steps_total"+lbl, "Model calls made by the agent stage.")
	s.calls = m.Counter("switchyard_agent_tool_calls_total"+lbl, "Tool calls the agent stage made or refused.")
	s.bounded = m.Counter("switchyard_agent_bounded_total"+lbl, "Agent loops ended by max_steps, max_tool_calls or total_timeout.")
	s.failed = m.Counter("switchyard_agent_tool_errors_total"+lbl, "Tool calls that failed (server down, timeout, bad arguments...).")
	s.refused = m.Counter("switchyard_agent_tool_refusals_total"+lbl, "Tool calls refused (approval needed).")
	s.stepTime = m.Histogram("switchyard_agent_step_seconds"+lbl, "Time of one agent step: the model call and its tool calls.", nil)
	return m.Err()
}

// matches reports whether name matches one of globs.
func matches(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// toolCall is one call the model made.
type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// answer is what the stage reads of a model's answer.
type answer struct {
	Choices []struct {
		Message      json.RawMessage `json:"message"`
		FinishReason string          `json:"finish_reason"`
	} `json:"choices"`
}

type answerMessage struct {
	ToolCalls []toolCall `json:"tool_calls"`
}

// Handle runs the tool loop for a chat completion.
func (s *Stage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	if x.Op != gateway.OpChat || s.tools == nil {
		return next.Handle(x)
	}
	if tc, ok := jsonscan.Lookup(x.Body, "tool_choice"); ok && string(tc) == `"none"` {
		return next.Handle(x)
	}
	set := s.tools.Tools()
	ours := map[string]bool{}
	permit := func(t *Tool) bool { return matches(s.Tools, t.Name) }
	for _, t := range set.Tools {
		if permit(t) {
			ours[t.Name] = true
		}
	}
	if len(ours) == 0 {
		return next.Handle(x)
	}
	// The client's tools stay; ours are added after them.
	var tools []byte
	tools = append(tools, '[')
	if raw, ok := jsonscan.Lookup(x.Body, "tools"); ok && len(raw) > 0 && raw[0] == '[' {
		var bad error
		_, err := jsonscan.Elements(raw, func(e []byte) bool {
			var t struct {
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			_ = json.Unmarshal(e, &t)
			if ours[t.Function.Name] {
				bad = fmt.Errorf("tools: the function %q is one of the gateway's tools on this route; rename yours", t.Function.Name)
				return false
			}
			if len(tools) > 1 {
				tools = append(tools, ',')
			}
			tools = append(tools, e...)
			return true
		})
		if bad != nil || err != nil {
			return &gateway.Error{Status: 400, Code: gateway.CodeInvalidRequest, Param: "tools", Message: errors.Join(bad, err).Error()}
		}
	}
	if len(tools) > 1 {
		tools = append(tools, ',')
	}
	tools = set.AppendFunctions(tools, permit)
	tools = append(tools, ']')
	if err := x.SetField("tools", tools); err != nil {
		return err
	}
	if !s.parallel {
		if err := x.SetField("parallel_tool_calls", []byte("false")); err != nil {
			return err
		}
	}
	// Every step is a buffered call; a streaming client gets the final
	// answer replayed as a stream.
	stream := x.Fields.Stream
	streamOpts, hadOpts := jsonscan.Lookup(x.Body, "stream_options")
	streamOpts = append([]byte(nil), streamOpts...)
	if stream {
		if err := x.DeleteField("stream_options"); err != nil {
			return err
		}
		if err := x.SetField("stream", []byte("false")); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(s.TotalTimeout.D())
	calls := 0
	var final []byte
	step := 0
	for {
		step++
		start := time.Now()
		if err := next.Handle(x); err != nil {
			return err
		}
		s.steps.Inc()
		if x.Status != 200 {
			return nil // an error answer goes to the client as it is
		}
		var a answer
		if err := json.Unmarshal(x.RespBody, &a); err != nil || len(a.Choices) == 0 {
			return &gateway.Error{Status: 502, Code: gateway.CodeUpstream, Message: "the model's answer is not a chat completion", Err: err}
		}
		var m answerMessage
		_ = json.Unmarshal(a.Choices[0].Message, &m)
		var mine, theirs []toolCall
		for _, c := range m.ToolCalls {
			if ours[c.Function.Name] {
				mine = append(mine, c)
			} else {
				theirs = append(theirs, c)
			}
		}
		if len(mine) == 0 {
			final = append([]byte(nil), x.RespBody...)
			break
		}
		if len(theirs) > 0 {
			// The client's calls go back to it; ours are dropped from this
			// turn (the model may make them again once it has the
			// client's results).
			b, err := withoutCalls(x.RespBody, ours)
			if err != nil {
				return err
			}
			final = b
			break
		}
		if step >= s.MaxSteps || calls+len(mine) > s.MaxToolCalls || time.Now().After(deadline) {
			s.bounded.Inc()
			final = s.stopped(x, step, calls, len(mine), time.Now().After(deadline))
			break
		}
		results := s.run(x, step, mine)
		calls += len(mine)
		msgs, err := appendTurn(x.Body, a.Choices[0].Message, mine, results)
		if err != nil {
			return err
		}
		if err := x.SetField("messages", msgs); err != nil {
			return err
		}
		s.stepTime.UpdateDuration(start)
	}
	final = withUsage(final, x.TotalUsage())
	x.ResponseHeaders = append(x.ResponseHeaders,
		gateway.Header{Key: "x-switchyard-agent-steps", Value: strconv.Itoa(step)},
		gateway.Header{Key: "x-switchyard-agent-tool-calls", Value: strconv.Itoa(calls)})
	if !stream {
		x.RespBody = append(x.RespBody[:0], final...)
		return nil
	}
	if err := x.SetField("stream", []byte("true")); err != nil {
		return err
	}
	if hadOpts {
		if err := x.SetField("stream_options", streamOpts); err != nil {
			return err
		}
	}
	src, err := gateway.Replay(x, final)
	if err != nil {
		return err
	}
	x.RespondStream(src)
	return nil
}

// result is one tool call's outcome, as the model will read it.
type result struct {
	text string
}

// run makes one step's calls, in parallel when allowed, each bounded by
// step_timeout and the exchange's context.
func (s *Stage) run(x *gateway.Exchange, step int, calls []toolCall) []result {
	out := make([]result, len(calls))
	ctx, cancel := context.WithTimeout(x.Context(), s.StepTimeout.D())
	defer cancel()
	one := func(i int) {
		c := calls[i]
		start := time.Now()
		rec := auditEntry{RequestID: string(x.RequestID), Route: s.route, Step: step, Tool: c.Function.Name, At: start.UTC()}
		if s.LogArguments {
			rec.Arguments = c.Function.Arguments
		} else {
			sum := sha256.Sum256([]byte(c.Function.Arguments))
			rec.ArgumentsSHA256 = hex.EncodeToString(sum[:])
		}
		s.calls.Inc()
		switch {
		case matches(s.Approval, c.Function.Name):
			s.refused.Inc()
			rec.Decision, rec.Reason = "review", "needs approval; no review stage is configured, so it is refused"
			out[i].text = "Error: the call to " + c.Function.Name + " needs a person's approval, and approvals are not available on this gateway, so it was not made."
		default:
			res, err := s.tools.Call(ctx, c.Function.Name, []byte(c.Function.Arguments))
			rec.Decision = "allow"
			switch {
			case err != nil:
				s.failed.Inc()
				rec.Error = err.Error()
				out[i].text = "Error: the call to " + c.Function.Name + " failed: " + err.Error()
			case res.IsError:
				rec.Error = "the tool reported an error"
				out[i].text = "Error from " + c.Function.Name + ": " + res.Text
			default:
				out[i].text = res.Text
			}
			rec.ResultBytes = res.Size
		}
		rec.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
		s.log.Info("agent tool call", "request_id", rec.RequestID, "route", rec.Route, "step", rec.Step, "tool", rec.Tool,
			"decision", rec.Decision, "result_bytes", rec.ResultBytes, "latency_ms", rec.LatencyMS, "error", rec.Error)
		s.audit.record(rec)
	}
	if !s.parallel || len(calls) == 1 {
		for i := range calls {
			one(i)
		}
		return out
	}
	var wg sync.WaitGroup
	for i := range calls {
		wg.Add(1)
		go func() { defer wg.Done(); one(i) }()
	}
	wg.Wait()
	return out
}

// appendTurn returns the request's messages with the model's turn (its
// message as it sent it) and one tool message per call appended.
func appendTurn(body, assistant []byte, calls []toolCall, results []result) ([]byte, error) {
	arr, ok := jsonscan.Lookup(body, "messages")
	if !ok || len(arr) < 2 || arr[0] != '[' {
		return nil, &gateway.Error{Status: 400, Code: gateway.CodeInvalidRequest, Param: "messages", Message: "messages: want an array"}
	}
	out := make([]byte, 0, len(arr)+len(assistant)+256)
	out = append(out, arr[:len(arr)-1]...) // without the closing ']'
	out = append(out, ',')
	out = append(out, assistant...)
	for i, c := range calls {
		out = append(out, `,{"role":"tool","tool_call_id":`...)
		out = jsonscan.AppendString(out, c.ID)
		out = append(out, `,"content":`...)
		out = jsonscan.AppendString(out, results[i].text)
		out = append(out, '}')
	}
	return append(out, ']'), nil
}

// withoutCalls removes the gateway's tool calls from an answer's first
// choice.
func withoutCalls(body []byte, ours map[string]bool) ([]byte, error) {
	var a map[string]json.RawMessage
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, err
	}
	var choices []map[string]json.RawMessage
	if err := json.Unmarshal(a["choices"], &choices); err != nil || len(choices) == 0 {
		return nil, fmt.Errorf("the model's answer has no choices: %v", err)
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(choices[0]["message"], &msg); err != nil {
		return nil, err
	}
	var calls []json.RawMessage
	_ = json.Unmarshal(msg["tool_calls"], &calls)
	kept := calls[:0]
	for _, c := range calls {
		var tc toolCall
		if json.Unmarshal(c, &tc) == nil && !ours[tc.Function.Name] {
			kept = append(kept, c)
		}
	}
	msg["tool_calls"], _ = json.Marshal(kept)
	choices[0]["message"], _ = json.Marshal(msg)
	a["choices"], _ = json.Marshal(choices)
	return json.Marshal(a)
}

// stopped is the answer when a bound ends the loop: a plain assistant
// message saying which, finish_reason "length".
func (s *Stage) stopped(x *gateway.Exchange, step, calls, wanted int, late bool) []byte {
	why := fmt.Sprintf("it reached max_steps (%d model calls)", s.MaxSteps)
	switch {
	case late:
		why = "it reached total_timeout (" + s.TotalTimeout.D().String() + ")"
	case calls+wanted > s.MaxToolCalls:
		why = fmt.Sprintf("the model asked for %d more tool calls than max_tool_calls (%d) allows", calls+wanted-s.MaxToolCalls, s.MaxToolCalls)
	}
	text := "The agent stopped before a final answer: " + why + ". Tool calls made: " + strconv.Itoa(calls) + "."
	b := []byte(`{"id":"chatcmpl-`)
	b = append(b, x.RequestID...)
	b = append(b, `","object":"chat.completion","created":`...)
	b = strconv.AppendInt(b, time.Now().Unix(), 10)
	b = append(b, `,"model":`...)
	b = jsonscan.AppendString(b, string(x.RequestModel))
	b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	b = jsonscan.AppendString(b, text)
	b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":"length"}]}`...)
	return b
}

// withUsage sets the answer's usage to u (every call of the loop).
func withUsage(body []byte, u gateway.Usage) []byte {
	raw := []byte(`{"prompt_tokens":`)
	raw = strconv.AppendInt(raw, u.PromptTokens, 10)
	raw = append(raw, `,"completion_tokens":`...)
	raw = strconv.AppendInt(raw, u.CompletionTokens, 10)
	raw = append(raw, `,"total_tokens":`...)
	raw = strconv.AppendInt(raw, u.PromptTokens+u.CompletionTokens, 10)
	raw = append(raw, '}')
	return jsonscan.Set(nil, body, "usage", raw)
}

// auditEntry is one tool call of the trail.
type auditEntry struct {
	RequestID       string    `json:"request_id"`
	Route           string    `json:"route"`
	Step            int       `json:"step"`
	Tool            string    `json:"tool"`
	Arguments       string    `json:"arguments,omitempty"`
	ArgumentsSHA256 string    `json:"arguments_sha256,omitempty"`
	Decision        string    `json:"decision"`
	Reason          string    `json:"reason,omitempty"`
	ResultBytes     int       `json:"result_bytes"`
	LatencyMS       float64   `json:"latency_ms"`
	Error           string    `json:"error,omitempty"`
	At              time.Time `json:"at"`
}

// auditLog keeps the latest entries by request id (the store-backed trail
// replaces it).
type auditLog struct {
	mu   sync.Mutex
	byID map[string][]auditEntry
	ids  []string
}

func newAuditLog() *auditLog { return &auditLog{byID: map[string][]auditEntry{}} }

// serve answers GET /admin/audit?request_id=ID: the request's tool calls.
func (a *auditLog) serve(ctx *fasthttp.RequestCtx, _ *gateway.Principal) {
	id := string(ctx.QueryArgs().Peek("request_id"))
	if id == "" {
		gateway.WriteError(ctx, &gateway.Error{Status: 400, Code: gateway.CodeInvalidRequest, Param: "request_id", Message: "request_id: required (the x-request-id of the request)"})
		return
	}
	a.mu.Lock()
	entries := append([]auditEntry(nil), a.byID[id]...)
	a.mu.Unlock()
	if entries == nil {
		entries = []auditEntry{}
	}
	b, _ := json.Marshal(map[string]any{"request_id": id, "tool_calls": entries})
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func (a *auditLog) record(e auditEntry) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.byID[e.RequestID]; !ok {
		a.ids = append(a.ids, e.RequestID)
		if len(a.ids) > 100000 {
			delete(a.byID, a.ids[0])
			a.ids = a.ids[1:]
		}
	}
	a.byID[e.RequestID] = append(a.byID[e.RequestID], e)
}
