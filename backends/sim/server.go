package sim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Server is one simulated GPU model server. It is safe for concurrent use.
type Server struct {
	o      Options
	dist   outputDist
	eng    *engine
	m      *serverMetrics
	srv    *fasthttp.Server
	ctx    context.Context // cancelled by Close: ends every wait
	cancel context.CancelFunc

	embedSem chan struct{}
	store    *responseStore

	clf               *Classifier // nil without classifier-model
	classifierSem     chan struct{}
	classifierWaiting atomic.Int64 // infer calls waiting for a slot of classifierSem

	faultMu  sync.Mutex
	faultRng splitmix64

	idPrefix string
	idSeq    atomic.Uint64
	created  atomic.Int64 // unix time of the model list
	stalling atomic.Int64 // requests in a stall fault (generation and infer), for tests

	closeOnce sync.Once
	closeErr  error
}

// New validates o and builds a server. o must name a single speed; use
// Options.PerServer to split a heterogeneous pool. The server owns no
// goroutines until Serve; Close stops it.
func New(o Options) (*Server, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if len(o.Speed) != 1 {
		return nil, fmt.Errorf("sim option speed=%v: New takes one speed; split the options with PerServer", o.Speed)
	}
	dist, _ := parseOutputLen(o.OutputLen)
	var rb [6]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, fmt.Errorf("making response id prefix: %w", err)
	}
	s := &Server{
		o:        o,
		dist:     dist,
		embedSem: make(chan struct{}, o.EmbedConcurrency),
		faultRng: splitmix64(o.Seed),
		idPrefix: hex.EncodeToString(rb[:]),
		store:    newResponseStore(o.ResponsesStore, responseStoreBytes),

		classifierSem: make(chan struct{}, o.ClassifierConcurrency),
	}
	if o.ClassifierModel != "" {
		s.clf = NewClassifier(o.ClassifierModel, o.ClassifierFeatures, o.ClassifierClasses)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.m = newServerMetrics(&s.o, func() *engine { return s.eng })
	if s.clf != nil {
		s.m.addClassifier(o.ClassifierModel,
			func() float64 { return float64(len(s.classifierSem)) },
			func() float64 { return float64(s.classifierWaiting.Load()) })
	}
	s.eng = newEngine(&s.o, s.m)
	s.created.Store(time.Now().Unix())
	s.srv = &fasthttp.Server{
		Handler:               s.Handler,
		Name:                  "switchyard-sim",
		MaxRequestBodySize:    o.MaxBodySize,
		IdleTimeout:           90 * time.Second,
		ReadTimeout:           60 * time.Second,
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		NoDefaultServerHeader: true,
	}
	return s, nil
}

// Models returns the model names the server serves through the OpenAI API:
// the generative model, then the embeddings model if it has one of its own.
// The classifier (Options.ClassifierModel) is served through /v2 only.
func (s *Server) Models() []string {
	if s.o.EmbedModel != "" {
		return []string{s.o.Model, s.o.EmbedModel}
	}
	return []string{s.o.Model}
}

// Options returns the validated options of the server.
func (s *Server) Options() Options { return s.o }

// Serve serves on ln until Close. It may be called for several listeners.
func (s *Server) Serve(ln net.Listener) error {
	if s.ctx.Err() != nil {
		return errClosed
	}
	return s.srv.Serve(ln)
}

// Close stops serving: waiting and running requests end, listeners close and
// connections are closed. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.eng.close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.ShutdownWithContext(ctx); err != nil {
			s.closeErr = fmt.Errorf("stopping the sim server: %w", err)
		}
	})
	return s.closeErr
}

// v2Prefix starts the paths of the Open Inference Protocol (v2.go).
var v2Prefix = []byte("/v2")

