package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/backends/batch"
	"switchyard/gateway/config"
	"switchyard/internal/jsonscan"
	"switchyard/internal/oip"
	"switchyard/internal/shed"
	"switchyard/internal/sse"
	"switchyard/router"
)

// The dynamic batcher of a pool (models[].batching, docs/batching.md).
//
// A caller's exchange runs its chain as usual; at dispatch, a batchable
// request is queued in its pool's batcher under a key that only requests
// which may share one upstream call have in common: the operation, the
// route, the pool's fallbacks the caller may use, the headers its stages
// set upstream, and every body field but the inputs (and "user"). A batch
// becomes one exchange of its own, dispatched like any other (retries,
// fallbacks, breakers); its answer is split back to each caller in order,
// with indices remapped and usage shared out. A batch the backend refuses
// with a 4xx is not failed for everyone: each of its callers is then sent
// alone, so only the bad input gets the error. Batched requests go upstream
// without their clients' own headers (those of one client must not reach
// the backend on behalf of others).

// poolBatcher is one pool's batcher, built with its generation.
type poolBatcher struct {
	b       *batch.Batcher[batchResult]
	gen     *Generation
	pool    *router.Pool
	cfg     *config.Batching
	p       proxy
	metrics *Metrics
	log     *slog.Logger
	seq     atomic.Uint64
}

// batchResult is what the batch's runner answers each caller.
type batchResult struct {
	status  int
	body    []byte
	ctype   []byte
	backend string
	batched int    // callers in the batch
	alone   bool   // dispatch this request by itself
	err     *Error // the batch failed
}

func (r *batchResult) Reset() {
	*r = batchResult{body: r.body[:0], ctype: r.ctype[:0]}
}

// buildBatchers makes the batchers of the pools that have batching on.
func (g *Generation) buildBatchers(cfg *config.Config, m *Metrics, log *slog.Logger) error {
	pools := g.Router.Pools()
	g.batchers = make([]*poolBatcher, len(pools))
	for i := range cfg.Models {
		mc := &cfg.Models[i]
		if mc.Batching == nil {
			continue
		}
		pool := g.Router.Pool([]byte(mc.Name))
		if pool == nil {
			continue
		}
		pb := &poolBatcher{gen: g, pool: pool, cfg: mc.Batching, metrics: m, log: log.With("model", pool.Name)}
		pb.p = proxy{gen: g, metrics: m, log: log}
		bc := mc.Batching
		name := pool.Name
		b, err := batch.New(batch.Options{
			MaxBatchSize:   bc.MaxBatchSize,
			MaxTokens:      bc.MaxTokens,
			MaxQueueDelay:  bc.MaxQueueDelay.D(),
			QueueSize:      bc.QueueSize,
			PriorityLevels: bc.PriorityLevels,
			MaxInFlight:    bc.MaxInFlight,
			OnBatch: func(requests, items int) {
				if m == nil {
					return
				}
				m.counter(seriesKey{name: "switchyard_batches_total", l: [4]string{name}}).Inc()
				m.histogram(seriesKey{name: "switchyard_batch_items", l: [4]string{name}}).Update(float64(items))
				m.histogram(seriesKey{name: "switchyard_batch_requests", l: [4]string{name}}).Update(float64(requests))
			},
			OnWait: func(d time.Duration) {
				if m != nil {
					m.histogram(seriesKey{name: "switchyard_batch_queue_delay_seconds", l: [4]string{name}}).Update(d.Seconds())
				}
			},
		}, pb.run)
		if err != nil {
			g.closeBatchers()
			return fmt.Errorf("%s:%d: models[%d].batching: %w", cfg.File, mc.Line, i, err)
		}
		pb.b = b
		g.batchers[pool.Index] = pb
	}
	return nil
}

func (g *Generation) closeBatchers() {
	for _, pb := range g.batchers {
		if pb != nil && pb.b != nil {
			pb.b.Close()
		}
	}
}

// batcherFor returns the batcher that x's request goes through, or nil.
func (g *Generation) batcherFor(x *Exchange) *poolBatcher {
	if x.Pool == nil || x.Pool.Index >= len(g.batchers) || x.Fields.Stream || x.inBatch {
		return nil
	}
	pb := g.batchers[x.Pool.Index]
	if pb == nil {
		return nil
	}
	switch x.Op {
	case OpEmbeddings, OpV2Infer:
		return pb
	case OpCompletions:
		if pb.cfg.Completions {
			return pb
		}
	}
	return nil
}

