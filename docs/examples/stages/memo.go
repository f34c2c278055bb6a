package stages

import (
	"fmt"
	"sync"

	"switchyard/gateway"
	"switchyard/internal/jsonscan"
)

// doc:begin memo
// Memo answers a chat request it has answered before (same model, same
// messages) without calling the model: a buffered answer with x.Respond, a
// streaming client with a replay of the stored answer. It remembers
// buffered answers only, at most Max of them, and forgets them on reload
// (see "Keeping state across reloads" for state that must stay).
type Memo struct {
	Max int `yaml:"max"` // answers kept; default 1000

	mu      sync.Mutex
	answers map[string][]byte
}

func (m *Memo) Validate() error {
	if m.Max < 0 {
		return fmt.Errorf("memo.max must be >= 0, got %d", m.Max)
	}
	if m.Max == 0 {
		m.Max = 1000
	}
	return nil
}

func (m *Memo) Provision(*gateway.Env) error {
	m.answers = make(map[string][]byte)
	return nil
}

func (m *Memo) Handle(x *gateway.Exchange, next gateway.Handler) error {
	if x.Op != gateway.OpChat {
		return next.Handle(x)
	}
	msgs, _ := jsonscan.Lookup(x.Body, "messages")
	key := string(x.RequestModel) + "\x00" + string(msgs)
	m.mu.Lock()
	stored := m.answers[key]
	m.mu.Unlock()
	if stored != nil {
		x.ResponseHeaders = append(x.ResponseHeaders, gateway.Header{Key: "X-Memo", Value: "hit"})
		if !x.Fields.Stream {
			x.Respond(200, "application/json", stored) // short-circuit: next is not called
			return nil
		}
		src, err := gateway.Replay(x, stored) // role, content, finish_reason, usage if asked, [DONE]
		if err != nil {
			return err
		}
		x.RespondStream(src)
		return nil
	}
	if err := next.Handle(x); err != nil {
		return err // an *gateway.Error, unchanged
	}
	if !x.Streaming && x.Status == 200 {
		m.mu.Lock()
		if len(m.answers) < m.Max {
			m.answers[key] = append([]byte(nil), x.RespBody...) // a copy: RespBody is the exchange's
		}
		m.mu.Unlock()
	}
	return nil
}

// doc:end memo