// Handler is the fasthttp handler for every endpoint.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	post := ctx.IsPost()
	switch string(path) {
	case "/v1/chat/completions":
		if post {
			s.chat(ctx)
			return
		}
	case "/v1/completions":
		if post {
			s.completions(ctx)
			return
		}
	case "/v1/embeddings":
		if post {
			s.embeddings(ctx)
			return
		}
	case "/v1/responses":
		if post {
			s.responses(ctx)
			return
		}
	case "/v1/models":
		if ctx.IsGet() {
			s.models(ctx)
			return
		}
	case "/health":
		if ctx.IsGet() || ctx.IsHead() {
			ctx.SetStatusCode(fasthttp.StatusOK)
			return
		}
	case "/metrics":
		if ctx.IsGet() {
			ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
			s.m.write(ctx)
			return
		}
	default:
		if bytes.HasPrefix(path, v2Prefix) && (len(path) == len(v2Prefix) || path[len(v2Prefix)] == '/') {
			s.serveV2(ctx, string(path))
			return
		}
		if id, ok := strings.CutPrefix(string(path), responsesPrefix); ok && id != "" && !strings.Contains(id, "/") {
			switch {
			case ctx.IsGet():
				s.getResponse(ctx, id)
				return
			case ctx.IsDelete():
				s.deleteResponse(ctx, id)
				return
			}
			break
		}
		s.writeError(ctx, &apiError{status: 404, typ: "invalid_request_error", code: "not_found",
			message: "no such endpoint: " + string(ctx.Method()) + " " + string(path)})
		return
	}
	ctx.Response.Header.Set("Allow", allowed(string(path)))
	s.writeError(ctx, &apiError{status: 405, typ: "invalid_request_error", code: "method_not_allowed",
		message: "method " + string(ctx.Method()) + " is not allowed on " + string(path)})
}

func allowed(path string) string {
	switch path {
	case "/v1/models", "/metrics":
		return "GET"
	case "/health":
		return "GET, HEAD"
	}
	if strings.HasPrefix(path, responsesPrefix) {
		return "GET, DELETE"
	}
	return "POST"
}

func (s *Server) writeError(ctx *fasthttp.RequestCtx, e *apiError) {
	if e.status == 429 || e.status == 503 {
		secs := int64((s.o.RetryAfter + time.Second - 1) / time.Second)
		ctx.Response.Header.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	ctx.SetStatusCode(e.status)
	ctx.SetContentType("application/json")
	ctx.SetBody(appendError(nil, e))
}

func (s *Server) models(ctx *fasthttp.RequestCtx) {
	b := append([]byte(nil), `{"object":"list","data":[`...)
	for i, m := range s.Models() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendJSONString(b, m)
		b = append(b, `,"object":"model","created":`...)
		b = strconv.AppendInt(b, s.created.Load(), 10)
		b = append(b, `,"owned_by":"switchyard-sim","root":`...)
		b = appendJSONString(b, m)
		b = append(b, `,"parent":null,"max_model_len":`...)
		b = strconv.AppendInt(b, int64(s.o.MaxModelLen), 10)
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func (s *Server) newID(prefix string) string {
	var b [40]byte
	d := append(b[:0], prefix...)
	d = append(d, s.idPrefix...)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], s.idSeq.Add(1))
	d = hex.AppendEncode(d, n[:])
	return string(d)
}

// fault is what a request suffers, chosen by header or by the rate flags.
type fault uint8

const (
	faultNone fault = iota
	fault500
	fault429
	faultStall
	faultDrop
	faultSlow
)

// FaultHeader is the request header that asks for a fault.
const FaultHeader = "x-sim-fault"

func (s *Server) pickFault(ctx *fasthttp.RequestCtx) (fault, *apiError) {
	if h := ctx.Request.Header.Peek(FaultHeader); len(h) > 0 {
		switch string(h) {
		case "500":
			return fault500, nil
		case "429":
			return fault429, nil
		case "stall":
			return faultStall, nil
		case "drop-mid-stream":
			return faultDrop, nil
		case "slow":
			return faultSlow, nil
		case "none":
			return faultNone, nil
		}
		return faultNone, badRequest("", "bad %s header %q: want 500, 429, stall, drop-mid-stream, slow or none", FaultHeader, h)
	}
	o := &s.o
	if o.ErrorRate == 0 && o.RateLimitRate == 0 && o.StallRate == 0 && o.DropRate == 0 && o.SlowRate == 0 {
		return faultNone, nil
	}
	s.faultMu.Lock()
	u := s.faultRng.float()
	s.faultMu.Unlock()
	for _, f := range [...]struct {
		rate float64
		f    fault
	}{{o.ErrorRate, fault500}, {o.RateLimitRate, fault429}, {o.StallRate, faultStall}, {o.DropRate, faultDrop}, {o.SlowRate, faultSlow}} {
		if u < f.rate {
			return f.f, nil
		}
		u -= f.rate
	}
	return faultNone, nil
}