// Batch payload layout: op (1 byte), route index (2), the mask of the
// pool's fallbacks the caller may use (8), the model the caller asked for
// and the rest of its path (each as length (2) and bytes), the upstream
// headers the stages set (count (2), then each as key length (2), key,
// value length (2), value; a removal has value length 0xffff), then the
// body. All but the body is part of the batch key too.
const removedHeader = 0xffff

func appendBatchPayload(dst []byte, x *Exchange, mask uint64) []byte {
	dst = append(dst, byte(x.Op))
	dst = binary.BigEndian.AppendUint16(dst, uint16(x.Route.Index))
	dst = binary.BigEndian.AppendUint64(dst, mask)
	dst = appendField(dst, x.RequestModel)
	dst = appendField(dst, x.pathArg)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(x.UpstreamHeaders)+len(x.UpstreamRemoveHeaders)))
	for _, h := range x.UpstreamHeaders {
		dst = appendField(dst, []byte(h.Key))
		dst = appendField(dst, []byte(h.Value))
	}
	for _, k := range x.UpstreamRemoveHeaders {
		dst = appendField(dst, []byte(k))
		dst = binary.BigEndian.AppendUint16(dst, removedHeader)
	}
	return append(dst, x.Body...)
}

func appendField(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(min(len(b), removedHeader-1)))
	return append(dst, b[:min(len(b), removedHeader-1)]...)
}

// batchPayload is a payload read back.
type batchPayload struct {
	op    Op
	route int
	mask  uint64
	model []byte
	path  []byte
	heads []byte // the encoded headers
	body  []byte
}

func readBatchPayload(p []byte) (bp batchPayload) {
	bp.op = Op(p[0])
	bp.route = int(binary.BigEndian.Uint16(p[1:]))
	bp.mask = binary.BigEndian.Uint64(p[3:])
	i := 11
	field := func() []byte {
		n := int(binary.BigEndian.Uint16(p[i:]))
		i += 2
		if n == removedHeader {
			return nil
		}
		i += n
		return p[i-n : i]
	}
	bp.model, bp.path = field(), field()
	n := int(binary.BigEndian.Uint16(p[i:]))
	i += 2
	h := i
	for range n {
		field()
		field()
	}
	bp.heads, bp.body = p[h:i], p[i:]
	return bp
}

// setHeaders puts encoded headers on x's upstream header lists.
func setBatchHeaders(x *Exchange, heads []byte) {
	for i := 0; i < len(heads); {
		kl := int(binary.BigEndian.Uint16(heads[i:]))
		k := string(heads[i+2 : i+2+kl])
		i += 2 + kl
		vl := int(binary.BigEndian.Uint16(heads[i:]))
		i += 2
		if vl == removedHeader {
			x.UpstreamRemoveHeaders = append(x.UpstreamRemoveHeaders, k)
			continue
		}
		x.UpstreamHeaders = append(x.UpstreamHeaders, Header{Key: k, Value: string(heads[i : i+vl])})
		i += vl
	}
}

// inputShape classifies a raw input or prompt value: text (a string or an
// array of strings) or tokens (an array of integers, or an array of such
// arrays), with its number of items. ok is false for what cannot be
// batched (an empty array, mixed or other values); such a request goes
// alone and its backend judges it.
func inputShape(raw []byte) (tokens bool, items int, ok bool) {
	if len(raw) == 0 {
		return false, 0, false
	}
	switch raw[0] {
	case '"':
		return false, 1, true
	case '[':
	default:
		return false, 0, false
	}
	var first byte
	mixed := false
	n, err := jsonscan.Elements(raw, func(e []byte) bool {
		c := e[0]
		if c == '-' || c >= '0' && c <= '9' {
			c = '0'
		}
		if first == 0 {
			first = c
		} else if c != first {
			mixed = true
			return false
		}
		return true
	})
	if err != nil || mixed || n == 0 {
		return false, 0, false
	}
	switch first {
	case '"':
		return false, n, true
	case '0':
		return true, 1, true // one token array
	case '[':
		return true, n, true
	}
	return false, 0, false
}

