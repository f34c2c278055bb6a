// Package guard is the `guard` stage: Open Policy Agent policies (Rego
// files next to the config) on every request, response and stream, in
// process.
//
//	chain:
//	  - guard:
//	      policies: policy/rego      # relative to the config file
//	      data: {pii: redact, injection: flag}
//	      window: 64                 # bytes of a stream held back for the output check
//
// A request is denied (403 permission_error for access rules, 400
// content_policy_violation for content rules), redacted (spans replaced
// before it goes upstream), capped (max_tokens, temperature) or tagged as
// the decision says. Answers are checked too: a plain one whole, a stream on
// a sliding window as its events pass, ended the OpenAI way (finish_reason
// content_filter, then usage when asked, then [DONE]) with the upstream
// dropped. docs/guard.md has the input document and the decision object.
package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"switchyard/gateway"
	"switchyard/policy"
)

// Factory registers the stage kind "guard".
var Factory = gateway.Factory{
	Kind: "guard",
	Doc:  "OPA policies on requests, responses and streams: deny, redact, cap, tag",
	New:  func() gateway.Stage { return &Stage{} },
}

// CodeContentPolicy is the error code of a content rule's denial.
const CodeContentPolicy gateway.Code = "content_policy_violation"

// DefaultWindow is the stream hold-back in bytes.
const DefaultWindow = 64

// DefaultCheckEvery is how much new stream text waits for a check.
const DefaultCheckEvery = 16

// Stage holds the stage's settings; docs/guard.md documents each key.
type Stage struct {
	// Policies is the directory of the Rego modules (and their
	// *_test.rego tests), relative to the config file.
	Policies string `yaml:"policies"`
	// Data is given to the policies as data.switchyard.config.
	Data map[string]any `yaml:"data"`
	// Output checks answers (default true).
	Output *bool `yaml:"output"`
	// Window is how many bytes of a stream's text are held back, so that a
	// match across chunks is caught before the client sees it (default 64).
	Window int `yaml:"window"`
	// CheckEvery is how many bytes of new text may wait beyond the window
	// before the policy is evaluated and they are released (default 16):
	// the stream is checked once per that much text instead of on every
	// event, and at most window + check_every bytes are held back. 1 checks
	// whenever anything could be released.
	CheckEvery int `yaml:"check_every"`
	// LogInput puts the prompt in the decision log (default false: only a
	// hash of it).
	LogInput bool `yaml:"log_input"`
	// DecisionLog also appends every decision to this file, one JSON
	// object a line (relative to data_dir).
	DecisionLog string `yaml:"decision_log"`
	// Evaluator runs the policies: auto (default) compiles them to
	// WebAssembly and falls back to OPA's interpreter for a policy set or
	// an input the WebAssembly evaluator cannot take (the log says which
	// and why); wasm requires WebAssembly (a config error otherwise);
	// interpreter is OPA's interpreter only.
	Evaluator string `yaml:"evaluator"`

	eng    *policy.Engine
	log    *slog.Logger
	route  string
	output bool
	met    *gateway.StageMetrics
	file   *decisionFile
	// counters holds the decision counters by policy and result.
	counters sync.Map
}

// Provision loads, compiles and tests the policies: a module that does not
// compile, a failing Rego test or a decision of the wrong shape fails the
// config (a reload keeps the old one).
func (s *Stage) Provision(env *gateway.Env) error {
	if s.Policies == "" {
		return errors.New("policies: the directory of the Rego modules is required")
	}
	dir := s.Policies
	if !filepath.IsAbs(dir) && env.ConfigDir != "" {
		dir = filepath.Join(env.ConfigDir, dir)
	}
	if s.Window == 0 {
		s.Window = DefaultWindow
	}
	if s.Window < 0 || s.Window > 1<<16 {
		return fmt.Errorf("window: %d bytes is out of range (1 to 65536)", s.Window)
	}
	if s.CheckEvery == 0 {
		s.CheckEvery = DefaultCheckEvery
	}
	if s.CheckEvery < 0 || s.CheckEvery > 1<<16 {
		return fmt.Errorf("check_every: %d bytes is out of range (1 to 65536)", s.CheckEvery)
	}
	s.output = s.Output == nil || *s.Output
	s.log, s.route, s.met = env.Log, env.Route, env.Metrics
	if s.log == nil {
		s.log = slog.Default()
	}
	fallbacks := s.met.Counter(`switchyard_guard_interpreter_fallbacks_total{route=`+strconv.Quote(s.route)+`}`,
		"Guard evaluations the WebAssembly evaluator handed to OPA's interpreter.")
	eng, err := policy.Load(env.Context(), policy.Options{Dir: dir, Data: s.Data, Evaluator: s.Evaluator,
		OnFallback: func(error) { fallbacks.Inc() }})
	if err != nil {
		return fmt.Errorf("policies: %w", err)
	}
	s.eng = eng
	if name, why := eng.Evaluator(); why != "" && s.Evaluator != policy.EvaluatorInterpreter {
		s.log.Warn("guard: the policies run on OPA's interpreter, not WebAssembly", "route", s.route, "policies", dir, "reason", why)
	} else {
		s.log.Info("guard: policies loaded", "route", s.route, "policies", dir, "evaluator", name)
	}
	return s.provisionDecisionLog(env)
}

