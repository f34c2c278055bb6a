// Package shed is a model pool's admission gate: a capacity of requests in
// flight and, when it is full, a bounded priority queue. Critical requests
// are served first, standard ones wait up to their timeout, sheddable ones
// are refused at once; a waiter whose context ends leaves the queue.
package shed

import (
	"context"
	"errors"
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
	ErrShed    = errors.New("pool at capacity")               // sheddable, or the queue is full
	ErrTimeout = errors.New("timed out waiting for capacity") // waited its class's timeout
)

// Stats are a gate's counters, by class.
type Stats struct {
	InFlight, Capacity int
	Queued             [NumClasses]int
	Shed, Timeouts     [NumClasses]int64
}

// Gate is one pool's gate. Safe for concurrent use.
type Gate struct{}

// New makes a gate of this capacity (> 0) with a queue of at most maxQueue
// waiters. onWait, when set, is told each admitted waiter's wait.
func New(capacity, maxQueue int, onWait func(Class, time.Duration)) *Gate { return &Gate{} }

// Acquire takes a slot for a request of class c, waiting at most timeout
// (for Sheddable the wait is never) or until ctx ends (then ctx.Err()).
func (g *Gate) Acquire(ctx context.Context, c Class, timeout time.Duration) error { return nil }

// Release returns a slot taken by Acquire.
func (g *Gate) Release() {}

// SetCapacity changes the capacity (a reload); waiters are admitted if it grew.
func (g *Gate) SetCapacity(n int) {}

// Stats reports the gate's state.
func (g *Gate) Stats() Stats { return Stats{} }
