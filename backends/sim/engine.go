package sim

import (
	"context"
	"errors"
	"net"
	"switchyard/internal/netutil"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of admission. The HTTP layer turns them into OpenAI error bodies.
var (
	errQueueFull  = errors.New("the server is overloaded: the waiting queue is full")
	errClientGone = errors.New("client disconnected")
	errClosed     = errors.New("the server is shutting down")
)

// seq is one sequence of a request: a chat choice or one prompt of a
// completions request.
type seq struct {
	promptTokens int
	hashes       []uint64 // hash chain of the prompt's full blocks
	textSeed     uint64
	out          int         // tokens to generate
	finish       string      // "stop", "length" or "tool_calls"
	cached       int         // prompt tokens found in the prefix cache (set at admission)
	cites        int         // numbered sources in the prompt: the text cites them (textGen.cites)
	tool         *toolAnswer // the tool mode's answer (tool calls, or the text's lead); nil for plain text
}

// group is what the engine schedules: the sequences of one request, admitted
// together.
type group struct {
	seqs    []seq
	arrival time.Time
	blocks  []int32
	ready   chan struct{}
	started bool
	maxOut  int
}

// blocksFor returns the KV blocks a sequence of n tokens needs.
func blocksFor(n, blockSize int) int { return (n + blockSize - 1) / blockSize }

// engine is the scheduler and performance model: continuous batching of at
// most maxNumSeqs sequences, a bounded FIFO of waiting groups, and the KV
// cache. It owns no goroutines: each request runs on its own goroutine and
// sleeps on its own timer.
type engine struct {
	o     *Options
	speed float64
	m     *serverMetrics

	mu      sync.Mutex
	kv      *kvCache
	running int // sequences
	queue   []*group
	closed  bool

	runningN atomic.Int64 // copies for lock-free reads (ITL, gauges)
	waitingN atomic.Int64
}

func newEngine(o *Options, m *serverMetrics) *engine {
	return &engine{o: o, speed: o.speed(), m: m, kv: newKVCache(o.KVBlocks, o.PrefixCaching)}
}

// scale divides a modelled duration by the server's speed.
func (e *engine) scale(d time.Duration) time.Duration {
	if e.speed == 1 || d == 0 {
		return d
	}
	return time.Duration(float64(d) / e.speed)
}

// prefillTime is the modelled prefill of uncached prompt tokens.
func (e *engine) prefillTime(uncached int) time.Duration {
	return e.scale(e.o.PrefillOverhead + time.Duration(uncached)*e.o.PrefillPerToken)
}

// itl is the modelled inter-token latency with the current batch:
// itl + itl-per-seq * running.
func (e *engine) itl() time.Duration {
	return e.scale(e.o.ITL + time.Duration(e.runningN.Load())*e.o.ITLPerSeq)
}

// tryStart admits g if it fits now. Called with mu held.
func (e *engine) tryStart(g *group) bool {
	n := len(g.seqs)
	if e.running > 0 && e.running+n > e.o.MaxNumSeqs {
		return false
	}
	bs := e.o.BlockSize
	if n == 1 {
		s := &g.seqs[0]
		hits := e.kv.lookup(s.hashes)
		if !e.kv.canAllocate(s.hashes, hits, blocksFor(s.promptTokens+s.out, bs)) {
			return false
		}
	} else {
		need := 0
		for i := range g.seqs {
			need += blocksFor(g.seqs[i].promptTokens+g.seqs[i].out, bs)
		}
		if need > e.kv.available() {
			return false
		}
	}
	queries, hitTokens := 0, 0
	for i := range g.seqs {
		s := &g.seqs[i]
		hits := e.kv.lookup(s.hashes)
		// As in vLLM, the last prompt token is always computed.
		s.cached = min(hits*bs, s.promptTokens-1)
		if s.cached < 0 {
			s.cached = 0
		}
		g.blocks = e.kv.allocate(g.blocks, s.hashes, hits, blocksFor(s.promptTokens+s.out, bs))
		queries += s.promptTokens
		hitTokens += s.cached
	}
	e.running += n
	e.runningN.Store(int64(e.running))
	g.started = true
	if e.m != nil && e.o.PrefixCaching {
		e.m.prefixQueries.Add(queries)
		e.m.prefixHits.Add(hitTokens)
	}
	return true
}

// admit returns when g runs, or with an error when the queue is full, ctx is
// done or the client has gone (checked through sl).
func (e *engine) admit(ctx context.Context, g *group, sl *sleeper) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errClosed
	}
	if len(e.queue) == 0 && e.tryStart(g) {
		e.mu.Unlock()
		return nil
	}
	if len(e.queue) >= e.o.MaxWaiting {
		e.mu.Unlock()
		return errQueueFull
	}
	g.ready = make(chan struct{})
	e.queue = append(e.queue, g)
	e.waitingN.Store(int64(len(e.queue)))
	e.mu.Unlock()

	err := sl.wait(ctx, g.ready)
	if err == nil {
		return nil
	}
	e.mu.Lock()
	if g.started { // admitted while we were giving up
		e.mu.Unlock()
		e.release(g)
		return err
	}
	for i, q := range e.queue {
		if q == g {
			e.queue = append(e.queue[:i], e.queue[i+1:]...)
			break
		}
	}
	e.waitingN.Store(int64(len(e.queue)))
	e.schedule() // g may have blocked the head
	e.mu.Unlock()
	return err
}