// appendItems appends raw's items (see inputShape), comma-separated,
// without the enclosing array.
func appendItems(dst, raw []byte, tokens bool, items int) []byte {
	if raw[0] == '"' || tokens && items == 1 && !isArrayOfArrays(raw) {
		return append(dst, raw...)
	}
	inner := bytes.TrimSpace(raw[1 : len(raw)-1])
	return append(dst, inner...)
}

func isArrayOfArrays(raw []byte) bool {
	inner := bytes.TrimSpace(raw[1:])
	return len(inner) > 0 && inner[0] == '['
}

// inputKey is the body field a batchable operation batches.
func inputKey(op Op) string {
	if op == OpCompletions {
		return "prompt"
	}
	return "input"
}

// batched sends x through its pool's batcher. Requests that cannot share
// a batch (an input of an unusual shape, or larger than a batch) and those
// of a batch the backend refused are dispatched alone.
func (p *proxy) batched(x *Exchange, pb *poolBatcher) error {
	prio, perr := batchPriority(x, pb.cfg)
	if perr != nil {
		return perr
	}
	// The key: the payload's head (op, route, allowed fallbacks, model,
	// path, upstream headers), then what of the body must be equal.
	payload := appendBatchPayload(x.upBody[:0], x, x.fallbackMask(p.gen))
	x.upBody = payload
	k := append(x.tmp[:0], payload[:len(payload)-len(x.Body)]...)
	var items int
	tokens := len(x.Body)/4 + 1
	if x.Op == OpV2Infer {
		r := oipRequests.Get().(*oip.Request)
		err := oip.ParseRequest(x.Body, r)
		n, berr := r.BatchSize()
		if err == nil && berr == nil {
			k = oip.AppendBatchKey(k, r)
		}
		r.Reset()
		oipRequests.Put(r)
		if err != nil || berr != nil || n < 1 || n > int64(pb.cfg.MaxBatchSize) {
			return p.dispatch(x) // the backend judges what cannot be batched
		}
		items = int(n)
	} else {
		// The input kind, and the body without the input and user.
		key := inputKey(x.Op)
		in, _ := jsonscan.Lookup(x.Body, key)
		isTokens, n, ok := inputShape(in)
		if !ok {
			return p.dispatch(x)
		}
		items, tokens = n, len(in)/4+1
		if isTokens {
			k = append(k, 't')
		} else {
			k = append(k, 's')
		}
		rest := jsonscan.Delete(x.usageBody[:0], x.Body, key)
		k = jsonscan.Delete(k, rest, "user")
		x.usageBody = rest[:0]
	}
	x.tmp = k

	var res batchResult
	read := func(r *batchResult) {
		res.status, res.backend, res.batched, res.alone, res.err = r.status, r.backend, r.batched, r.alone, r.err
		x.RespBody = append(x.RespBody[:0], r.body...)
		x.ContentType = append(x.ContentType[:0], r.ctype...)
	}
	err := pb.b.Do(x.ctx, batch.Entry{Key: k, Payload: payload, Items: items, Tokens: tokens, Priority: prio}, read)
	switch {
	case errors.Is(err, batch.ErrTooLarge):
		pb.reject("too_large")
		return p.dispatch(x)
	case errors.Is(err, batch.ErrQueueFull):
		pb.reject("queue_full")
		return &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1,
			Message: "the batch queue of model " + x.Pool.Name + " is full; retry later"}
	case errors.Is(err, batch.ErrClosed):
		return &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1,
			Message: "the gateway is reloading model " + x.Pool.Name + "; retry"}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: fasthttp.StatusGatewayTimeout, Code: CodeUpstreamTimeout, Message: "the route's timeout passed while the request waited for its batch"}
	case err != nil:
		return &Error{Status: StatusClientClosed, Code: CodeClientClosed, Message: "the client closed the connection", Err: err}
	}
	if res.alone {
		pb.reject("alone")
		return p.dispatch(x)
	}
	if res.err != nil {
		e := *res.err
		return &e
	}
	x.Status, x.Backend = res.status, res.backend
	x.ResponseHeaders = append(x.ResponseHeaders, Header{Key: "X-Switchyard-Batch", Value: strconv.Itoa(res.batched)})
	if pt, ct, ok := sse.ScanUsage(x.RespBody); ok {
		x.Usage = Usage{PromptTokens: pt, CompletionTokens: ct}
	}
	return nil
}

