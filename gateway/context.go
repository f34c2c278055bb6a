package gateway

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClientGone is the cause of an exchange context cancelled because the
// client closed its connection.
var ErrClientGone = errors.New("the client closed the connection")

// exchangeContext is the context of one exchange: made when the request is
// accepted, bounded by the route's timeout, cancelled when the client
// disconnects or the exchange ends. Cancelling it also cancels the upstream
// call in progress.
//
// It lives with the pooled Exchange, so that an exchange that never waits
// on its context pays nothing for it: its done channel is made only when
// someone asks for it. An exchange whose context was handed out (Done or
// AfterFunc called: someone may still hold it) gets a fresh one next time
// instead of reusing this one.
type exchangeContext struct {
	x *Exchange

	mu       sync.Mutex
	done     chan struct{} // made on first Done
	err      error
	deadline time.Time
	timer    *time.Timer
	afters   map[*afterFunc]struct{}
	shared   bool // handed out: not reusable
}

type afterFunc struct{ f func() }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

var _ context.Context = (*exchangeContext)(nil)

func (c *exchangeContext) Deadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline, !c.deadline.IsZero()
}

func (c *exchangeContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shared = true
	if c.done == nil {
		if c.err != nil {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *exchangeContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *exchangeContext) Value(any) any { return nil }

// AfterFunc lets context.WithCancel and friends derive from this context
// without a goroutine each (the context package looks for this method).
func (c *exchangeContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shared = true
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	if c.afters == nil {
		c.afters = map[*afterFunc]struct{}{}
	}
	c.afters[a] = struct{}{}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.afters[a]
		delete(c.afters, a)
		return ok
	}
}

// cancel ends the context with err (the first cause wins) and cancels the
// exchange's upstream call.
func (c *exchangeContext) cancel(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	// Under the lock: the exchange's release cancels its context first, so
	// it waits for a cancel from another goroutine (the route's timer, a
	// Server.Do caller's context) to be done with the exchange.
	c.x.call.Cancel()
	if c.done != nil {
		close(c.done)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	afters := c.afters
	c.afters = nil
	c.mu.Unlock()
	for a := range afters {
		go a.f()
	}
}

// setDeadline bounds the context by d from now (d <= 0: no bound).
func (c *exchangeContext) setDeadline(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = time.Now().Add(d)
	c.timer = time.AfterFunc(d, func() { c.cancel(context.DeadlineExceeded) })
}

// reusable reports whether the context may serve another exchange: nobody
// outside the exchange may hold it.
func (c *exchangeContext) reusable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.shared && c.timer == nil
}

// reset makes a reusable context new again.
func (c *exchangeContext) reset() {
	c.err, c.done, c.deadline, c.afters = nil, nil, time.Time{}, nil
}
