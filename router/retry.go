package router

import (
	"sync/atomic"
	"time"
)

const (
	budgetSlots = 10 // one-second slots: a 10 s sliding window
)

// RetryBudget caps retries to a fraction of requests over a 10 s window that
// slides in 1 s steps, plus a floor of retries per second that is always
// allowed (so that a quiet pool can still retry). It is lock-free: each slot
// packs its second and its count into one atomic word. Under concurrency the
// check and the count are not one step, so a burst of simultaneous callers
// may overshoot by at most their number.
//
// A nil *RetryBudget allows no retries.
type RetryBudget struct {
	budget    float64
	minPerSec uint64
	requests  [budgetSlots]atomic.Uint64
	retries   [budgetSlots]atomic.Uint64
}

func newRetryBudget(budget float64, minPerSec int) *RetryBudget {
	return &RetryBudget{budget: budget, minPerSec: uint64(minPerSec)}
}

// Request counts one incoming request; call it once per client request, not
// per attempt.
func (b *RetryBudget) Request(now time.Time) {
	if b == nil {
		return
	}
	slotAdd(&b.requests, now.Unix())
}

// AllowRetry reports whether one more retry fits the budget at now and, if
// so, counts it. A retry is allowed while this second has seen fewer than the
// minimum retries per second, or while the retries in the window, this one
// included, stay within Budget times the requests in the window.
func (b *RetryBudget) AllowRetry(now time.Time) bool {
	if b == nil {
		return false
	}
	sec := now.Unix()
	if slotCount(&b.retries, sec) < b.minPerSec ||
		float64(slotSum(&b.retries, sec)+1) <= b.budget*float64(slotSum(&b.requests, sec)) {
		slotAdd(&b.retries, sec)
		return true
	}
	return false
}

// Each slot word is second<<32 | count; the second is kept mod 2^32.

func slotAdd(slots *[budgetSlots]atomic.Uint64, sec int64) {
	s := &slots[uint64(sec)%budgetSlots]
	epoch := uint64(uint32(sec)) << 32
	for {
		w := s.Load()
		next := epoch | 1
		if w&^0xffffffff == epoch && w&0xffffffff != 0xffffffff {
			next = w + 1
		} else if w&^0xffffffff == epoch {
			return // saturated
		}
		if s.CompareAndSwap(w, next) {
			return
		}
	}
}

func slotCount(slots *[budgetSlots]atomic.Uint64, sec int64) uint64 {
	w := slots[uint64(sec)%budgetSlots].Load()
	if w>>32 != uint64(uint32(sec)) {
		return 0
	}
	return w & 0xffffffff
}

func slotSum(slots *[budgetSlots]atomic.Uint64, sec int64) uint64 {
	var n uint64
	for k := int64(0); k < budgetSlots; k++ {
		n += slotCount(slots, sec-k)
	}
	return n
}