// immediateFault answers 500 and 429 faults; it reports whether it did.
func (s *Server) immediateFault(ctx *fasthttp.RequestCtx, f fault) bool {
	switch f {
	case fault500:
		s.writeError(ctx, &apiError{status: 500, typ: "server_error", code: "internal_error", message: "simulated internal server error"})
		return true
	case fault429:
		s.writeError(ctx, &apiError{status: 429, typ: "requests", code: "rate_limit_exceeded", message: "simulated rate limit: retry after the time in retry-after"})
		return true
	}
	return false
}

func (s *Server) checkModel(model string, embed bool) *apiError {
	want := s.o.Model
	if embed && s.o.EmbedModel != "" {
		want = s.o.EmbedModel
	}
	if model == want {
		return nil
	}
	if model == "" {
		return badRequest("model", "%q is required", "model")
	}
	return &apiError{status: 404, typ: "invalid_request_error", code: "model_not_found", param: "model",
		message: fmt.Sprintf("the model %q does not exist; this server serves %q", model, want)}
}

// admissionError maps engine errors to answers.
func (s *Server) admissionError(err error) *apiError {
	switch {
	case errors.Is(err, errQueueFull):
		return &apiError{status: 503, typ: "server_error", code: "server_overloaded", message: err.Error()}
	case errors.Is(err, errClosed):
		return &apiError{status: 503, typ: "server_error", code: "shutting_down", message: err.Error()}
	}
	return &apiError{status: 500, typ: "server_error", code: "internal_error", message: err.Error()}
}

// buildSeqs turns prompts into sequences: n per prompt, sharing the prompt's
// block hashes. It checks the lengths against max-model-len and the KV cache.
// promptParam and limitParam name the request's prompt and limit fields in
// errors. A non-nil ans is the tool mode's answer, shared by every sequence:
// tool calls are as long as their tokens (cut at the limit: "length"), and
// end with "tool_calls".
func (s *Server) buildSeqs(prompts []tokenHasher, n int, limit int, explicit bool, seed int64, promptParam, limitParam string, ans *toolAnswer) ([]seq, usage, *apiError) {
	seqs := make([]seq, 0, len(prompts)*n)
	var u usage
	blocks := 0
	for pi := range prompts {
		p := &prompts[pi]
		if p.tokens >= s.o.MaxModelLen {
			return nil, u, badRequest(promptParam, "the prompt has %d tokens; this model's maximum context length is %d tokens", p.tokens, s.o.MaxModelLen)
		}
		lim := limit
		if explicit {
			if p.tokens+lim > s.o.MaxModelLen {
				return nil, u, badRequest(limitParam, "the prompt (%d tokens) plus %s (%d) exceed this model's maximum context length of %d tokens", p.tokens, limitParam, lim, s.o.MaxModelLen)
			}
		} else {
			lim = min(lim, s.o.MaxModelLen-p.tokens)
		}
		u.prompt += p.tokens
		for j := range n {
			sd := p.all ^ uint64(seed) ^ uint64(j)*0x9E3779B97F4A7C15
			q := seq{promptTokens: p.tokens, hashes: p.blocks, textSeed: sd, out: lim, finish: "stop", tool: ans}
			if ans.hasCalls() {
				q.out, q.finish = ans.tokens(), "tool_calls"
				if q.out > lim {
					q.out, q.finish = lim, "length"
				}
			} else if nat := s.dist.natural(sd); nat > 0 && nat < lim {
				q.out = nat
			} else if explicit {
				q.finish = "length"
			}
			u.completion += q.out
			blocks += blocksFor(q.promptTokens+q.out, s.o.BlockSize)
			seqs = append(seqs, q)
		}
	}
	if blocks > s.o.KVBlocks {
		return nil, u, badRequest(limitParam, "the request needs %d KV cache blocks; the server has %d", blocks, s.o.KVBlocks)
	}
	return seqs, u, nil
}

