package stages

import (
	"encoding/json"
	"io"
	"strconv"

	"github.com/VictoriaMetrics/metrics"

	"switchyard/gateway"
)

// doc:begin refine
// Refine asks the model twice, as an agent's loop calls next once per
// step: a draft, read here to its end, then the conversation with the
// draft and Prompt appended, whose answer goes to the client. The draft's
// usage goes to a response header, both steps' usage to a metric.
type Refine struct {
	Prompt string `yaml:"prompt"` // default "Improve your answer."

	tokens *metrics.Counter
}

func (r *Refine) Provision(env *gateway.Env) error {
	if r.Prompt == "" {
		r.Prompt = "Improve your answer."
	}
	r.tokens = env.Metrics.Counter(`switchyard_example_refine_tokens_total{route="`+env.Route+`"}`,
		"Tokens used by the refine stage's exchanges, both steps.")
	return nil
}

func (r *Refine) Handle(x *gateway.Exchange, next gateway.Handler) error {
	if x.Op != gateway.OpChat {
		return next.Handle(x)
	}
	if err := next.Handle(x); err != nil { // step 1: the draft
		return err
	}
	if x.Status != 200 {
		return nil // an upstream's error answer goes to the client as it is
	}
	draft, err := answerText(x)
	if err != nil {
		return err
	}
	x.ResponseHeaders = append(x.ResponseHeaders, gateway.Header{Key: "X-Refine-Draft-Tokens",
		Value: strconv.FormatInt(x.Usage.CompletionTokens, 10)}) // the latest call's usage
	if err := appendTurns(x, draft, r.Prompt); err != nil {
		return err
	}
	x.Defer(func(x *gateway.Exchange) {
		u := x.TotalUsage() // every call's; a stream's is known once it was sent
		r.tokens.Add(int(u.PromptTokens + u.CompletionTokens))
	})
	return next.Handle(x) // step 2: releases the draft's response, answers the client
}

// answerText returns the content of x's answer: a buffered body, or a
// stream read to its end here (which bypasses the stream observers).
func answerText(x *gateway.Exchange) (string, error) {
	if src := x.Source(); src != nil {
		var text []byte
		for {
			data, _, err := src.Next()
			if err == io.EOF {
				return string(text), nil
			}
			if err != nil {
				return "", &gateway.Error{Status: 502, Code: gateway.CodeUpstream, Message: "the draft's stream failed", Err: err}
			}
			text = appendContent(text, data) // from the guard example
		}
	}
	var a struct {
		Choices []struct{ Message struct{ Content string } }
	}
	if err := json.Unmarshal(x.RespBody, &a); err != nil || len(a.Choices) == 0 {
		return "", &gateway.Error{Status: 502, Code: gateway.CodeUpstream, Message: "the draft has no answer", Err: err}
	}
	return a.Choices[0].Message.Content, nil
}

// appendTurns appends the draft, as the assistant's turn, and prompt, as
// the user's, to the request's messages.
func appendTurns(x *gateway.Exchange, draft, prompt string) error {
	var req struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(x.Body, &req); err != nil {
		return &gateway.Error{Status: 400, Code: gateway.CodeInvalidRequest, Param: "messages", Message: "messages must be an array", Err: err}
	}
	a, _ := json.Marshal(map[string]string{"role": "assistant", "content": draft})
	u, _ := json.Marshal(map[string]string{"role": "user", "content": prompt})
	raw, _ := json.Marshal(append(req.Messages, a, u))
	return x.SetField("messages", raw)
}

// doc:end refine
