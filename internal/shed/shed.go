// Package shed is a model pool's admission gate: a capacity of requests in
// flight and, when it is full, a bounded priority queue. Critical requests
// are served first, standard ones wait up to their timeout, sheddable ones
// are refused at once; a waiter whose context ends leaves the queue.
package shed

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Class is a priority class.
type Class uint8

const (
	Critical Class = iota
	Standard
	Sheddable
	NumClasses
)

// Errors Acquire returns.
var (
	ErrShed    = errors.New("pool at capacity")               // sheddable, a full queue, or no wait allowed
	ErrTimeout = errors.New("timed out waiting for capacity") // waited its class's timeout
)

// Stats are a gate's counters, by class.
type Stats struct {
	InFlight, Capacity int
	Queued             [NumClasses]int
	Shed, Timeouts     [NumClasses]int64
}

// waiter is one queued Acquire. ready gets a value when a slot is handed
// to it; the hand-off happens under the gate's lock, with the waiter
// removed from its queue, so a waiter that leaves finds out whether it got
// a slot (then gives it back).
type waiter struct {
	ready chan struct{}
	class Class
	next  *waiter
}

// queue is a FIFO of waiters.
type queue struct {
	head, tail *waiter
	n          int
}

func (q *queue) push(w *waiter) {
	w.next = nil
	if q.tail == nil {
		q.head = w
	} else {
		q.tail.next = w
	}
	q.tail = w
	q.n++
}

func (q *queue) pop() *waiter {
	w := q.head
	if w == nil {
		return nil
	}
	q.head = w.next
	if q.head == nil {
		q.tail = nil
	}
	w.next = nil
	q.n--
	return w
}

// remove takes w out of q; it reports false when w is not there.
func (q *queue) remove(w *waiter) bool {
	var prev *waiter
	for c := q.head; c != nil; prev, c = c, c.next {
		if c != w {
			continue
		}
		if prev == nil {
			q.head = c.next
		} else {
			prev.next = c.next
		}
		if q.tail == c {
			q.tail = prev
		}
		c.next = nil
		q.n--
		return true
	}
	return false
}

// Gate is one pool's gate. Safe for concurrent use.
type Gate struct {
	mu       sync.Mutex
	capacity int
	inflight int
	maxQueue int
	queues   [Sheddable]queue // Critical, Standard
	shed     [NumClasses]int64
	timeouts [NumClasses]int64
	onWait   func(Class, time.Duration)
	waiters  sync.Pool // *waiter, the gate's own
}

// New makes a gate of this capacity (> 0) with a queue of at most maxQueue
// waiters. onWait, when set, is told each admitted waiter's wait.
func New(capacity, maxQueue int, onWait func(Class, time.Duration)) *Gate {
	g := &Gate{capacity: capacity, maxQueue: maxQueue, onWait: onWait}
	g.waiters.New = func() any { return &waiter{ready: make(chan struct{}, 1)} }
	return g
}

func (g *Gate) queued() int { return g.queues[Critical].n + g.queues[Standard].n }

// Acquire takes a slot for a request of class c, waiting at most timeout
// (Sheddable requests, and a timeout <= 0, never wait: ErrShed) or until
// ctx ends (then ctx.Err()). A slot taken must be given back with Release.
// The path with a free slot does not allocate; a wait uses a pooled waiter
// and one timer.
func (g *Gate) Acquire(ctx context.Context, c Class, timeout time.Duration) error {
	g.mu.Lock()
	if g.inflight < g.capacity && g.queued() == 0 {
		g.inflight++
		g.mu.Unlock()
		return nil
	}
	if c >= Sheddable || timeout <= 0 || g.queued() >= g.maxQueue {
		g.shed[min(c, Sheddable)]++
		g.mu.Unlock()
		return ErrShed
	}
	w := g.waiters.Get().(*waiter)
	w.class = c
	g.queues[c].push(w)
	g.mu.Unlock()

	start := time.Now()
	t := time.NewTimer(timeout)
	var err error
	select {
	case <-w.ready:
		t.Stop()
		g.waiters.Put(w)
		if g.onWait != nil {
			g.onWait(c, time.Since(start))
		}
		return nil
	case <-t.C:
		err = ErrTimeout
	case <-ctx.Done():
		t.Stop()
		err = ctx.Err()
	}
	g.mu.Lock()
	if !g.queues[c].remove(w) {
		// Handed a slot as we gave up: pass it on.
		g.mu.Unlock()
		<-w.ready
		g.Release()
		g.mu.Lock()
	}
	if err == ErrTimeout {
		g.timeouts[c]++
	}
	g.mu.Unlock()
	g.waiters.Put(w)
	return err
}

// Release returns a slot taken by Acquire: to the first critical waiter,
// else the first standard one, else to the pool.
func (g *Gate) Release() {
	g.mu.Lock()
	g.inflight--
	g.handOff()
	g.mu.Unlock()
}

// handOff gives free slots to waiters in order; g.mu is held.
func (g *Gate) handOff() {
	for g.inflight < g.capacity {
		w := g.queues[Critical].pop()
		if w == nil {
			w = g.queues[Standard].pop()
		}
		if w == nil {
			return
		}
		g.inflight++
		w.ready <- struct{}{}
	}
}

// SetCapacity changes the capacity (a reload); waiters are admitted if it
// grew, and in-flight requests drain if it shrank.
func (g *Gate) SetCapacity(n int) {
	g.mu.Lock()
	g.capacity = n
	g.handOff()
	g.mu.Unlock()
}

// Stats reports the gate's state.
func (g *Gate) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Stats{InFlight: g.inflight, Capacity: g.capacity,
		Queued: [NumClasses]int{g.queues[Critical].n, g.queues[Standard].n, 0},
		Shed:   g.shed, Timeouts: g.timeouts}
}
