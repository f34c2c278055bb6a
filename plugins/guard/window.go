package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"time"

	"switchyard/gateway"
	"switchyard/policy"
)

// window is the output check of a stream: events pass through it in
// order, but the last size bytes of text stay held back until the policy
// has seen what follows them, so a match across chunk boundaries is caught
// before any of it reaches the client. A denial ends the stream with a
// content_filter chunk (then the usage chunk when asked, then [DONE]).
//
// The policy runs only when text is about to be released: once at least
// every bytes beyond the hold-back are held (and at the end), on the
// released tail and everything held. So every byte is checked, with size
// bytes of what follows it, before the client gets it, and a stream of n
// bytes costs about n/every evaluations, not one per event.
type window struct {
	s     *Stage
	ctx   context.Context // the exchange's
	rid   string          // its request id, for the decision log
	usage bool            // the client asked for the usage chunk
	in    policy.Input    // the response phase's input, Output set per check
	size  int
	every int // bytes beyond size that wait for a check; 0 = 1

	held      []heldEvent
	heldBytes int
	tail      string // the last size bytes of the text already released
	ended     bool
	checks    int // evaluations so far, for tests

	id, object, model string
	created           int64
	chunks            int64 // content chunks seen, for the usage estimate
	promptTokens      int64
}

type heldEvent struct {
	framed []byte
	text   string
}

type streamChunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Delta *struct {
			Content *string `json:"content"`
		} `json:"delta"`
		Text *string `json:"text"`
	} `json:"choices"`
}

// OnEvent holds the event, checks the window, and releases what is older
// than the hold-back.
func (w *window) OnEvent(x *gateway.Exchange, dst, data []byte) ([]byte, error) {
	if w.ended {
		return dst, nil
	}
	if bytes.Equal(bytes.TrimSpace(data), []byte("[DONE]")) {
		if err := w.check(x, ""); err != nil {
			return dst, err
		}
		dst = w.release(dst, 0)
		return gateway.AppendEvent(dst, data), nil
	}
	var c streamChunk
	text := ""
	if json.Unmarshal(data, &c) == nil {
		if w.id == "" {
			w.id, w.object, w.model, w.created = c.ID, c.Object, c.Model, c.Created
		}
		for _, ch := range c.Choices {
			if ch.Delta != nil && ch.Delta.Content != nil {
				text += *ch.Delta.Content
			}
			if ch.Text != nil {
				text += *ch.Text
			}
		}
	}
	if text != "" {
		w.chunks++
	}
	w.held = append(w.held, heldEvent{framed: gateway.AppendEvent(nil, data), text: text})
	w.heldBytes += len(text)
	if w.heldBytes-w.size < max(1, w.every) {
		// Nothing to release yet, or less than a check's worth.
		if w.heldBytes == 0 {
			return w.release(dst, 0), nil // events without text pass when nothing is held before them
		}
		return dst, nil
	}
	if err := w.check(x, ""); err != nil {
		return dst, err
	}
	return w.release(dst, w.size), nil
}

// check evaluates the window (the released tail and everything held);
// a denial returns the stream's end.
func (w *window) check(x *gateway.Exchange, _ string) error {
	var b bytes.Buffer
	b.WriteString(w.tail)
	for _, h := range w.held {
		b.WriteString(h.text)
	}
	if b.Len() == 0 {
		return nil
	}
	w.checks++
	in := w.in
	in.Output = b.String()
	t0 := time.Now()
	d, err := w.s.eng.Eval(w.ctx, &in)
	if err != nil {
		return &gateway.Error{Status: 500, Code: gateway.CodeInternal, Message: "the answer could not be checked against the route's policies"}
	}
	if d.Allow {
		return nil
	}
	w.s.logDecision(w.rid, &in, d, time.Since(t0))
	w.ended = true
	w.held, w.heldBytes = nil, 0
	return &gateway.EndStream{Events: w.filtered(), Reason: d.Deny[0].Policy + ": " + d.Deny[0].Reason}
}

// release appends the held events while more than keep bytes of text
// would stay held after them.
func (w *window) release(dst []byte, keep int) []byte {
	i := 0
	for ; i < len(w.held); i++ {
		h := w.held[i]
		if keep > 0 && w.heldBytes-len(h.text) < keep {
			break
		}
		dst = append(dst, h.framed...)
		w.heldBytes -= len(h.text)
		w.tail += h.text
		if len(w.tail) > w.size {
			w.tail = w.tail[len(w.tail)-w.size:]
		}
	}
	w.held = append(w.held[:0], w.held[i:]...)
	return dst
}

// filtered is the end of a denied stream: a content_filter chunk, the
// usage chunk when the client asked for usage, [DONE].
func (w *window) filtered() []byte {
	object := w.object
	if object == "" {
		object = "chat.completion.chunk"
	}
	head := `{"id":` + strconv.Quote(w.id) + `,"object":` + strconv.Quote(object) + `,"created":` + strconv.FormatInt(w.created, 10) + `,"model":` + strconv.Quote(w.model)
	choice := `{"index":0,"delta":{},"logprobs":null,"finish_reason":"content_filter"}`
	if object == "text_completion" {
		choice = `{"index":0,"text":"","logprobs":null,"finish_reason":"content_filter"}`
	}
	out := gateway.AppendEvent(nil, []byte(head+`,"choices":[`+choice+`]}`))
	if w.usage {
		p, c := w.promptTokens, w.chunks
		out = gateway.AppendEvent(out, []byte(head+`,"choices":[],"usage":{"prompt_tokens":`+strconv.FormatInt(p, 10)+
			`,"completion_tokens":`+strconv.FormatInt(c, 10)+`,"total_tokens":`+strconv.FormatInt(p+c, 10)+`}}`))
	}
	return gateway.AppendEvent(out, []byte("[DONE]"))
}

// OnEnd releases what is still held after a last check (a stream that
// ended without [DONE]).
func (w *window) OnEnd(x *gateway.Exchange, dst []byte, cause error) []byte {
	if w.ended || len(w.held) == 0 {
		return dst
	}
	if cause == nil {
		if err := w.check(x, ""); err != nil {
			return dst // denied at the very end: the held text is dropped
		}
	}
	return w.release(dst, 0)
}