func (s *Server) newHasher() tokenHasher {
	h := tokenHasher{all: fnvOffset}
	if s.o.PrefixCaching {
		h.blockSize = s.o.BlockSize
	}
	return h
}

// Template tokens of the chat format: each message is <role> content <end>,
// and the prompt ends with the assistant's <role>.
var (
	tokenEndOfMessage = hashString("<|end|>")
	tokenAssistant    = hashString("<|assistant|>")
)

// genRequest is a parsed generation request: chat, completions or a
// Responses API response (resp set).
type genRequest struct {
	chat         bool
	resp         *respParams
	model        string
	stream       bool
	includeUsage bool
	seqs         []seq
	usage        usage
	nPerPrompt   int
}

func (s *Server) parseChat(body []byte) (*genRequest, *apiError) {
	var r chatRequest
	if e := decodeJSON(body, &r); e != nil {
		return nil, e
	}
	if e := s.checkModel(r.Model, false); e != nil {
		return nil, e
	}
	if len(r.Messages) == 0 {
		return nil, badRequest("messages", "%q must be a non-empty array", "messages")
	}
	h := s.newHasher()
	var ts *toolSet
	if present(r.Tools) || present(r.ToolChoice) {
		var e *apiError
		if ts, e = chatTools(&r); e != nil {
			return nil, e
		}
		addTools(&h, ts)
	}
	var calls [][]wireToolCall // per message; nil while no message has tool calls
	toolMsgs := false
	for i := range r.Messages {
		m := &r.Messages[i]
		if m.Role == "" {
			return nil, badRequest(fmt.Sprintf("messages[%d].role", i), "messages[%d].role is required", i)
		}
		toolMsgs = toolMsgs || m.Role == "tool"
		if m.Role == "assistant" && present(m.ToolCalls) {
			c, e := decodeToolCalls(m.ToolCalls, i)
			if e != nil {
				return nil, e
			}
			if calls == nil {
				calls = make([][]wireToolCall, len(r.Messages))
			}
			calls[i] = c
			if e := addAssistantCalls(&h, m, i, c); e != nil {
				return nil, e
			}
			continue
		}
		h.addToken(hashString("<|" + m.Role + "|>"))
		if e := messageText(m.Content, i, h.addText); e != nil {
			return nil, e
		}
		h.addToken(tokenEndOfMessage)
	}
	h.addToken(tokenAssistant)
	var ans *toolAnswer
	if ts != nil || calls != nil || toolMsgs {
		conv, e := chatConv(r.Messages, calls)
		if e != nil {
			return nil, e
		}
		ans = decideTools(ts, conv, h.all)
	}
	gr, e := s.finishGen(true, r.Model, r.Stream, r.StreamOptions, r.MaxCompletionTokens, r.MaxTokens, r.N, r.Seed, []tokenHasher{h}, ans)
	if e != nil {
		return nil, e
	}
	// Numbered sources in a system message make the answer cite them.
	cites := 0
	for i, m := range r.Messages {
		if m.Role == "system" || m.Role == "developer" {
			_ = messageText(m.Content, i, func(t string) { cites = max(cites, citeCount(t)) })
		}
	}
	for i := range gr.seqs {
		gr.seqs[i].cites = cites
	}
	return gr, nil
}

func (s *Server) parseCompletions(body []byte) (*genRequest, *apiError) {
	var r completionRequest
	if e := decodeJSON(body, &r); e != nil {
		return nil, e
	}
	if e := s.checkModel(r.Model, false); e != nil {
		return nil, e
	}
	inputs, e := parseTextInputs(r.Prompt, "prompt")
	if e != nil {
		return nil, e
	}
	if len(inputs) > s.o.MaxNumSeqs*4 && len(inputs) > 128 {
		return nil, badRequest("prompt", "too many prompts: %d", len(inputs))
	}
	hs := make([]tokenHasher, len(inputs))
	for i, in := range inputs {
		hs[i] = s.newHasher()
		if in.isID {
			hs[i].addTokenIDs(in.ids)
		} else {
			hs[i].addText(in.text)
		}
		if hs[i].tokens == 0 {
			return nil, badRequest("prompt", "prompt %d is empty", i)
		}
	}
	return s.finishGen(false, r.Model, r.Stream, r.StreamOptions, nil, r.MaxTokens, r.N, r.Seed, hs, nil)
}

