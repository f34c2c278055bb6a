package router

import (
	"sync/atomic"
	"time"
)

// DefaultCooldown is how long an upstream stays ejected after
// FailureThreshold consecutive failures when its spec gives no Cooldown.
const DefaultCooldown = 10 * time.Second

// Upstream is one backend server's shared state: concurrency in use and
// health. All methods are safe for concurrent use and allocate nothing. The
// same *Upstream is shared by every target that names it, across pools.
//
// Health combines passive ejection (ReportFailure) and active health checks
// (SetActiveHealth): an upstream is healthy when neither has it down.
type Upstream struct {
	Name             string
	Index            int           // position in Router.Upstreams()
	MaxConcurrency   int64         // 0 = unlimited
	FailureThreshold int64         // consecutive failures that eject it; 0 = never ejected passively
	Cooldown         time.Duration // how long an ejection lasts

	inflight     atomic.Int64
	failures     atomic.Int64 // consecutive failures since the last success or ejection
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 = not ejected
	activeDown   atomic.Bool
}

// TryAcquire takes one concurrency slot if the upstream is below its
// MaxConcurrency and reports whether it did. Each successful TryAcquire must
// be paired with one Release.
func (u *Upstream) TryAcquire() bool {
	if u.MaxConcurrency <= 0 {
		u.inflight.Add(1)
		return true
	}
	for {
		n := u.inflight.Load()
		if n >= u.MaxConcurrency {
			return false
		}
		if u.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release returns a slot taken by TryAcquire (or by Pool.Pick).
func (u *Upstream) Release() { u.inflight.Add(-1) }

// Inflight returns the number of slots in use.
func (u *Upstream) Inflight() int64 { return u.inflight.Load() }

// ReportSuccess resets the consecutive failure count. It does not end an
// ejection early.
func (u *Upstream) ReportSuccess() {
	if u.failures.Load() != 0 {
		u.failures.Store(0)
	}
}

// ReportFailure counts a failed attempt. When the consecutive failures reach
// FailureThreshold the upstream is ejected until now+Cooldown, and the count
// starts again from zero, so after the cool-down it takes another
// FailureThreshold failures in a row to eject it again.
func (u *Upstream) ReportFailure(now time.Time) {
	if u.FailureThreshold <= 0 {
		return
	}
	if u.failures.Add(1) >= u.FailureThreshold {
		u.failures.Store(0)
		u.ejectedUntil.Store(now.Add(u.Cooldown).UnixNano())
	}
}

// SetActiveHealth records the result of an active health check: false takes
// the upstream out of rotation until a later call sets it true.
func (u *Upstream) SetActiveHealth(ok bool) {
	if u.activeDown.Load() == ok {
		u.activeDown.Store(!ok)
	}
}

// Healthy reports whether the upstream may receive traffic at now: not
// marked down by active health checks and not ejected at now.
func (u *Upstream) Healthy(now time.Time) bool {
	if u.activeDown.Load() {
		return false
	}
	until := u.ejectedUntil.Load()
	return until == 0 || now.UnixNano() >= until
}

// EjectedUntil returns the end of the current passive ejection, or the zero
// time when the upstream is not ejected (for admin and metrics).
func (u *Upstream) EjectedUntil() time.Time {
	if until := u.ejectedUntil.Load(); until != 0 {
		return time.Unix(0, until)
	}
	return time.Time{}
}

// healthy is Healthy for the pick path: the clock is read only when the
// upstream was ejected, and an expired ejection is cleared so that later
// picks skip the clock again.
func (u *Upstream) healthy(clk *lazyClock) bool {
	if u.activeDown.Load() {
		return false
	}
	until := u.ejectedUntil.Load()
	if until == 0 {
		return true
	}
	if clk.unixNano() < until {
		return false
	}
	u.ejectedUntil.CompareAndSwap(until, 0)
	return true
}

// lazyClock reads the wall clock at most once, and only if asked.
type lazyClock struct {
	now int64
	set bool
}

func (c *lazyClock) unixNano() int64 {
	if !c.set {
		c.now, c.set = time.Now().UnixNano(), true
	}
	return c.now
}

// full reports whether all concurrency slots are taken.
func (u *Upstream) full() bool {
	return u.MaxConcurrency > 0 && u.inflight.Load() >= u.MaxConcurrency
}