// reject counts a request that did not go in a batch.
func (pb *poolBatcher) reject(reason string) {
	if pb.metrics != nil {
		pb.metrics.counter(seriesKey{name: "switchyard_batch_unbatched_total", l: [4]string{pb.pool.Name, reason}}).Inc()
	}
}

// batchPriority is x's level (0-based): its x-switchyard-priority header
// (1..levels), else the default; bounded by its key's priority class.
func batchPriority(x *Exchange, c *config.Batching) (int, error) {
	level := c.DefaultPriority
	if h := x.rreq.Header; h != nil {
		if v := h.Peek("X-Switchyard-Priority"); len(v) > 0 {
			n, err := strconv.Atoi(string(v))
			if err != nil || n < 1 || n > c.PriorityLevels {
				return 0, &Error{Status: fasthttp.StatusBadRequest, Code: CodeInvalidRequest,
					Message: "x-switchyard-priority must be a level from 1 to " + strconv.Itoa(c.PriorityLevels) + ", got " + strconv.Quote(string(v))}
			}
			level = n
		}
	}
	if p := x.Principal; p != nil {
		switch p.class {
		case shed.Standard:
			level = max(level, c.DefaultPriority)
		case shed.Sheddable:
			level = c.PriorityLevels
		}
	}
	return level - 1, nil
}

// fallbackMask has bit i set when x's caller may use its pool's fallback i.
func (x *Exchange) fallbackMask(g *Generation) uint64 {
	var m uint64
	for i, f := range x.Pool.Fallbacks {
		if i < 64 && x.Principal.allowsPool(g, f) {
			m |= 1 << i
		}
	}
	return m
}

// mayFallBack reports whether x may go on to its pool's fallback i.
func (x *Exchange) mayFallBack(g *Generation, i int, to *router.Pool) bool {
	if x.inBatch {
		return i < 64 && x.batchMask&(1<<i) != 0
	}
	return x.Principal.allowsPool(g, to)
}

// run sends one batch: one exchange whose body joins the callers' inputs,
// dispatched as any other, then split back to each caller.
func (pb *poolBatcher) run(ctx context.Context, reqs []*batch.Request[batchResult]) {
	first := readBatchPayload(reqs[0].Payload)
	if len(reqs) == 1 {
		// Nothing to join: the request goes as it came.
		pb.runOne(ctx, reqs[0], first)
		return
	}
	if first.op == OpV2Infer {
		pb.runV2(ctx, reqs, first)
		return
	}
	key := inputKey(first.op)
	x := pb.exchange(first, reqs)
	defer releaseExchange(x)

	// The joined input, and each caller's share of it.
	x.tmp = append(x.tmp[:0], '[')
	counts := make([]int, len(reqs))
	weights := make([]int, len(reqs))
	for i, r := range reqs {
		in, _ := jsonscan.Lookup(readBatchPayload(r.Payload).body, key)
		tokens, items, _ := inputShape(in)
		if i > 0 {
			x.tmp = append(x.tmp, ',')
		}
		x.tmp = appendItems(x.tmp, in, tokens, items)
		counts[i], weights[i] = items, r.Tokens
	}
	x.tmp = append(x.tmp, ']')
	body := jsonscan.Set(x.Body[:0], first.body, key, x.tmp)
	x.Body = jsonscan.Delete(x.upBody[:0], body, "user")
	x.upBody = body[:0]

	if !pb.dispatch(ctx, x, reqs) {
		return
	}
	split := pb.splitEmbeddings
	if first.op == OpCompletions {
		split = pb.splitCompletions
	}
	if err := split(x, reqs, counts, weights); err != nil {
		e := &Error{Status: fasthttp.StatusBadGateway, Code: CodeUpstream,
			Message: "backend " + x.Backend + " answered a batch of " + strconv.Itoa(len(reqs)) + " requests with a body the gateway cannot split", Err: err}
		pb.log.Warn("a batch's answer cannot be split", "backend", x.Backend, "error", err)
		for _, r := range reqs {
			r.Result.err = e
		}
	}
}