// Close releases the policies' WebAssembly instances.
func (s *Stage) Close() error {
	if s.eng != nil {
		return s.eng.Close()
	}
	return nil
}

// count returns the counter of decisions by policy and result, registered
// on first use and kept (the policies a set may name are not known before
// it decides).
func (s *Stage) count(pol, result string) *metrics.Counter {
	k := pol + "\x00" + result
	if c, ok := s.counters.Load(k); ok {
		return c.(*metrics.Counter)
	}
	c := s.met.Counter(`switchyard_guard_decisions_total{route=`+strconv.Quote(s.route)+`,policy=`+strconv.Quote(pol)+`,result=`+strconv.Quote(result)+`}`,
		"Guard decisions, by route, policy and result (allow, deny, redact, review, tag).")
	actual, _ := s.counters.LoadOrStore(k, c)
	return actual.(*metrics.Counter)
}

// body is the part of a request the guard reads.
type body struct {
	Messages []json.RawMessage `json:"messages"`
	Prompt   json.RawMessage   `json:"prompt"`
	Input    json.RawMessage   `json:"input"`
	Tools    []struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
		Name string `json:"name"`
	} `json:"tools"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// text reads a content (a string, or an array of parts whose text parts
// count).
func text(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) == nil {
		var b strings.Builder
		for _, p := range parts {
			if p.Text != "" {
				if b.Len() > 0 {
					b.WriteByte('\n')
				}
				b.WriteString(p.Text)
			}
		}
		return b.String()
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, "\n")
	}
	return ""
}

// input builds the request phase's input document.
func (s *Stage) input(x *gateway.Exchange, b *body) *policy.Input {
	in := &policy.Input{Phase: "request", Route: s.route, Operation: x.Op.String(), TokenEstimate: x.TokenEstimate()}
	if x.Pool != nil {
		in.Model = x.Pool.Name
	}
	if p := x.Principal; p != nil {
		in.Principal = &policy.Principal{KeyID: p.KeyID, Tenant: p.Tenant, Metadata: p.Metadata}
		if g := p.Metadata["groups"]; g != "" {
			in.Principal.Groups = strings.Split(g, ",")
		}
	}
	var prompt []string
	for _, raw := range b.Messages {
		var m message
		if json.Unmarshal(raw, &m) == nil {
			t := text(m.Content)
			in.Messages = append(in.Messages, policy.Message{Role: m.Role, Content: t})
			if t != "" {
				prompt = append(prompt, t)
			}
		}
	}
	for _, raw := range []json.RawMessage{b.Prompt, b.Input} {
		if len(raw) > 0 {
			if t := text(raw); t != "" {
				prompt = append(prompt, t)
			}
		}
	}
	in.Prompt = strings.Join(prompt, "\n")
	for _, t := range b.Tools {
		n := t.Function.Name
		if n == "" {
			n = t.Name
		}
		in.Tools = append(in.Tools, n)
	}
	return in
}

// logDecision writes the decision log line and counts it.
func (s *Stage) logDecision(requestID string, in *policy.Input, d *policy.Decision, took time.Duration) {
	attrs := []any{"request_id", requestID, "phase", in.Phase, "allow", d.Allow,
		"input_sha256", in.Hash(), "took_us", took.Microseconds()}
	var pols []string
	for _, r := range d.Deny {
		pols = append(pols, r.Policy)
		s.count(r.Policy, "deny").Inc()
	}
	for _, r := range d.Redact {
		s.count(r.Policy, "redact").Inc()
	}
	for _, r := range d.Review {
		s.count(r.Policy, "review").Inc()
	}
	if len(d.Deny) == 0 {
		s.count("", "allow").Inc()
	}
	if len(pols) > 0 {
		reasons := make([]string, len(d.Deny))
		for i, r := range d.Deny {
			reasons[i] = r.Policy + ": " + r.Reason
		}
		attrs = append(attrs, "policies", strings.Join(pols, ","), "reasons", strings.Join(reasons, "; "))
	}
	if len(d.Redact) > 0 {
		attrs = append(attrs, "redactions", len(d.Redact))
	}
	if len(d.Tags) > 0 {
		attrs = append(attrs, "tags", strings.Join(d.Tags, ","))
	}
	if s.LogInput {
		attrs = append(attrs, "prompt", in.Prompt)
	}
	s.log.Info("guard decision", attrs...)
	if s.file != nil {
		s.fileDecision(requestID, in, d, took)
	}
}

// denial is the error of a deny decision: access rules 403, content rules
// 400 with code content_policy_violation.
func denial(d *policy.Decision) error {
	r := d.Deny[0]
	if r.Kind == "access" {
		return &gateway.Error{Status: 403, Code: gateway.CodePermission, Message: fmt.Sprintf("%s (policy %s)", r.Reason, r.Policy)}
	}
	return &gateway.Error{Status: 400, Code: CodeContentPolicy, Type: "invalid_request_error", Message: fmt.Sprintf("%s (policy %s)", r.Reason, r.Policy)}
}

// Handle evaluates the request, applies the decision, and checks the
// answer.
func (s *Stage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	var b body
	if err := json.Unmarshal(x.Body, &b); err != nil {
		return &gateway.Error{Status: 400, Code: gateway.CodeInvalidRequest, Message: "the request body is not valid JSON"}
	}
	in := s.input(x, &b)
	t0 := time.Now()
	d, err := s.eng.Eval(x.Context(), in)
	if err != nil {
		s.log.Error("guard: the policy failed; refusing the request", "request_id", string(x.RequestID), "error", err.Error())
		return &gateway.Error{Status: 500, Code: gateway.CodeInternal, Message: "the request could not be checked against the route's policies"}
	}
	s.logDecision(string(x.RequestID), in, d, time.Since(t0))
	if !d.Allow {
		return denial(d)
	}
	if len(d.Review) > 0 {
		r := d.Review[0]
		return &gateway.Error{Status: 403, Code: gateway.CodePermission,
			Message: fmt.Sprintf("this request needs a person's review (policy %s: %s), and the route has no review stage", r.Policy, r.Reason)}
	}
	if d.Route != "" && (x.Pool == nil || d.Route != x.Pool.Name) {
		if err := x.SetPool(d.Route); err != nil {
			s.log.Warn("guard: a route decision could not be applied", "request_id", string(x.RequestID), "route_to", d.Route, "error", err.Message)
			return err
		}
	}
	if len(d.Redact) > 0 {
		if err := redact(x, &b, d.Redact); err != nil {
			return err
		}
	}
	if d.Cap != nil {
		if err := applyCap(x, d.Cap); err != nil {
			return err
		}
	}
	for _, tag := range d.Tags {
		x.ResponseHeaders = append(x.ResponseHeaders, gateway.Header{Key: "X-Switchyard-Policy-Tag", Value: tag})
	}
	if !s.output || x.Op == gateway.OpEmbeddings {
		return next.Handle(x)
	}
	base := *in
	promptTokens := int64(len(in.Prompt)+3) / 4
	base.Phase, base.Messages, base.Prompt = "response", nil, ""
	if x.Fields.Stream {
		x.ObserveStream(&window{s: s, ctx: x.Context(), rid: string(x.RequestID), usage: x.Fields.IncludeUsage,
			in: base, size: s.Window, every: s.CheckEvery, promptTokens: promptTokens})
	}
	if err := next.Handle(x); err != nil {
		return err
	}
	if !x.Streaming && x.Status == 200 {
		return s.checkAnswer(x, &base)
	}
	return nil
}

// fieldSetter is what redaction needs of the exchange.
type fieldSetter interface {
	SetField(key string, raw []byte) error
}

// redact replaces the decision's spans in the request's texts.
func redact(x *gateway.Exchange, b *body, rs []policy.Redaction) error { return redactWith(x, b, rs) }

func redactWith(x fieldSetter, b *body, rs []policy.Redaction) error {
	sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].Text) > len(rs[j].Text) }) // longer first
	repl := make([]string, 0, 2*len(rs))
	for _, r := range rs {
		repl = append(repl, r.Text, r.Replacement)
	}
	rp := strings.NewReplacer(repl...)
	var fix func(v any) any
	fix = func(v any) any {
		switch t := v.(type) {
		case string:
			return rp.Replace(t)
		case []any:
			for i := range t {
				t[i] = fix(t[i])
			}
		case map[string]any:
			for k, e := range t {
				if k == "content" || k == "text" || k == "prompt" || k == "input" || k == "messages" {
					t[k] = fix(e)
				} else if m, ok := e.(map[string]any); ok {
					t[k] = fix(m)
				} else if l, ok := e.([]any); ok && k != "tools" {
					t[k] = fix(l)
				}
			}
		}
		return v
	}
	for _, field := range []string{"messages", "prompt", "input"} {
		var raw json.RawMessage
		switch field {
		case "messages":
			if len(b.Messages) == 0 {
				continue
			}
			raw, _ = json.Marshal(b.Messages)
		case "prompt":
			raw = b.Prompt
		case "input":
			raw = b.Input
		}
		if len(raw) == 0 {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			continue
		}
		out, err := json.Marshal(fix(v))
		if err != nil {
			return err
		}
		if !bytes.Equal(out, raw) {
			if err := x.SetField(field, out); err != nil {
				return fmt.Errorf("guard: redacting %s: %w", field, err)
			}
		}
	}
	return nil
}

// applyCap lowers max_tokens (or sets it) and temperature.
func applyCap(x *gateway.Exchange, c *policy.Cap) error {
	if c.MaxTokens > 0 {
		n := strconv.FormatInt(c.MaxTokens, 10)
		switch {
		case x.Fields.HasMaxCompletionTokens:
			if x.Fields.MaxCompletionTokens > c.MaxTokens || x.Fields.MaxCompletionTokens <= 0 {
				if err := x.SetField("max_completion_tokens", []byte(n)); err != nil {
					return err
				}
			}
		case !x.Fields.HasMaxTokens || x.Fields.MaxTokens > c.MaxTokens || x.Fields.MaxTokens <= 0:
			if err := x.SetField("max_tokens", []byte(n)); err != nil {
				return err
			}
		}
	}
	if t := c.Temperature; t != nil {
		cur, err := strconv.ParseFloat(string(x.Fields.Temperature), 64)
		if !x.Fields.HasTemperature || err != nil || cur > *t {
			if err := x.SetField("temperature", []byte(strconv.FormatFloat(*t, 'g', -1, 64))); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkAnswer evaluates a buffered answer; a denied one keeps its shape
// with the content removed and finish_reason content_filter.
func (s *Stage) checkAnswer(x *gateway.Exchange, in *policy.Input) error {
	var a map[string]any
	if err := json.Unmarshal(x.RespBody, &a); err != nil {
		return nil // not JSON: nothing to check
	}
	choices, _ := a["choices"].([]any)
	var texts []string
	for _, c := range choices {
		cm, _ := c.(map[string]any)
		if m, ok := cm["message"].(map[string]any); ok {
			if t, ok := m["content"].(string); ok {
				texts = append(texts, t)
			}
		}
		if t, ok := cm["text"].(string); ok {
			texts = append(texts, t)
		}
	}
	if len(texts) == 0 {
		return nil
	}
	in.Output = strings.Join(texts, "\n")
	t0 := time.Now()
	d, err := s.eng.Eval(x.Context(), in)
	if err != nil {
		return &gateway.Error{Status: 500, Code: gateway.CodeInternal, Message: "the answer could not be checked against the route's policies"}
	}
	s.logDecision(string(x.RequestID), in, d, time.Since(t0))
	if d.Allow {
		return nil
	}
	for _, c := range choices {
		cm, _ := c.(map[string]any)
		if m, ok := cm["message"].(map[string]any); ok {
			m["content"] = nil
			delete(m, "tool_calls")
		}
		if _, ok := cm["text"]; ok {
			cm["text"] = ""
		}
		cm["finish_reason"] = "content_filter"
	}
	out, _ := json.Marshal(a)
	x.Respond(200, "application/json", out)
	return nil
}
