package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// assembler rebuilds the complete answer of a streamed chat or legacy
// completion from its chunks, as the upstream would have sent it
// unstreamed, so that a streamed miss is stored like a plain one (and
// replays to either kind of client).
type assembler struct {
	legacy  bool
	id      string
	model   string
	created int64
	fp      string
	choices map[int]*choiceAcc
	bad     error // the stream is not one we can store
}

type choiceAcc struct {
	content, refusal, text bytes.Buffer
	hasContent, hasRef     bool
	finish                 string
	tools                  map[int]*toolAcc
}

type toolAcc struct {
	id, typ, name string
	args          bytes.Buffer
}

// maxAssembled bounds what one answer may hold to be stored.
const maxAssembled = 8 << 20

type chunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	FP      string `json:"system_fingerprint"`
	Choices []struct {
		Index int `json:"index"`
		Delta *struct {
			Content   *string `json:"content"`
			Refusal   *string `json:"refusal"`
			ToolCalls []struct {
				Index    int    `json:"index"`
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function *struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		Text         *string `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

// add takes one event's data.
func (a *assembler) add(data []byte) {
	if a.bad != nil || bytes.Equal(data, []byte("[DONE]")) {
		return
	}
	var c chunk
	if err := json.Unmarshal(data, &c); err != nil {
		a.bad = fmt.Errorf("an event is not a chunk: %w", err)
		return
	}
	if c.Object == "error" || (c.Object == "" && len(c.Choices) == 0 && bytes.Contains(data, []byte(`"error"`))) {
		a.bad = errors.New("the stream carried an error")
		return
	}
	if a.id == "" {
		a.id, a.model, a.created, a.fp = c.ID, c.Model, c.Created, c.FP
	}
	if a.choices == nil {
		a.choices = map[int]*choiceAcc{}
	}
	size := 0
	for _, ch := range c.Choices {
		acc := a.choices[ch.Index]
		if acc == nil {
			acc = &choiceAcc{}
			a.choices[ch.Index] = acc
		}
		if ch.Text != nil {
			acc.text.WriteString(*ch.Text)
		}
		if d := ch.Delta; d != nil {
			if d.Content != nil {
				acc.content.WriteString(*d.Content)
				acc.hasContent = true
			}
			if d.Refusal != nil {
				acc.refusal.WriteString(*d.Refusal)
				acc.hasRef = true
			}
			for _, tc := range d.ToolCalls {
				if acc.tools == nil {
					acc.tools = map[int]*toolAcc{}
				}
				t := acc.tools[tc.Index]
				if t == nil {
					t = &toolAcc{}
					acc.tools[tc.Index] = t
				}
				if tc.ID != "" {
					t.id = tc.ID
				}
				if tc.Type != "" {
					t.typ = tc.Type
				}
				if f := tc.Function; f != nil {
					if f.Name != "" {
						t.name = f.Name
					}
					t.args.WriteString(f.Arguments)
				}
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			acc.finish = *ch.FinishReason
		}
		size += acc.content.Len() + acc.text.Len() + acc.refusal.Len()
	}
	if size > maxAssembled {
		a.bad = errors.New("the answer is too large to store")
	}
}

// answer returns the assembled answer with usage, or an error when the
// stream cannot be stored (an error event, a choice without a finish
// reason).
func (a *assembler) answer(promptTokens, completionTokens int64) ([]byte, error) {
	if a.bad != nil {
		return nil, a.bad
	}
	if len(a.choices) == 0 {
		return nil, errors.New("the stream had no choices")
	}
	idx := make([]int, 0, len(a.choices))
	for i := range a.choices {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	type toolCall struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	type message struct {
		Role      string     `json:"role"`
		Content   *string    `json:"content"`
		Refusal   *string    `json:"refusal"`
		ToolCalls []toolCall `json:"tool_calls,omitempty"`
	}
	type choice struct {
		Index        int      `json:"index"`
		Message      *message `json:"message,omitempty"`
		Text         *string  `json:"text,omitempty"`
		Logprobs     any      `json:"logprobs"`
		FinishReason string   `json:"finish_reason"`
	}
	out := struct {
		ID      string   `json:"id"`
		Object  string   `json:"object"`
		Created int64    `json:"created"`
		Model   string   `json:"model"`
		FP      string   `json:"system_fingerprint,omitempty"`
		Choices []choice `json:"choices"`
		Usage   struct {
			Prompt     int64 `json:"prompt_tokens"`
			Completion int64 `json:"completion_tokens"`
			Total      int64 `json:"total_tokens"`
		} `json:"usage"`
	}{ID: a.id, Object: "chat.completion", Created: a.created, Model: a.model, FP: a.fp}
	if a.legacy {
		out.Object = "text_completion"
	}
	for _, i := range idx {
		acc := a.choices[i]
		if acc.finish == "" {
			return nil, fmt.Errorf("choice %d did not finish", i)
		}
		c := choice{Index: i, FinishReason: acc.finish}
		if a.legacy {
			t := acc.text.String()
			c.Text = &t
		} else {
			m := &message{Role: "assistant"}
			if acc.hasContent || len(acc.tools) == 0 {
				s := acc.content.String()
				m.Content = &s
			}
			if acc.hasRef {
				s := acc.refusal.String()
				m.Refusal = &s
			}
			ti := make([]int, 0, len(acc.tools))
			for k := range acc.tools {
				ti = append(ti, k)
			}
			sort.Ints(ti)
			for _, k := range ti {
				t := acc.tools[k]
				var tc toolCall
				tc.ID, tc.Type = t.id, t.typ
				if tc.Type == "" {
					tc.Type = "function"
				}
				tc.Function.Name, tc.Function.Arguments = t.name, t.args.String()
				m.ToolCalls = append(m.ToolCalls, tc)
			}
			c.Message = m
		}
		out.Choices = append(out.Choices, c)
	}
	out.Usage.Prompt, out.Usage.Completion = promptTokens, completionTokens
	out.Usage.Total = promptTokens + completionTokens
	return json.Marshal(out)
}

// storable reports whether a complete answer may be stored: every choice
// finished by itself (stop or tool calls), not by a filter, not truncated
// unless allowed.
func storable(body []byte, allowLength bool) error {
	var a struct {
		Object  string `json:"object"`
		Choices []struct {
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("the answer is not JSON: %w", err)
	}
	if a.Object == "list" && len(a.Data) > 0 { // embeddings
		return nil
	}
	if len(a.Choices) == 0 {
		return errors.New("the answer has no choices")
	}
	for i, c := range a.Choices {
		switch c.FinishReason {
		case "stop", "tool_calls", "function_call":
		case "length":
			if !allowLength {
				return fmt.Errorf("choice %d was truncated (finish_reason length)", i)
			}
		default:
			return fmt.Errorf("choice %d ended with finish_reason %q", i, c.FinishReason)
		}
	}
	return nil
}
