package stages

import (
	"encoding/json"
	"fmt"
	"strings"

	"switchyard/gateway"
)

// doc:begin notice
// Notice answers every chat request itself with a fixed text (a
// maintenance notice), never calling the model; a streaming client gets
// the text word by word from a synthesized stream.
type Notice struct {
	Text string `yaml:"text"`

	words []string
	body  []byte // the buffered answer
}

func (n *Notice) Validate() error {
	n.words = strings.Fields(n.Text)
	// Nothing reads the stream before Handle returns, and a Synth buffers
	// 16 messages: Handle sends at most 15 words and the Finish.
	if len(n.words) == 0 || len(n.words) > 15 {
		return fmt.Errorf("notice.text must have 1 to 15 words, got %d", len(n.words))
	}
	body, err := json.Marshal(map[string]any{
		"id": "chatcmpl-notice", "object": "chat.completion", "created": 0, "model": "notice",
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": strings.Join(n.words, " ")}}},
		"usage": map[string]int{"prompt_tokens": 0, "completion_tokens": len(n.words), "total_tokens": len(n.words)},
	})
	n.body = body
	return err
}

func (n *Notice) Handle(x *gateway.Exchange, next gateway.Handler) error {
	if x.Op != gateway.OpChat {
		return next.Handle(x)
	}
	if !x.Fields.Stream {
		x.Respond(200, "application/json", n.body)
		return nil
	}
	syn := gateway.NewSynth(x, "notice")
	for i, w := range n.words {
		if i > 0 {
			w = " " + w
		}
		if err := syn.Send(w); err != nil { // fails once the exchange has ended
			return err
		}
	}
	if err := syn.Finish("stop", gateway.Usage{CompletionTokens: int64(len(n.words))}); err != nil {
		return err
	}
	x.RespondStream(syn) // the exchange closes syn when the stream ends
	return nil
}

// doc:end notice
