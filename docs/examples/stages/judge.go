package stages

import (
	"encoding/json"
	"errors"
	"strings"

	"switchyard/gateway"
	"switchyard/internal/jsonscan"
)

// doc:begin judge
// Judge asks another model pool about each chat request before it goes on,
// through the gateway's own routing, chain and dispatch (env.Dispatcher is
// the Server; Do runs a request without HTTP). The verdict, the judge's
// first word, goes to the upstream and to the client as X-Judge-Verdict.
type Judge struct {
	Model string `yaml:"model"` // the judge's model pool

	do gateway.Dispatcher
}

func (j *Judge) Validate() error {
	if j.Model == "" {
		return errors.New("judge.model is required")
	}
	return nil
}

func (j *Judge) Provision(env *gateway.Env) error {
	j.do = env.Dispatcher // nil under `switchyard validate`, which runs no request
	return nil
}

func (j *Judge) Handle(x *gateway.Exchange, next gateway.Handler) error {
	if x.Op != gateway.OpChat {
		return next.Handle(x)
	}
	msgs, _ := jsonscan.Lookup(x.Body, "messages")
	body, err := json.Marshal(map[string]any{"model": j.Model, "max_tokens": 4, "messages": json.RawMessage(msgs)})
	if err != nil {
		return err
	}
	// x.Context(): the judge's call ends with the client's exchange. A nil
	// Principal runs it as the gateway; x.Principal would apply the
	// caller's key and its allow-list.
	resp, err := j.do.Do(x.Context(), &gateway.Request{Op: gateway.OpChat, Body: body, RequestID: string(x.RequestID) + "-judge"})
	if err != nil {
		return &gateway.Error{Status: 503, Code: gateway.CodeUnavailable, Message: "the judge model did not answer", Err: err}
	}
	var a struct {
		Choices []struct{ Message struct{ Content string } }
	}
	verdict := "none"
	if json.Unmarshal(resp.Body, &a) == nil && len(a.Choices) > 0 {
		if f := strings.Fields(a.Choices[0].Message.Content); len(f) > 0 {
			verdict = f[0]
		}
	}
	h := gateway.Header{Key: "X-Judge-Verdict", Value: verdict}
	x.UpstreamHeaders = append(x.UpstreamHeaders, h)
	x.ResponseHeaders = append(x.ResponseHeaders, h)
	return next.Handle(x)
}

// doc:end judge
