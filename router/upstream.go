package router

import (
	"sync"
	"sync/atomic"
	"time"
)

// Upstream is one backend server of one Router: its limits from the spec
// and its live state (concurrency in use and health). All methods are safe
// for concurrent use and allocate nothing. The same *Upstream is shared by
// every target that names it, across pools. Upstreams are made by New; a
// zero Upstream is not usable.
//
// The live state (UpstreamState) is kept apart from the limits so that a
// config reload can carry it over: the Spec gives each upstream its state,
// and successive Routers given the same state for the same backend share it,
// so requests still running on the old generation count against, and
// release into, the same in-flight counter as those of the new one.
//
// Health combines passive ejection (ReportFailure) and active health checks
// (SetActiveHealth): an upstream is healthy when neither has it down.
type Upstream struct {
	Name             string
	Index            int           // position in Router.Upstreams()
	MaxConcurrency   int64         // 0 = unlimited
	FailureThreshold int64         // consecutive failures that eject it; 0 = never ejected passively
	Cooldown         time.Duration // how long an ejection lasts; > 0 when FailureThreshold > 0
	MetricsStale     time.Duration // a scrape older than this does not count; 0 = metrics not scraped

	st       *UpstreamState
	pools    []*Pool           // pools with a target on this upstream, for the ejection rule
	ejectMu  *sync.Mutex       // the Router's: serialises ejection decisions
	onReturn func(u *Upstream) // Spec.OnReturn
}

// UpstreamState is an upstream's live state: requests in flight, failures,
// ejection and active health. Its zero value is ready to use. Successive
// Routers share one by giving it to the same-named upstream in their Spec
// (UpstreamSpec.State); the gateway keeps them in its resource pool, by
// backend name, across reloads.
type UpstreamState struct {
	inflight     atomic.Int64
	failures     atomic.Int64 // consecutive failures since the last success or ejection decision
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 = not ejected
	activeDown   atomic.Bool

	load loadState // metrics scraped from the backend and the gateway's own observations (load.go)
}

// TryAcquire takes one concurrency slot if the upstream is below its
// MaxConcurrency and reports whether it did. Each successful TryAcquire must
// be paired with one Release.
func (u *Upstream) TryAcquire() bool {
	if u.MaxConcurrency <= 0 {
		u.st.inflight.Add(1)
		return true
	}
	for {
		n := u.st.inflight.Load()
		if n >= u.MaxConcurrency {
			return false
		}
		if u.st.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release returns a slot taken by TryAcquire (or by Pool.Pick).
func (u *Upstream) Release() { u.st.inflight.Add(-1) }

// Inflight returns the number of slots in use, counting the requests of
// every Router that shares this upstream's state.
func (u *Upstream) Inflight() int64 { return u.st.inflight.Load() }

// ReportSuccess resets the consecutive failure count. It does not end an
// ejection early.
func (u *Upstream) ReportSuccess() {
	if u.st.failures.Load() != 0 {
		u.st.failures.Store(0)
	}
}

// ReportFailure counts a failed attempt. When the consecutive failures reach
// FailureThreshold, the count starts again from zero and the upstream is
// ejected until now+Cooldown, unless the ejection would leave one of its
// pools with no healthy target (see Ejection). So after a cool-down, or
// after a refused ejection, it takes another FailureThreshold failures in a
// row to eject it. The result tells the caller what happened, for its logs.
func (u *Upstream) ReportFailure(now time.Time) Ejection {
	if u.FailureThreshold <= 0 {
		return NotEjected
	}
	if u.st.failures.Add(1) < u.FailureThreshold {
		return NotEjected
	}
	u.ejectMu.Lock()
	defer u.ejectMu.Unlock()
	u.st.failures.Store(0)
	if !u.othersHealthy(now) {
		return EjectionRefused
	}
	u.st.ejectedUntil.Store(now.Add(u.Cooldown).UnixNano())
	return Ejected
}

// Ejection is the outcome of ReportFailure.
//
// The ejection rule: an upstream is never ejected when that would leave a
// pool it serves without a healthy target, that is, when no other upstream
// among the pool's targets is healthy at that moment (for a weighted pool,
// counting only targets of positive weight). A pool's last healthy target
// keeps serving; it is up to its clients' errors to say something is wrong.
// Envoy's outlier detection keeps a maximum ejected percentage for the same
// reason. Active health checks are not subject to the rule: a failed probe
// takes an upstream out even if it is the last.
type Ejection uint8

// Outcomes of ReportFailure.
const (
	NotEjected      Ejection = iota // below the threshold, or passive ejection is off
	Ejected                         // this failure ejected the upstream for its Cooldown
	EjectionRefused                 // threshold reached, but it is the last healthy target of a pool
)

// othersHealthy reports whether every pool of u keeps a healthy target if u
// goes out. Upstreams that serve no pool may always be ejected.
func (u *Upstream) othersHealthy(now time.Time) bool {
	for _, p := range u.pools {
		ok := false
		for _, t := range p.Targets {
			if t.Upstream.st != u.st && p.serves(t) && t.Upstream.Healthy(now) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// SetActiveHealth records the result of an active health check: false takes
// the upstream out of rotation until a later call sets it true.
func (u *Upstream) SetActiveHealth(ok bool) {
	if u.st.activeDown.Load() == ok {
		u.st.activeDown.Store(!ok)
	}
}

// Healthy reports whether the upstream may receive traffic at now: not
// marked down by active health checks and not ejected at now.
func (u *Upstream) Healthy(now time.Time) bool {
	if u.st.activeDown.Load() {
		return false
	}
	until := u.st.ejectedUntil.Load()
	return until == 0 || now.UnixNano() >= until
}

// EjectedUntil returns the end of the current passive ejection, or the zero
// time when the upstream is not ejected (for admin and metrics).
func (u *Upstream) EjectedUntil() time.Time {
	if until := u.st.ejectedUntil.Load(); until != 0 {
		return time.Unix(0, until)
	}
	return time.Time{}
}

// healthy is Healthy for the pick path: the clock is read only when the
// upstream was ejected, and an expired ejection is cleared so that later
// picks skip the clock again. The pick that clears it calls Spec.OnReturn.
func (u *Upstream) healthy(clk *Clock) bool {
	if u.st.activeDown.Load() {
		return false
	}
	until := u.st.ejectedUntil.Load()
	if until == 0 {
		return true
	}
	if clk.UnixNano() < until {
		return false
	}
	if u.st.ejectedUntil.CompareAndSwap(until, 0) && u.onReturn != nil {
		u.onReturn(u)
	}
	return true
}

// Clock is the time of one pick, read from the wall clock at most once and
// only if asked: most picks look at no ejected upstream and never read it.
// The zero Clock reads time.Now on first use; ClockAt gives a fixed one.
type Clock struct {
	now int64
	set bool
}

// ClockAt returns a Clock fixed at t.
func ClockAt(t time.Time) Clock { return Clock{now: t.UnixNano(), set: true} }

// UnixNano returns the clock's time, reading the wall clock on first use.
func (c *Clock) UnixNano() int64 {
	if !c.set {
		c.now, c.set = time.Now().UnixNano(), true
	}
	return c.now
}

// full reports whether all concurrency slots are taken.
func (u *Upstream) full() bool {
	return u.MaxConcurrency > 0 && u.st.inflight.Load() >= u.MaxConcurrency
}