// runOne sends a batch of one request unchanged.
func (pb *poolBatcher) runOne(ctx context.Context, r *batch.Request[batchResult], p batchPayload) {
	one := []*batch.Request[batchResult]{r}
	x := pb.exchange(p, one)
	defer releaseExchange(x)
	x.Body = append(x.Body[:0], p.body...)
	if !pb.dispatch(ctx, x, one) {
		return
	}
	r.Result.status, r.Result.backend, r.Result.batched = x.Status, x.Backend, 1
	r.Result.body = append(r.Result.body[:0], x.RespBody...)
	r.Result.ctype = append(r.Result.ctype[:0], x.ContentType...)
}

// exchange makes the batch's own exchange: the first caller's operation,
// route, pool and upstream headers; the latest deadline of its callers.
func (pb *poolBatcher) exchange(p batchPayload, reqs []*batch.Request[batchResult]) *Exchange {
	g := pb.gen
	x := acquireExchange()
	x.gen, x.Op, x.Start, x.inBatch = g, p.op, time.Now(), true
	x.Route = g.Router.Routes()[p.route]
	x.Pool = pb.pool
	x.RequestModel = append(x.RequestModel[:0], p.model...)
	x.pathArg = append(x.pathArg[:0], p.path...)
	setBatchHeaders(x, p.heads)
	x.RequestID = append(x.RequestID[:0], "batch-"...)
	x.RequestID = strconv.AppendUint(x.RequestID, g.ID, 10)
	x.RequestID = append(x.RequestID, '-')
	x.RequestID = strconv.AppendUint(x.RequestID, pb.seq.Add(1), 36)
	var latest time.Time
	for _, r := range reqs {
		if r.Deadline.IsZero() {
			latest = time.Time{}
			break
		}
		if r.Deadline.After(latest) {
			latest = r.Deadline
		}
	}
	if !latest.IsZero() {
		x.ctx.setDeadline(max(time.Until(latest), time.Millisecond))
	}
	return x
}

// dispatch scans and sends the batch's exchange, and answers every caller
// when the batch failed (false); true leaves x holding a 2xx answer.
func (pb *poolBatcher) dispatch(ctx context.Context, x *Exchange, reqs []*batch.Request[batchResult]) bool {
	for _, r := range reqs {
		r.Result.batched = len(reqs)
	}
	if err := jsonscan.Scan(x.Body, &x.Fields); err != nil {
		e := &Error{Status: fasthttp.StatusInternalServerError, Code: CodeInternal, Message: "internal error: a batch's body", Err: err}
		for _, r := range reqs {
			r.Result.err = e
		}
		return false
	}
	x.Fields.Stream = false
	for _, r := range reqs {
		x.rreq.Tokens += r.Tokens
	}
	x.rreq.Model, x.rreq.Header, x.rreq.Metadata, x.rreq.PromptBytes = x.RequestModel, x.header, &x.meta, len(x.Body)
	x.batchMask = readBatchPayload(reqs[0].Payload).mask
	// The batcher's end (the generation retires) ends the batch too.
	xc := x.ctx
	xc.mu.Lock()
	xc.shared = true // the link may fire late: this context is not reused
	xc.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { xc.cancel(batch.ErrClosed) })
	err := pb.p.dispatch(x)
	stop()
	if err != nil {
		e := asError(err)
		for _, r := range reqs {
			r.Result.err = e
		}
		return false
	}
	if x.Status >= 300 {
		if len(reqs) > 1 && x.Status >= 400 && x.Status < 500 {
			// One bad input fails a whole batch: each caller goes alone,
			// so that only the bad one gets the backend's error.
			for _, r := range reqs {
				r.Result.alone = true
			}
			return false
		}
		for _, r := range reqs {
			r.Result.status, r.Result.backend = x.Status, x.Backend
			r.Result.body = append(r.Result.body[:0], x.RespBody...)
			r.Result.ctype = append(r.Result.ctype[:0], x.ContentType...)
		}
		return false
	}
	return true
}

