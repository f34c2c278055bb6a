// Package batch is a dynamic batcher in the manner of Triton's: it collects
// the requests of concurrent callers that may share one upstream call (the
// same key), and hands them to a runner in batches bounded by items and
// tokens.
//
// Batches form when the batcher may run one more (fewer than MaxInFlight are
// running): it then takes what is waiting, in priority order and first come
// first served within a level. With MaxQueueDelay 0 (the default, as Triton
// advises) a batch holds only what was already waiting, so a lone caller
// waits for nothing; batching comes from the backlog that forms while the
// batches in flight run. With a delay, a batch that is not full waits at
// most that long after its oldest request arrived for more to come.
//
// A caller's request is copied when it is queued, so a caller may leave at
// any time: a caller whose context ends while it waits is taken out of the
// queue before dispatch (its context's error is its answer); one that leaves
// while its batch runs gets its context's error at once, and its result is
// dropped when the batch ends.
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of Do.
var (
	// ErrQueueFull: QueueSize requests are waiting already.
	ErrQueueFull = errors.New("the batch queue is full")
	// ErrClosed: the batcher was closed before the request ran.
	ErrClosed = errors.New("the batcher is closed")
	// ErrTooLarge: the request alone has more items than MaxBatchSize or
	// more tokens than MaxTokens; it cannot share a batch.
	ErrTooLarge = errors.New("the request is larger than one batch")
)

// Options bound the batches and the queue.
type Options struct {
	// MaxBatchSize bounds the items of one batch (>= 1).
	MaxBatchSize int
	// MaxTokens bounds the tokens of one batch; 0: no bound.
	MaxTokens int
	// MaxQueueDelay is how long a batch that is not full may wait for more
	// requests after its oldest one arrived; 0: it takes only what waits.
	MaxQueueDelay time.Duration
	// QueueSize bounds the requests waiting (>= 1); beyond it Do fails at
	// once with ErrQueueFull.
	QueueSize int
	// PriorityLevels is the number of priority levels (>= 1); level 0 is
	// served first.
	PriorityLevels int
	// MaxInFlight bounds the batches running at once (>= 1).
	MaxInFlight int
	// OnBatch, when set, is told of every batch: its requests and items.
	OnBatch func(requests, items int)
	// OnWait, when set, is told how long each request taken into a batch
	// waited in the queue.
	OnWait func(time.Duration)
}

// Entry is one caller's request.
type Entry struct {
	// Key: only requests with equal keys share a batch.
	Key []byte
	// Payload is what the runner needs of the request; Do copies it.
	Payload []byte
	// Items is the request's share of MaxBatchSize (>= 1), Tokens its
	// share of MaxTokens.
	Items, Tokens int
	// Priority is the request's level, 0 first; it is clamped into
	// [0, PriorityLevels).
	Priority int
}

// Request is a queued entry as the runner sees it. The runner sets Result
// (and may read everything else); it must not keep the request after it
// returns.
type Request[R any] struct {
	// Payload is a copy of the entry's payload.
	Payload []byte
	// Items, Tokens and Priority are the entry's.
	Items, Tokens, Priority int
	// Deadline is the caller's context's deadline; zero when it has none.
	Deadline time.Time
	// Result is what the caller's read function gets. If *R has a Reset
	// method, requests are reused after calling it; else Result is zeroed.
	Result R

	ctx     context.Context
	arrived time.Time
	q       *queue[R]
	state   uint8 // under the batcher's mu
	err     error // set before done is signalled
	done    chan struct{}
	refs    atomic.Int32 // the caller's and the batcher's
	pool    *sync.Pool
}

const (
	queued uint8 = iota
	taken
	gone
)

// Runner sends one batch upstream and sets each request's Result. ctx ends
// when the batcher is closed.
type Runner[R any] func(ctx context.Context, batch []*Request[R])

// Batcher batches the requests of one pool and operation. It is safe for
// concurrent use; Close stops it.
type Batcher[R any] struct {
	o   Options
	run Runner[R]

	mu       sync.Mutex
	queues   map[string]*queue[R]
	waiting  int
	inflight int
	closed   bool

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	reqs   sync.Pool
	now    func() time.Time
}

// queue holds the waiting requests of one key, a FIFO per priority level.
type queue[R any] struct {
	key    string
	levels [][]*Request[R]
	n      int
}