// schedule starts waiting groups in FIFO order while they fit. Called with mu held.
func (e *engine) schedule() {
	n := 0
	for n < len(e.queue) && e.tryStart(e.queue[n]) {
		close(e.queue[n].ready)
		n++
	}
	if n > 0 {
		copy(e.queue, e.queue[n:])
		clear(e.queue[len(e.queue)-n:])
		e.queue = e.queue[:len(e.queue)-n]
		e.waitingN.Store(int64(len(e.queue)))
	}
}

// release frees g's sequences and KV blocks and starts waiting groups.
func (e *engine) release(g *group) {
	e.mu.Lock()
	e.kv.release(g.blocks)
	g.blocks = g.blocks[:0]
	e.running -= len(g.seqs)
	e.runningN.Store(int64(e.running))
	e.schedule()
	e.mu.Unlock()
}

// close refuses new groups; waiting ones end through their context.
func (e *engine) close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
}

// kvUsage returns the fraction of KV blocks in use.
func (e *engine) kvUsage() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.kv.usage()
}

// run models an admitted group: a stall (if asked), the prefill, then one
// token step after another, calling emit(step) for each; step i produces the
// i-th token of every sequence with out > i. It releases g when done.
// itlFactor multiplies the inter-token latency (slow-token faults).
func (e *engine) run(ctx context.Context, g *group, sl *sleeper, itlFactor float64, emit func(step int) error) error {
	defer e.release(g)
	uncached := 0
	for i := range g.seqs {
		uncached += g.seqs[i].promptTokens - g.seqs[i].cached
		if g.seqs[i].out > g.maxOut {
			g.maxOut = g.seqs[i].out
		}
	}
	if err := sl.sleep(ctx, e.prefillTime(uncached)); err != nil {
		return err
	}
	m := e.m
	if m != nil {
		m.ttft.Update(time.Since(g.arrival).Seconds())
		m.promptTokens.Add(g.promptTokens())
	}
	tokens := 0
	for step := 0; step < g.maxOut; step++ {
		if step > 0 {
			d := e.itl()
			if itlFactor != 1 {
				d = time.Duration(float64(d) * itlFactor)
			}
			if err := sl.sleep(ctx, d); err != nil {
				e.countGenerated(tokens)
				return err
			}
			if m != nil {
				m.itl.Update(d.Seconds())
			}
		}
		for i := range g.seqs {
			if g.seqs[i].out > step {
				tokens++
			}
		}
		if err := emit(step); err != nil {
			e.countGenerated(tokens)
			return err
		}
	}
	e.countGenerated(tokens)
	if m != nil {
		m.e2e.Update(time.Since(g.arrival).Seconds())
		for i := range g.seqs {
			if g.seqs[i].finish == "length" {
				m.successLength.Inc()
			} else {
				m.successStop.Inc()
			}
		}
	}
	return nil
}

func (e *engine) countGenerated(n int) {
	if e.m != nil && n > 0 {
		e.m.generationTokens.Add(n)
	}
}

func (g *group) promptTokens() int {
	n := 0
	for i := range g.seqs {
		n += g.seqs[i].promptTokens
	}
	return n
}

// sleeper sleeps on one reusable timer and, for long waits, checks every
// check interval whether the client is still connected.
type sleeper struct {
	t         *time.Timer
	conn      net.Conn
	check     time.Duration
	lastCheck time.Time
}

func (s *sleeper) timer(d time.Duration) <-chan time.Time {
	if s.t == nil {
		s.t = time.NewTimer(d)
	} else {
		s.t.Reset(d)
	}
	return s.t.C
}

func (s *sleeper) stop() {
	if s.t != nil {
		s.t.Stop()
	}
}

func (s *sleeper) polling() bool { return s.conn != nil && s.check > 0 }

// sleep waits d; it returns early with an error when ctx is done or the
// client has disconnected.
func (s *sleeper) sleep(ctx context.Context, d time.Duration) error {
	for d > 0 {
		step := d
		if s.polling() && step > s.check {
			step = s.check
		}
		select {
		case <-s.timer(step):
		case <-ctx.Done():
			s.t.Stop()
			return errClosed
		}
		d -= step
		if s.polling() {
			if now := time.Now(); now.Sub(s.lastCheck) >= s.check {
				s.lastCheck = now
				if !netutil.Alive(s.conn) {
					return errClientGone
				}
			}
		}
	}
	return nil
}

// wait waits for ready, ctx or a disconnect.
func (s *sleeper) wait(ctx context.Context, ready <-chan struct{}) error {
	if !s.polling() {
		select {
		case <-ready:
			return nil
		case <-ctx.Done():
			return errClosed
		}
	}
	for {
		select {
		case <-ready:
			s.t.Stop()
			return nil
		case <-ctx.Done():
			s.t.Stop()
			return errClosed
		case <-s.timer(s.check):
			if !netutil.Alive(s.conn) {
				return errClientGone
			}
		}
	}
}