// runV2 sends a batch of KServe v2 inference requests: their inputs joined
// along the first dimension, the outputs split back by each caller's batch
// size, each caller's own id on its answer.
func (pb *poolBatcher) runV2(ctx context.Context, reqs []*batch.Request[batchResult], first batchPayload) {
	x := pb.exchange(first, reqs)
	defer releaseExchange(x)
	parsed := make([]*oip.Request, len(reqs))
	counts := make([]int64, len(reqs))
	defer func() {
		for _, r := range parsed {
			if r != nil {
				r.Reset()
				oipRequests.Put(r)
			}
		}
	}()
	fail := func(e *Error) {
		for _, r := range reqs {
			r.Result.err = e
		}
	}
	for i, r := range reqs {
		parsed[i] = oipRequests.Get().(*oip.Request)
		err := oip.ParseRequest(readBatchPayload(r.Payload).body, parsed[i])
		if err == nil {
			counts[i], err = parsed[i].BatchSize()
		}
		if err != nil {
			fail(&Error{Status: fasthttp.StatusInternalServerError, Code: CodeInternal, Message: "internal error: a batched request no longer parses", Err: err})
			return
		}
	}
	id := append([]byte(nil), '"')
	id = append(id, x.RequestID...)
	id = append(id, '"')
	body, err := oip.AppendMerged(x.Body[:0], id, parsed)
	if err != nil {
		fail(&Error{Status: fasthttp.StatusInternalServerError, Code: CodeInternal, Message: "internal error: merging a batch", Err: err})
		return
	}
	x.Body = body
	if !pb.dispatch(ctx, x, reqs) {
		return
	}
	var resp oip.Response
	var sp oip.Splitter
	err = oip.ParseResponse(x.RespBody, &resp)
	if err == nil {
		err = sp.Prepare(&resp, id, counts)
	}
	for i, r := range reqs {
		if err != nil {
			break
		}
		r.Result.body, err = sp.Append(r.Result.body[:0], i, parsed[i].ID)
		r.Result.status, r.Result.backend = x.Status, x.Backend
		r.Result.ctype = append(r.Result.ctype[:0], x.ContentType...)
	}
	if err != nil {
		pb.log.Warn("a batch's answer cannot be split", "backend", x.Backend, "error", err)
		fail(&Error{Status: fasthttp.StatusBadGateway, Code: CodeUpstream,
			Message: "backend " + x.Backend + " answered a batch of " + strconv.Itoa(len(reqs)) + " requests with outputs the gateway cannot split: " + err.Error(), Err: err})
	}
}

// splitEmbeddings gives each caller its rows of an embeddings answer: the
// data entries of its inputs, indices from 0, and its share of the usage.
func (pb *poolBatcher) splitEmbeddings(x *Exchange, reqs []*batch.Request[batchResult], counts, weights []int) error {
	return pb.splitList(x, reqs, counts, weights, "data", 1, false)
}

// splitCompletions gives each caller the choices of its prompts (n per
// prompt, in the order OpenAI numbers them) and its share of the usage.
func (pb *poolBatcher) splitCompletions(x *Exchange, reqs []*batch.Request[batchResult], counts, weights []int) error {
	n := 1
	if v, ok := jsonscan.Lookup(x.Body, "n"); ok {
		if k, ok := jsonscan.ParseInt(v); ok && k > 0 {
			n = int(k)
		}
	}
	return pb.splitList(x, reqs, counts, weights, "choices", n, true)
}