func (s *Server) finishGen(chat bool, model string, stream bool, so *streamOptions, maxCompletion, maxTokens, n *int, seed *int64,
	prompts []tokenHasher, ans *toolAnswer) (*genRequest, *apiError) {
	if so != nil && !stream {
		return nil, badRequest("stream_options", "stream_options is only allowed when stream is true")
	}
	limit, explicit, e := outputLimit(maxCompletion, maxTokens, s.o.DefaultMaxTokens)
	if e != nil {
		return nil, e
	}
	nc, e := choiceCount(n)
	if e != nil {
		return nil, e
	}
	var sd int64
	if seed != nil {
		sd = *seed
	}
	promptParam, limitParam := "prompt", "max_tokens"
	if chat {
		promptParam = "messages"
	}
	if maxCompletion != nil {
		limitParam = "max_completion_tokens"
	}
	seqs, u, e := s.buildSeqs(prompts, nc, limit, explicit, sd, promptParam, limitParam, ans)
	if e != nil {
		return nil, e
	}
	return &genRequest{chat: chat, model: model, stream: stream, includeUsage: so != nil && so.IncludeUsage,
		seqs: seqs, usage: u, nPerPrompt: nc}, nil
}

func (s *Server) chat(ctx *fasthttp.RequestCtx) {
	r, e := s.parseChat(ctx.PostBody())
	s.generate(ctx, r, e)
}

func (s *Server) completions(ctx *fasthttp.RequestCtx) {
	r, e := s.parseCompletions(ctx.PostBody())
	s.generate(ctx, r, e)
}

// generate runs a parsed generation request: faults, the stall, admission,
// then a plain or streamed answer.
func (s *Server) generate(ctx *fasthttp.RequestCtx, r *genRequest, perr *apiError) {
	if perr != nil {
		s.writeError(ctx, perr)
		return
	}
	f, e := s.pickFault(ctx)
	if e != nil {
		s.writeError(ctx, e)
		return
	}
	if s.immediateFault(ctx, f) {
		return
	}
	g := &group{seqs: r.seqs, arrival: time.Now()}
	sl := &sleeper{conn: ctx.Conn(), check: s.o.DisconnectCheck}
	if f == faultStall {
		s.stalling.Add(1)
		err := sl.sleep(s.ctx, s.o.Stall)
		s.stalling.Add(-1)
		if err != nil {
			s.abandon(ctx, sl, err)
			return
		}
	}
	if err := s.eng.admit(s.ctx, g, sl); err != nil {
		s.abandon(ctx, sl, err)
		return
	}
	itlFactor := 1.0
	if f == faultSlow {
		itlFactor = s.o.SlowFactor
	}
	var id string
	switch {
	case r.resp != nil:
		id = s.newID("resp_")
	case r.chat:
		id = s.newID("chatcmpl-")
	default:
		id = s.newID("cmpl-")
	}
	created := time.Now().Unix()
	if r.stream && f == faultDrop {
		// Take the connection over, so that it can be closed mid-stream
		// without the terminating chunk.
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) {
			sl.conn = nil
			defer sl.stop()
			_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
			if err != nil {
				s.eng.release(g)
				return
			}
			s.streamAny(bufio.NewWriter(chunkWriter{c}), r, g, sl, itlFactor, true, id, created)
		})
		return
	}
	if r.stream {
		ctx.SetContentType("text/event-stream")
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			sl.conn = nil // write errors show a gone client
			defer sl.stop()
			s.streamAny(w, r, g, sl, itlFactor, false, id, created)
		})
		return
	}
	defer sl.stop()
	texts := make([][]byte, len(r.seqs))
	gens := make([]textGen, len(r.seqs))
	for i := range r.seqs {
		gens[i] = newSeqGen(&r.seqs[i])
	}
	err := s.eng.run(s.ctx, g, sl, itlFactor, func(step int) error {
		for i := range r.seqs {
			if r.seqs[i].out > step && !r.seqs[i].tool.hasCalls() {
				texts[i] = gens[i].next(texts[i], step == 0)
			}
		}
		return nil
	})
	if err != nil {
		s.abandon(ctx, sl, err)
		return
	}
	r.usage.cached = cachedUsage(r, g)
	var body []byte
	if r.resp != nil {
		body = s.appendResponsesBody(nil, r, id, created, texts[0])
		s.keep(r, id, body)
	} else {
		body = s.appendResponse(nil, r, id, created, texts)
	}
	if f == faultDrop {
		dropResponse(ctx, body)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// cachedUsage is the prompt tokens served from the prefix cache, counted
// once per prompt like the prompt tokens.
func cachedUsage(r *genRequest, g *group) int {
	n := 0
	for i := 0; i < len(g.seqs); i += r.nPerPrompt {
		n += g.seqs[i].cached
	}
	return n
}

// abandon ends a request that could not run.
func (s *Server) abandon(ctx *fasthttp.RequestCtx, sl *sleeper, err error) {
	sl.stop()
	if errors.Is(err, errClientGone) {
		ctx.SetConnectionClose()
		ctx.SetStatusCode(499)
		return
	}
	s.writeError(ctx, s.admissionError(err))
}

// dropResponse writes the head and half of a plain answer, then closes the
// connection: the client sees a truncated body.
func dropResponse(ctx *fasthttp.RequestCtx, body []byte) {
	head := fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	partial := append(head, body[:len(body)/2]...)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		_, _ = c.Write(partial)
	})
}