// New starts a batcher whose batches run. Its dispatching goroutine and the
// batches running end with Close.
func New[R any](o Options, run Runner[R]) (*Batcher[R], error) {
	switch {
	case o.MaxBatchSize < 1:
		return nil, fmt.Errorf("batch: max batch size %d, must be >= 1", o.MaxBatchSize)
	case o.MaxTokens < 0:
		return nil, fmt.Errorf("batch: max tokens %d, must be >= 0", o.MaxTokens)
	case o.MaxQueueDelay < 0:
		return nil, fmt.Errorf("batch: max queue delay %v, must be >= 0", o.MaxQueueDelay)
	case o.QueueSize < 1:
		return nil, fmt.Errorf("batch: queue size %d, must be >= 1", o.QueueSize)
	case o.PriorityLevels < 1:
		return nil, fmt.Errorf("batch: priority levels %d, must be >= 1", o.PriorityLevels)
	case o.MaxInFlight < 1:
		return nil, fmt.Errorf("batch: max in flight %d, must be >= 1", o.MaxInFlight)
	case run == nil:
		return nil, errors.New("batch: no runner")
	}
	b := &Batcher[R]{o: o, run: run, queues: map[string]*queue[R]{}, kick: make(chan struct{}, 1), now: time.Now}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(1)
	go b.loop()
	return b, nil
}

// Options returns the batcher's options.
func (b *Batcher[R]) Options() Options { return b.o }

// Do queues e and waits until its batch has run, then calls read with its
// result (read must not keep it). It fails at once with ErrTooLarge,
// ErrQueueFull or ErrClosed, and with ctx's error when ctx ends first.
func (b *Batcher[R]) Do(ctx context.Context, e Entry, read func(*R)) error {
	if e.Items < 1 {
		e.Items = 1
	}
	if e.Items > b.o.MaxBatchSize || (b.o.MaxTokens > 0 && e.Tokens > b.o.MaxTokens) {
		return ErrTooLarge
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := b.get()
	r.Payload = append(r.Payload[:0], e.Payload...)
	r.Items, r.Tokens = e.Items, e.Tokens
	r.Priority = min(max(e.Priority, 0), b.o.PriorityLevels-1)
	r.Deadline, _ = ctx.Deadline()
	r.ctx = ctx

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		r.release()
		r.release()
		return ErrClosed
	}
	if b.waiting >= b.o.QueueSize {
		b.mu.Unlock()
		r.release()
		r.release()
		return ErrQueueFull
	}
	q := b.queues[string(e.Key)]
	if q == nil {
		q = &queue[R]{key: string(e.Key), levels: make([][]*Request[R], b.o.PriorityLevels)}
		b.queues[q.key] = q
	}
	r.arrived = b.now()
	r.q, r.state = q, queued
	q.levels[r.Priority] = append(q.levels[r.Priority], r)
	q.n++
	b.waiting++
	b.mu.Unlock()
	b.wake()

	select {
	case <-r.done:
	case <-ctx.Done():
		b.mu.Lock()
		if r.state == queued {
			b.unqueue(r)
			b.mu.Unlock()
			r.release() // the batcher's
			b.wake()
		} else {
			b.mu.Unlock()
		}
		r.release()
		return ctx.Err()
	}
	err := r.err
	if err == nil {
		read(&r.Result)
	}
	r.release()
	return err
}

func (b *Batcher[R]) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// unqueue takes a queued request out of its queue; b.mu is held.
func (b *Batcher[R]) unqueue(r *Request[R]) {
	q := r.q
	l := q.levels[r.Priority]
	for i, o := range l {
		if o == r {
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			q.levels[r.Priority] = l[:len(l)-1]
			break
		}
	}
	q.n--
	b.waiting--
	r.state = gone
	if q.n == 0 {
		delete(b.queues, q.key)
	}
}