// splitList splits the array field of x's answer whose elements carry an
// "index": caller i gets the elements numbered from its offset times per,
// counts[i] times per of them, renumbered from 0.
func (pb *poolBatcher) splitList(x *Exchange, reqs []*batch.Request[batchResult], counts, weights []int, field string, per int, completion bool) error {
	up := x.RespBody
	arr, ok := jsonscan.Lookup(up, field)
	if !ok {
		return fmt.Errorf("no %q in the answer", field)
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	total *= per
	// Every element's place in up and its index's place, so that each
	// caller's body is assembled from pieces of up without scanning it
	// again.
	type elem struct{ start, idx, idxEnd, end int }
	elems := make([]elem, total)
	var bad error
	if _, err := jsonscan.Elements(arr, func(e []byte) bool {
		v, ok := jsonscan.Lookup(e, "index")
		i, iok := jsonscan.ParseInt(v)
		switch {
		case !ok || !iok:
			bad = fmt.Errorf("an element of %q without an integer index", field)
		case i < 0 || i >= int64(total):
			bad = fmt.Errorf("index %d of %q out of the batch's %d", i, field, total)
		case elems[i].end != 0:
			bad = fmt.Errorf("index %d of %q twice", i, field)
		default:
			es, ee := spanIn(up, e)
			is, ie := spanIn(up, v)
			elems[i] = elem{es, is, ie, ee}
			return true
		}
		return false
	}); err != nil || bad != nil {
		if bad != nil {
			return bad
		}
		return fmt.Errorf("%q: %w", field, err)
	}
	for i, e := range elems {
		if e.end == 0 {
			return fmt.Errorf("index %d of %q missing", i, field)
		}
	}
	as, ae := spanIn(up, arr)
	usage, hasUsage := jsonscan.Lookup(up, "usage")
	us, ue := 0, 0
	pt, ct := int64(0), int64(0)
	if hasUsage {
		us, ue = spanIn(up, usage)
		if len(usage) > 0 && usage[0] == '{' {
			if v, ok := jsonscan.Lookup(usage, "prompt_tokens"); ok {
				pt, _ = jsonscan.ParseInt(v)
			}
			if v, ok := jsonscan.Lookup(usage, "completion_tokens"); ok {
				ct, _ = jsonscan.ParseInt(v)
			}
		}
	}
	pts := shareOut(pt, weights)
	cts := shareOut(ct, counts)
	off := 0
	var data, use []byte
	for i, r := range reqs {
		data = append(data[:0], '[')
		for j := range counts[i] * per {
			if j > 0 {
				data = append(data, ',')
			}
			e := elems[off+j]
			data = append(data, up[e.start:e.idx]...)
			data = strconv.AppendInt(data, int64(j), 10)
			data = append(data, up[e.idxEnd:e.end]...)
		}
		data = append(data, ']')
		off += counts[i] * per
		use = append(use[:0], `{"prompt_tokens":`...)
		use = strconv.AppendInt(use, pts[i], 10)
		if completion {
			use = append(use, `,"completion_tokens":`...)
			use = strconv.AppendInt(use, cts[i], 10)
		}
		use = append(use, `,"total_tokens":`...)
		use = strconv.AppendInt(use, pts[i]+cts[i], 10)
		use = append(use, '}')
		res := &r.Result
		switch {
		case !hasUsage:
			res.body = splice(res.body[:0], up, as, ae, data, 0, 0, nil)
		case us < as:
			res.body = splice(res.body[:0], up, us, ue, use, as, ae, data)
		default:
			res.body = splice(res.body[:0], up, as, ae, data, us, ue, use)
		}
		res.status, res.backend = x.Status, x.Backend
		res.ctype = append(res.ctype[:0], x.ContentType...)
	}
	return nil
}

// spanIn returns where v, a slice of b (as jsonscan returns them), lies in b.
func spanIn(b, v []byte) (start, end int) {
	start = cap(b) - cap(v)
	return start, start + len(v)
}

// splice appends b with b[s1:e1] replaced by v1 and, when e2 > 0, b[s2:e2]
// (which comes after) by v2.
func splice(dst, b []byte, s1, e1 int, v1 []byte, s2, e2 int, v2 []byte) []byte {
	dst = append(dst, b[:s1]...)
	dst = append(dst, v1...)
	if e2 == 0 {
		return append(dst, b[e1:]...)
	}
	dst = append(dst, b[e1:s2]...)
	dst = append(dst, v2...)
	return append(dst, b[e2:]...)
}

// shareOut splits total in proportion to weights (largest remainders), so
// that the shares add up to total.
func shareOut(total int64, weights []int) []int64 {
	out := make([]int64, len(weights))
	var sum int64
	for _, w := range weights {
		sum += int64(max(w, 0))
	}
	if sum == 0 || total <= 0 {
		return out
	}
	var given int64
	rem := make([]int64, len(weights))
	for i, w := range weights {
		q := total * int64(max(w, 0))
		out[i], rem[i] = q/sum, q%sum
		given += out[i]
	}
	for left := total - given; left > 0; left-- {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		out[best]++
		rem[best] = -1
	}
	return out
}