func (s *Server) appendResponse(b []byte, r *genRequest, id string, created int64, texts [][]byte) []byte {
	if r.chat {
		b = appendHead(b, id, "chat.completion", created, r.model)
	} else {
		b = appendHead(b, id, "text_completion", created, r.model)
	}
	b = append(b, `,"choices":[`...)
	for i := range r.seqs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		if q := &r.seqs[i]; r.chat && q.tool.hasCalls() {
			b = append(b, `,"message":{"role":"assistant","content":null,"tool_calls":`...)
			b = appendToolCalls(b, q.tool.cut(q.out), q.textSeed)
			b = append(b, `,"refusal":null}`...)
		} else if r.chat {
			b = append(b, `,"message":{"role":"assistant","content":`...)
			b = appendJSONString(b, string(texts[i]))
			b = append(b, `,"refusal":null}`...) // OpenAI's message always carries it
		} else {
			b = append(b, `,"text":`...)
			b = appendJSONString(b, string(texts[i]))
		}
		b = append(b, `,"logprobs":null,"finish_reason":"`...)
		b = append(b, r.seqs[i].finish...)
		b = append(b, `"}`...)
	}
	b = append(b, `],"usage":`...)
	b = appendUsage(b, r.usage, true)
	return append(b, '}')
}

// streamAny writes a streamed answer in the format of the request's API.
func (s *Server) streamAny(w *bufio.Writer, r *genRequest, g *group, sl *sleeper, itlFactor float64, drop bool, id string, created int64) {
	if r.resp != nil {
		s.streamResponses(w, r, g, sl, itlFactor, drop, id, created)
		return
	}
	s.stream(w, r, g, sl, itlFactor, drop, id, created)
}

