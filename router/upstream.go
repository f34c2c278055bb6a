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
// Health combines passive ejection with circuit breaking (ReportFailure,
// ReportSuccess; see breaker.go) and active health checks
// (SetActiveHealth): an upstream is healthy when neither has it down.
type Upstream struct {
	Name             string
	Index            int           // position in Router.Upstreams()
	MaxConcurrency   int64         // 0 = unlimited
	FailureThreshold int64         // consecutive failures that eject it; 0 = never ejected passively
	Cooldown         time.Duration // how long a first ejection lasts; > 0 when FailureThreshold > 0 or LatencyFactor > 0
	// Outlier ejection and circuit breaking (breaker.go): the cap of the
	// back-off, the share of a pool that may be out, the probes let
	// through while half-open, and the latency outlier rule.
	MaxCooldown       time.Duration // longest ejection; <= Cooldown = no back-off
	MaxEjectedPercent int           // 1..100; 0 = 100 (only the last-healthy rule)
	HalfOpenRequests  int64         // probes at a time while half-open; 0 = no half-open state
	LatencyFactor     float64       // 0 = no latency ejection
	LatencyMin        time.Duration // a TTFT average below this is never an outlier
	LatencyMinSamples int           // TTFT samples needed, of the upstream and of each peer compared with
	MetricsStale      time.Duration // a scrape older than this does not count; 0 = metrics not scraped

	st           *UpstreamState
	pools        []*Pool                         // pools with a target on this upstream, for the ejection rule
	ejectMu      *sync.Mutex                     // the Router's: serialises ejection decisions
	onTransition func(u *Upstream, t Transition) // Spec.OnTransition
}

// UpstreamState is an upstream's live state: requests in flight, failures,
// ejection and active health. Its zero value is ready to use. Successive
// Routers share one by giving it to the same-named upstream in their Spec
// (UpstreamSpec.State); the gateway keeps them in its resource pool, by
// backend name, across reloads.
type UpstreamState struct {
	inflight   atomic.Int64
	brk        breakerState // failures, ejection, back-off, half-open (breaker.go)
	activeDown atomic.Bool

	load loadState // metrics scraped from the backend and the gateway's own observations (load.go)
}

// TryAcquire takes one concurrency slot if the upstream is below its
// MaxConcurrency, and while its breaker is half-open below
// HalfOpenRequests, and reports whether it did. Each successful TryAcquire
// must be paired with one Release.
func (u *Upstream) TryAcquire() bool {
	max := u.limit()
	if max <= 0 {
		u.st.inflight.Add(1)
		return true
	}
	for {
		n := u.st.inflight.Load()
		if n >= max {
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

// SetActiveHealth records the result of an active health check: false takes
// the upstream out of rotation until a later call sets it true.
func (u *Upstream) SetActiveHealth(ok bool) {
	if u.st.activeDown.Load() == ok {
		u.st.activeDown.Store(!ok)
	}
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

// full reports whether all concurrency slots are taken (see limit).
func (u *Upstream) full() bool {
	max := u.limit()
	return max > 0 && u.st.inflight.Load() >= max
}