// loop forms the batches and starts them, until Close.
func (b *Batcher[R]) loop() {
	defer b.wg.Done()
	var timer *time.Timer
	for {
		b.mu.Lock()
		batch, wait := b.next(b.now())
		b.mu.Unlock()
		if batch != nil {
			b.wg.Add(1)
			go b.runBatch(batch)
			continue
		}
		var tc <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			tc = timer.C
		}
		select {
		case <-b.kick:
		case <-tc:
		case <-b.ctx.Done():
			return
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// next takes the next batch to run, if one may run now; else it says how
// long until a delayed batch is due (0: nothing is due). b.mu is held.
func (b *Batcher[R]) next(now time.Time) (batch []*Request[R], wait time.Duration) {
	if b.closed || b.inflight >= b.o.MaxInFlight || b.waiting == 0 {
		return nil, 0
	}
	var best *queue[R]
	var bestHead *Request[R]
	for _, q := range b.queues {
		b.dropGone(q)
		if q.n == 0 {
			continue
		}
		head, oldest, full := b.look(q)
		if !full && b.o.MaxQueueDelay > 0 {
			if due := oldest.Add(b.o.MaxQueueDelay).Sub(now); due > 0 {
				if wait == 0 || due < wait {
					wait = due
				}
				continue
			}
		}
		if best == nil || head.Priority < bestHead.Priority ||
			head.Priority == bestHead.Priority && head.arrived.Before(bestHead.arrived) {
			best, bestHead = q, head
		}
	}
	if best == nil {
		return nil, wait
	}
	batch = b.take(best, now)
	if len(batch) == 0 {
		return nil, 0
	}
	b.inflight++
	return batch, 0
}

// dropGone answers the queued requests of q whose callers' contexts have
// ended (they are not sent). b.mu is held.
func (b *Batcher[R]) dropGone(q *queue[R]) {
	for lv := range q.levels {
		for i := 0; i < len(q.levels[lv]); {
			r := q.levels[lv][i]
			err := r.ctx.Err()
			if err == nil {
				i++
				continue
			}
			b.unqueue(r)
			r.err = err
			r.signal()
			r.release()
		}
	}
}

// look returns q's first request in service order, the arrival of its
// oldest, and whether what waits fills a batch.
func (b *Batcher[R]) look(q *queue[R]) (head *Request[R], oldest time.Time, full bool) {
	items, tokens := 0, 0
	fits := true
	for _, l := range q.levels {
		if len(l) == 0 {
			continue
		}
		if head == nil {
			head = l[0]
		}
		if oldest.IsZero() || l[0].arrived.Before(oldest) {
			oldest = l[0].arrived
		}
		for _, r := range l {
			if !fits {
				break
			}
			if items+r.Items > b.o.MaxBatchSize || b.o.MaxTokens > 0 && tokens+r.Tokens > b.o.MaxTokens {
				fits = false
				break
			}
			items += r.Items
			tokens += r.Tokens
		}
	}
	return head, oldest, !fits || items == b.o.MaxBatchSize
}

// take pops a batch off q in service order. b.mu is held.
func (b *Batcher[R]) take(q *queue[R], now time.Time) []*Request[R] {
	var batch []*Request[R]
	items, tokens := 0, 0
	for lv := range q.levels {
		l := q.levels[lv]
		n := 0
		for _, r := range l {
			if len(batch) > 0 && (items+r.Items > b.o.MaxBatchSize || b.o.MaxTokens > 0 && tokens+r.Tokens > b.o.MaxTokens) {
				break
			}
			items += r.Items
			tokens += r.Tokens
			r.state = taken
			batch = append(batch, r)
			n++
		}
		if n > 0 {
			clear(l[:n])
			q.levels[lv] = append(l[:0], l[n:]...)
			q.n -= n
			b.waiting -= n
		}
		if n < len(l) {
			break // the rest does not fit; lower levels wait their turn
		}
	}
	if q.n == 0 {
		delete(b.queues, q.key)
	}
	if b.o.OnWait != nil {
		for _, r := range batch {
			b.o.OnWait(now.Sub(r.arrived))
		}
	}
	if b.o.OnBatch != nil && len(batch) > 0 {
		b.o.OnBatch(len(batch), items)
	}
	return batch
}

// runBatch runs one batch and answers its callers.
func (b *Batcher[R]) runBatch(batch []*Request[R]) {
	defer b.wg.Done()
	func() {
		defer func() {
			if p := recover(); p != nil {
				err := fmt.Errorf("batch: the runner panicked: %v", p)
				for _, r := range batch {
					r.err = err
				}
			}
		}()
		b.run(b.ctx, batch)
	}()
	for _, r := range batch {
		r.signal()
		r.release()
	}
	b.mu.Lock()
	b.inflight--
	b.mu.Unlock()
	b.wake()
}

// Close stops the batcher: requests still queued fail with ErrClosed, the
// batches running are told (their context ends) and waited for.
func (b *Batcher[R]) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	for _, q := range b.queues {
		for _, l := range q.levels {
			for _, r := range l {
				r.state = gone
				r.err = ErrClosed
				r.signal()
				r.release()
			}
		}
	}
	clear(b.queues)
	b.waiting = 0
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
}

// Waiting returns the number of requests queued.
func (b *Batcher[R]) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiting
}

func (b *Batcher[R]) get() *Request[R] {
	r, _ := b.reqs.Get().(*Request[R])
	if r == nil {
		r = &Request[R]{done: make(chan struct{}, 1), pool: &b.reqs}
	}
	r.refs.Store(2)
	return r
}

func (r *Request[R]) signal() {
	select {
	case r.done <- struct{}{}:
	default:
	}
}

// release drops one reference; the last one puts r back for reuse.
func (r *Request[R]) release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	select {
	case <-r.done:
	default:
	}
	r.ctx, r.q, r.err = nil, nil, nil
	r.Payload = r.Payload[:0]
	if rs, ok := any(&r.Result).(interface{ Reset() }); ok {
		rs.Reset()
	} else {
		var zero R
		r.Result = zero
	}
	r.pool.Put(r)
}
