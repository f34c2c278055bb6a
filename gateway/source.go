package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"switchyard/backends"
	"switchyard/internal/jsonscan"
	"switchyard/internal/sse"
	"switchyard/router"
)

// EventSource is the only input of the stream relay: an upstream's SSE
// stream, a replay of a stored answer, or events a stage synthesizes.
//
// Next returns the next event's data (without the "data: " framing) and,
// when the source has it, the event's raw wire form (its "event:" and "id:"
// lines included), which the relay then forwards byte for byte; raw may be
// nil, and the relay frames data itself. The slices are valid until the
// next call. io.EOF marks the clean end; any other error an abnormal one.
// Close releases what the source holds (an upstream connection, a
// concurrency slot); it is called exactly once, by whoever owns the
// exchange's response at that moment.
type EventSource interface {
	Next() (data, raw []byte, err error)
	Close() error
}

// bufferedSource is implemented by sources that can tell whether their next
// event is already here (the relay then waits with its flush).
type bufferedSource interface{ Buffered() bool }

// upstreamSource is an upstream's SSE stream. It lives in the Exchange, so
// relaying a stream allocates nothing; Close gives back the stream's
// connection and the concurrency slot its pick took.
type upstreamSource struct {
	x      *Exchange
	events *sse.Reader // kept across pooling: its buffer is reused
	stream *backends.Stream
	slot   *router.Upstream
	tokens int  // the prompt tokens counted on slot (Upstream.AddTokens)
	first  bool // an event has been read (its time is the TTFT)
	judged bool // the stream's outcome went to slot's breaker (verdict)
	// usageEvent: the last event carried the call's usage (now in x.Usage).
	usageEvent bool
}

var _ EventSource = (*upstreamSource)(nil)

func (u *upstreamSource) open(stream *backends.Stream, r io.Reader, slot *router.Upstream, tokens int) {
	u.stream, u.slot, u.tokens, u.first, u.judged = stream, slot, tokens, false, false
	if u.events == nil {
		u.events = sse.NewReader(r, maxStreamEvent)
	} else {
		u.events.Reset(r)
	}
}

// Next returns the upstream's next event; an event that carries the
// call's usage sets x.Usage, whoever reads the stream (the relay, or a
// stage reading a step to its end).
func (u *upstreamSource) Next() (data, raw []byte, err error) {
	data, raw, err = u.events.Next()
	if err != nil {
		u.verdict(err)
		return data, raw, err
	}
	if !u.first {
		u.first = true
		if u.slot != nil {
			u.slot.ObserveTTFT(time.Since(u.x.upStart))
		}
	}
	u.stream.Extend(time.Now())
	u.usageEvent = false
	if pt, ct, ok := sse.ScanUsage(data); ok {
		u.x.Usage, u.usageEvent = Usage{pt, ct, sse.ScanCachedTokens(data)}, true
	} else if u.x.Op == OpResponses && (bytes.Contains(data, responseCompleted) || bytes.Contains(data, responseIncomplete)) {
		u.x.Usage = responsesUsage(data)
	}
	return data, raw, nil
}

var responseCompleted, responseIncomplete = []byte(`"response.completed"`), []byte(`"response.incomplete"`)

func (u *upstreamSource) Buffered() bool { return u.events.Buffered() }

// verdict reports how the stream ended to its upstream's circuit breaker,
// once: read to its end, a success; cut by the upstream (a lost connection,
// the backend's idle or total timeout), a failure. A stream the client
// left, that the route's timeout cut, or that is closed before its end
// (a stage or an observer stopped it) gives no verdict; neither does one
// pinned to the backend that stores its object, as for its other requests.
func (u *upstreamSource) verdict(err error) {
	if u.judged || u.slot == nil || u.x.pin != nil {
		return
	}
	u.judged = true
	switch {
	case err == io.EOF:
		u.slot.ReportSuccess(time.Now())
	case u.x.ctx.Err() == nil:
		u.slot.ReportFailure(time.Now())
	}
}

// Close ends the stream: one read to its end gives its connection back to
// the pool, any other is closed, which stops the upstream's generation.
func (u *upstreamSource) Close() error {
	if u.stream != nil {
		u.stream.Close()
		u.stream = nil
	}
	if u.slot != nil {
		u.slot.Release()
		u.slot.AddTokens(-u.tokens)
		u.slot = nil
	}
	u.events.Reset(nil)
	return nil
}

// Usage is the token usage of a model call.
type Usage struct {
	PromptTokens, CompletionTokens int64
	// CachedTokens are the prompt tokens the backend served from its
	// prefix cache (usage.prompt_tokens_details.cached_tokens), part of
	// PromptTokens; budgets price them at prices.cached_input.
	CachedTokens int64
}

// Add returns u plus v.
func (u Usage) Add(v Usage) Usage {
	return Usage{u.PromptTokens + v.PromptTokens, u.CompletionTokens + v.CompletionTokens, u.CachedTokens + v.CachedTokens}
}