// stream writes a streamed answer, one SSE event per token and choice,
// flushed as it goes; each choice ends with its finish event.
func (s *Server) stream(w *bufio.Writer, r *genRequest, g *group, sl *sleeper, itlFactor float64, drop bool, id string, created int64) {
	object := "text_completion"
	if r.chat {
		object = "chat.completion.chunk"
	}
	gens := make([]textGen, len(r.seqs))
	for i := range r.seqs {
		gens[i] = newSeqGen(&r.seqs[i])
	}
	dropAt := -1
	if drop {
		dropAt = g.seqsMaxOut() / 2
	}
	var buf, tok []byte
	err := s.eng.run(s.ctx, g, sl, itlFactor, func(step int) error {
		if step == dropAt {
			_ = w.Flush()
			return errClientGone // the caller closes the connection
		}
		for i := range r.seqs {
			q := &r.seqs[i]
			if q.out <= step {
				continue
			}
			buf = append(buf[:0], "data: "...)
			buf = appendHead(buf, id, object, created, r.model)
			buf = append(buf, `,"choices":[{"index":`...)
			buf = strconv.AppendInt(buf, int64(i), 10)
			if r.chat {
				buf = append(buf, `,"delta":{`...)
				if step == 0 {
					buf = append(buf, `"role":"assistant",`...)
				}
				if q.tool.hasCalls() {
					if step == 0 {
						buf = append(buf, `"content":null,`...)
					}
					buf = appendCallDelta(buf, q.tool, step, q.textSeed)
				} else {
					tok = gens[i].next(tok[:0], step == 0)
					buf = append(buf, `"content":`...)
					buf = appendJSONString(buf, string(tok))
				}
				buf = append(buf, '}')
			} else {
				tok = gens[i].next(tok[:0], step == 0)
				buf = append(buf, `,"text":`...)
				buf = appendJSONString(buf, string(tok))
			}
			buf = append(buf, `,"logprobs":null,"finish_reason":null}]`...)
			if r.includeUsage {
				buf = append(buf, `,"usage":null`...)
			}
			buf = append(buf, "}\n\n"...)
			if step == q.out-1 {
				buf = appendFinishChunk(buf, r, i, object, id, created)
			}
			if _, err := w.Write(buf); err != nil {
				return errClientGone
			}
			if err := w.Flush(); err != nil {
				return errClientGone
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, errClosed) {
			buf = append(buf[:0], "data: "...)
			buf = appendError(buf, s.admissionError(err))
			buf = append(buf, "\n\n"...)
			_, _ = w.Write(buf)
			_ = w.Flush()
		}
		return
	}
	if r.includeUsage {
		r.usage.cached = cachedUsage(r, g)
		buf = append(buf[:0], "data: "...)
		buf = appendHead(buf, id, object, created, r.model)
		buf = append(buf, `,"choices":[],"usage":`...)
		buf = appendUsage(buf, r.usage, true)
		buf = append(buf, "}\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return
		}
		if w.Flush() != nil {
			return
		}
	}
	_, _ = w.WriteString("data: [DONE]\n\n")
	_ = w.Flush()
}

// appendFinishChunk appends the event that ends choice i, sent right after
// its last token as OpenAI and vLLM send it: no new text (chat: "delta": {},
// completions: "text": "") and the finish_reason. Clients rely on it: the
// openai-go accumulator reports the content finished when a chunk without
// content follows the content.
func appendFinishChunk(buf []byte, r *genRequest, i int, object, id string, created int64) []byte {
	buf = append(buf, "data: "...)
	buf = appendHead(buf, id, object, created, r.model)
	buf = append(buf, `,"choices":[{"index":`...)
	buf = strconv.AppendInt(buf, int64(i), 10)
	if r.chat {
		buf = append(buf, `,"delta":{}`...)
	} else {
		buf = append(buf, `,"text":""`...)
	}
	buf = append(buf, `,"logprobs":null,"finish_reason":"`...)
	buf = append(buf, r.seqs[i].finish...)
	buf = append(buf, `"}]`...)
	if r.includeUsage {
		buf = append(buf, `,"usage":null`...)
	}
	return append(buf, "}\n\n"...)
}

// chunkWriter writes each Write as one HTTP/1.1 chunk.
type chunkWriter struct{ w io.Writer }

func (c chunkWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	head := strconv.AppendInt(make([]byte, 0, 24), int64(len(p)), 16)
	head = append(head, '\r', '\n')
	if _, err := c.w.Write(append(append(head, p...), '\r', '\n')); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (g *group) seqsMaxOut() int {
	m := 0
	for i := range g.seqs {
		m = max(m, g.seqs[i].out)
	}
	return m
}
