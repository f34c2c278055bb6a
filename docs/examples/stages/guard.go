package stages

import (
	"bytes"
	"encoding/json"
	"errors"

	"switchyard/gateway"
)

// doc:begin guard
// Guard keeps the last Window events of a chat stream from the client until
// later ones arrive, so that a denied phrase, even one split across chunks,
// is caught before any of it is sent: the stream then ends with an error
// event instead. A buffered answer is checked whole.
type Guard struct {
	Window int      `yaml:"window"` // events held back
	Deny   []string `yaml:"deny"`   // phrases that end the answer
}

var errWithheld = &gateway.Error{Status: 400, Code: gateway.CodeInvalidRequest, Message: "the answer was withheld by the guard"}

func (g *Guard) Validate() error {
	if g.Window < 1 || len(g.Deny) == 0 {
		return errors.New("guard needs window >= 1 and at least one deny phrase")
	}
	return nil
}

func (g *Guard) Handle(x *gateway.Exchange, next gateway.Handler) error {
	if x.Op != gateway.OpChat {
		return next.Handle(x)
	}
	if x.Fields.Stream {
		x.ObserveStream(&guardObserver{g: g}) // one observer per exchange: it holds this stream's events
	}
	if err := next.Handle(x); err != nil {
		return err
	}
	if !x.Streaming && g.denied(x.RespBody) {
		return errWithheld
	}
	return nil
}

func (g *Guard) denied(text []byte) bool {
	for _, d := range g.Deny {
		if bytes.Contains(text, []byte(d)) {
			return true
		}
	}
	return false
}

type guardObserver struct {
	g    *Guard
	held [][]byte // the events held back, oldest first ("[DONE]" included)
	text []byte   // their content, joined
}

func (o *guardObserver) OnEvent(_ *gateway.Exchange, dst, data []byte) ([]byte, error) {
	o.held = append(o.held, append([]byte(nil), data...)) // data is valid only during the call
	o.text = o.text[:0]
	for _, e := range o.held {
		o.text = appendContent(o.text, e)
	}
	if o.g.denied(o.text) {
		return dst, errWithheld // what is held is never sent; the upstream is cancelled
	}
	for len(o.held) > o.g.Window { // release the oldest
		dst = gateway.AppendEvent(dst, o.held[0])
		o.held = o.held[1:]
	}
	return dst, nil
}

func (o *guardObserver) OnEnd(_ *gateway.Exchange, dst []byte, cause error) []byte {
	if cause == nil { // a clean end: what is held has been checked
		for _, e := range o.held {
			dst = gateway.AppendEvent(dst, e)
		}
	}
	o.held = nil
	return dst
}

// appendContent appends the content deltas of a chat chunk to dst; other
// events ("[DONE]") add nothing.
func appendContent(dst, data []byte) []byte {
	var c struct {
		Choices []struct{ Delta struct{ Content string } }
	}
	if json.Unmarshal(data, &c) != nil {
		return dst
	}
	for _, ch := range c.Choices {
		dst = append(dst, ch.Delta.Content...)
	}
	return dst
}

// doc:end guard