// chunker renders OpenAI stream chunks of one answer: chat completion
// chunks or legacy completion chunks, with "usage": null on every chunk and
// the usage chunk at the end when the client asked for it.
type chunker struct {
	op           Op
	id, model    string
	created      int64
	includeUsage bool
	buf          []byte
}

func (c *chunker) head(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonscan.AppendString(dst, c.id)
	if c.op == OpCompletions {
		dst = append(dst, `,"object":"text_completion","created":`...)
	} else {
		dst = append(dst, `,"object":"chat.completion.chunk","created":`...)
	}
	dst = strconv.AppendInt(dst, c.created, 10)
	dst = append(dst, `,"model":`...)
	return jsonscan.AppendString(dst, c.model)
}

func (c *chunker) tail(dst []byte) []byte {
	if c.includeUsage {
		dst = append(dst, `,"usage":null`...)
	}
	return append(dst, '}')
}

// choice renders one chunk of choice i: for chat, delta is the raw JSON of
// the delta object; for completions, text is the text. finish is "" while
// the choice goes on.
func (c *chunker) choice(i int, delta []byte, text, finish string) []byte {
	b := c.head(c.buf[:0])
	b = append(b, `,"choices":[{"index":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	if c.op == OpCompletions {
		b = append(b, `,"text":`...)
		b = jsonscan.AppendString(b, text)
	} else {
		b = append(b, `,"delta":`...)
		b = append(b, delta...)
	}
	b = append(b, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		b = append(b, "null"...)
	} else {
		b = jsonscan.AppendString(b, finish)
	}
	b = append(b, "}]"...)
	c.buf = c.tail(b)
	return c.buf
}

// usage renders the usage chunk ("choices": []).
func (c *chunker) usage(u Usage) []byte {
	b := c.head(c.buf[:0])
	b = append(b, `,"choices":[],"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, u.PromptTokens, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, u.CompletionTokens, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, u.PromptTokens+u.CompletionTokens, 10)
	c.buf = append(b, "}}"...)
	return c.buf
}

func contentDelta(role bool, content string) []byte {
	var b []byte
	if role {
		b = append(b, `{"role":"assistant","content":`...)
	} else {
		b = append(b, `{"content":`...)
	}
	b = jsonscan.AppendString(b, content)
	return append(b, '}')
}

// listSource replays a fixed list of event payloads, then [DONE].
type listSource struct {
	events [][]byte
	i      int
}

func (l *listSource) Next() ([]byte, []byte, error) {
	if l.i < len(l.events) {
		l.i++
		return l.events[l.i-1], nil, nil
	}
	if l.i == len(l.events) {
		l.i++
		return []byte(sse.Done), nil, nil
	}
	return nil, nil, io.EOF
}

func (l *listSource) Buffered() bool { return l.i <= len(l.events) }

func (l *listSource) Close() error { return nil }

// storedAnswer is the part of a stored chat or legacy completion that a
// replay needs.
type storedAnswer struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message *struct {
			Content   *string           `json:"content"`
			Refusal   *string           `json:"refusal"`
			ToolCalls []json.RawMessage `json:"tool_calls"`
		} `json:"message"`
		Text         *string `json:"text"`
		FinishReason string  `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

// Replay turns a stored, complete answer to x's operation (a chat
// completion or a legacy completion, as an upstream sent it) into a stream
// for a streaming client: the role delta, the content (and tool calls),
// each choice's finish_reason in a chunk of its own, the usage chunk when
// the client asked for usage, and [DONE]. A stage answers a streaming
// client with it through x.RespondStream.
func Replay(x *Exchange, stored []byte) (EventSource, error) {
	if x.Op != OpChat && x.Op != OpCompletions {
		return nil, fmt.Errorf("replay: operation %s has no stream form", x.Op)
	}
	var a storedAnswer
	if err := json.Unmarshal(stored, &a); err != nil {
		return nil, fmt.Errorf("replay: reading the stored answer: %w", err)
	}
	c := &chunker{op: x.Op, id: a.ID, model: a.Model, created: a.Created, includeUsage: x.Fields.IncludeUsage}
	if c.created == 0 {
		c.created = time.Now().Unix()
	}
	l := &listSource{}
	add := func(b []byte) { l.events = append(l.events, append([]byte(nil), b...)) }
	for _, ch := range a.Choices {
		if x.Op == OpCompletions {
			text := ""
			if ch.Text != nil {
				text = *ch.Text
			}
			add(c.choice(ch.Index, nil, text, ""))
			add(c.choice(ch.Index, nil, "", ch.FinishReason))
			continue
		}
		content := ""
		if m := ch.Message; m != nil && m.Content != nil {
			content = *m.Content
		}
		add(c.choice(ch.Index, contentDelta(true, content), "", ""))
		if m := ch.Message; m != nil && m.Refusal != nil {
			d := jsonscan.AppendString([]byte(`{"refusal":`), *m.Refusal)
			add(c.choice(ch.Index, append(d, '}'), "", ""))
		}
		if m := ch.Message; m != nil && len(m.ToolCalls) > 0 {
			d := []byte(`{"tool_calls":[`)
			for i, tc := range m.ToolCalls {
				var call map[string]json.RawMessage
				if err := json.Unmarshal(tc, &call); err != nil {
					return nil, fmt.Errorf("replay: tool call %d: %w", i, err)
				}
				call["index"] = json.RawMessage(strconv.Itoa(i))
				b, _ := json.Marshal(call)
				if i > 0 {
					d = append(d, ',')
				}
				d = append(d, b...)
			}
			add(c.choice(ch.Index, append(d, "]}"...), "", ""))
		}
		add(c.choice(ch.Index, []byte("{}"), "", ch.FinishReason))
	}
	if c.includeUsage {
		var u Usage
		if a.Usage != nil {
			u = Usage{PromptTokens: a.Usage.PromptTokens, CompletionTokens: a.Usage.CompletionTokens}
		}
		add(c.usage(u))
	}
	return l, nil
}

// Synth is an event source whose text a stage produces as it goes (an
// agent's final answer, a review decision): it renders the chunks of x's
// operation, with the role delta first, each Send as a content chunk,
// Finish's finish_reason and usage at the end, then [DONE]. Send, Finish
// and Fail may be called from any goroutine; Next waits for them, or for
// the exchange's context to end.
type Synth struct {
	ctx   context.Context
	c     chunker
	ch    chan synthMsg
	once  sync.Once
	role  bool
	queue [][]byte
	done  bool
	err   error
}

type synthMsg struct {
	text   string
	finish string
	usage  Usage
	end    bool
	err    error
}

// NewSynth returns a synthesized source for x; model names the model in
// the chunks.
func NewSynth(x *Exchange, model string) *Synth {
	return &Synth{
		ctx: x.Context(),
		c: chunker{op: x.Op, id: "chatcmpl-" + string(x.RequestID), model: model, created: time.Now().Unix(),
			includeUsage: x.Fields.IncludeUsage},
		ch: make(chan synthMsg, 16),
	}
}

// ErrSynthClosed is returned by Send after Finish or Fail.
var ErrSynthClosed = errors.New("synthesized stream already ended")

// Send adds text to the answer. It blocks while the relay is behind, and
// fails when the exchange ended.
func (s *Synth) Send(text string) error { return s.put(synthMsg{text: text}) }

// Finish ends the answer with a finish_reason ("stop", "length", ...) and
// its usage.
func (s *Synth) Finish(reason string, u Usage) error {
	return s.put(synthMsg{finish: reason, usage: u, end: true})
}

// Fail ends the stream abnormally: the client gets an error event.
func (s *Synth) Fail(err error) error { return s.put(synthMsg{err: err, end: true}) }

func (s *Synth) put(m synthMsg) (err error) {
	defer func() {
		if recover() != nil { // sent after the end: the channel is closed
			err = ErrSynthClosed
		}
	}()
	select {
	case s.ch <- m:
		if m.end {
			s.once.Do(func() { close(s.ch) })
		}
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *Synth) Next() ([]byte, []byte, error) {
	for len(s.queue) == 0 {
		if s.done {
			return nil, nil, io.EOF
		}
		if s.err != nil {
			return nil, nil, s.err
		}
		var m synthMsg
		var ok bool
		select {
		case m, ok = <-s.ch:
		case <-s.ctx.Done():
			return nil, nil, s.ctx.Err()
		}
		if !ok {
			s.done = true
			continue
		}
		s.render(m)
	}
	e := s.queue[0]
	s.queue = s.queue[1:]
	return e, nil, nil
}

func (s *Synth) render(m synthMsg) {
	add := func(b []byte) { s.queue = append(s.queue, append([]byte(nil), b...)) }
	if m.err != nil {
		s.err = m.err
		return
	}
	if !s.role || m.text != "" {
		if s.c.op == OpCompletions {
			add(s.c.choice(0, nil, m.text, ""))
		} else {
			add(s.c.choice(0, contentDelta(!s.role, m.text), "", ""))
		}
		s.role = true
	}
	if !m.end {
		return
	}
	if s.c.op == OpCompletions {
		add(s.c.choice(0, nil, "", m.finish))
	} else {
		add(s.c.choice(0, []byte("{}"), "", m.finish))
	}
	if s.c.includeUsage {
		add(s.c.usage(m.usage))
	}
	add([]byte(sse.Done))
	s.done = true
}

// Close ends the source; a stage still sending gets ErrSynthClosed.
func (s *Synth) Close() error {
	s.once.Do(func() { close(s.ch) })
	return nil
}
