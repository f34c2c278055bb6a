package router

import (
	"sync/atomic"
	"time"
)

// Outlier ejection and circuit breaking. Every upstream has one circuit
// breaker, kept in its UpstreamState so that it survives config reloads:
//
//	closed    --FailureThreshold consecutive failures, or a latency outlier--> open
//	open      --the cool-down is over (seen by the first pick)--------------> half-open
//	half-open --a success------------------------------------------------> closed
//	half-open --a failure------------------------------------------------> open (next back-off step)
//
// With HalfOpenRequests 0 there is no half-open state: the first pick after
// the cool-down closes the circuit at once.
//
// Open is an ejection: no pick takes the upstream. Half-open lets probe
// requests through: a pick takes the upstream only while fewer than
// HalfOpenRequests requests are in flight on it (all of them count, those
// begun before the ejection too; see TryAcquire), and the first verdict
// decides, a success closing the circuit, a failure opening it again.
// Outcomes without a verdict (the client went away, a 429, no free
// connection) only free their slot, through Release.
//
// Back-off: the k-th ejection in a row lasts min(Cooldown * 2^k,
// MaxCooldown), k starting at 0. A failed probe takes k one step up. An
// ejection from closed takes it one step up too, minus one step for each
// whole MaxCooldown the upstream served closed since its last return; so a
// backend that fails again soon after it came back stays out twice as long,
// one that fails once per MaxCooldown keeps the same cool-down, and one
// that stayed closed for k+1 MaxCooldowns starts again at Cooldown.
//
// Refusal: an ejection (from closed or half-open) is refused when, for one
// of the pools the upstream serves, it would leave no other healthy target
// (the last healthy target keeps serving), or would leave more than
// MaxEjectedPercent of the pool's targets out (ejected or down by active
// checks). A refused ejection leaves the circuit closed (a refused re-open
// closes it), and the failure count starts again.
//
// Every transition and refusal goes to Spec.OnTransition.

// BreakerState is the state of an upstream's circuit breaker.
type BreakerState uint8

// Breaker states.
const (
	Closed   BreakerState = iota // in full rotation
	Open                         // ejected until its cool-down ends
	HalfOpen                     // only HalfOpenRequests probe requests at a time
)

func (s BreakerState) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// Reason says why an upstream was ejected (or would have been).
type Reason uint8

// Ejection reasons. Their String is the metrics' reason label.
const (
	ReasonNone     Reason = iota
	ReasonFailures        // FailureThreshold consecutive failures
	ReasonLatency         // its time to first byte is an outlier in its pools
	ReasonProbe           // a half-open probe failed
)

func (r Reason) String() string {
	switch r {
	case ReasonFailures:
		return "failures"
	case ReasonLatency:
		return "latency"
	case ReasonProbe:
		return "probe"
	}
	return ""
}

// Refusal says which rule refused an ejection.
type Refusal uint8

// Refusals.
const (
	NotRefused         Refusal = iota
	RefusedLastHealthy         // the upstream is the last healthy target of a pool
	RefusedMaxEjected          // the pool would have more than MaxEjectedPercent of its targets out
)

func (r Refusal) String() string {
	switch r {
	case RefusedLastHealthy:
		return "last_healthy"
	case RefusedMaxEjected:
		return "max_ejected_percent"
	}
	return ""
}

// Ejection is the outcome of ReportFailure and ReportSuccess.
type Ejection uint8

// Outcomes of ReportFailure and ReportSuccess.
const (
	NotEjected      Ejection = iota // no ejection: below the threshold, not an outlier, or off
	Ejected                         // this report ejected the upstream (or re-opened its circuit)
	EjectionRefused                 // an ejection was due but refused (see Transition.Refused)
)

// Transition is a change of an upstream's breaker state, or a refused
// ejection (then From and To are the state it keeps), as Spec.OnTransition
// gets it.
type Transition struct {
	From, To BreakerState
	// Reason is why the upstream was ejected, for To == Open and for a
	// refused ejection.
	Reason Reason
	// Refused is the rule that refused an ejection; NotRefused otherwise.
	Refused Refusal
	// Pool is the pool whose rule refused the ejection; nil otherwise.
	Pool *Pool
	// Cooldown is how long the ejection lasts and Level its back-off step,
	// for To == Open.
	Cooldown time.Duration
	Level    int
	// TTFT is the upstream's average time to first byte and Median the
	// median of its pool's other targets', for Reason == ReasonLatency.
	TTFT, Median time.Duration
}

// State is a snapshot of an upstream's breaker, for admin and metrics.
type State struct {
	Breaker BreakerState
	// Until is when the cool-down of an open breaker ends; zero otherwise.
	Until time.Time
	// Cooldown is the length of the current or last ejection, and Level
	// its back-off step (0 = Cooldown).
	Cooldown time.Duration
	Level    int
	// Failures counts the consecutive failures since the last success or
	// ejection decision.
	Failures int64
	// Ejections counts the upstream's ejections since its state was made
	// (re-opened half-open circuits included).
	Ejections int64
	// Reason is why the current or last ejection happened; ReasonNone
	// when there has been none.
	Reason Reason
	// ActiveDown says the active health checks have it down.
	ActiveDown bool
}

// breakerState is the breaker part of an UpstreamState. gate is read on
// every pick; everything is written with the ejection lock held.
type breakerState struct {
	gate      atomic.Int64 // 0 = closed; gateHalfOpen; else open until this unix nanosecond
	failures  atomic.Int64 // consecutive failures since the last success or ejection decision
	level     atomic.Int64 // back-off step of the current or last ejection
	cooldown  atomic.Int64 // nanoseconds: length of the current or last ejection
	ejections atomic.Int64
	reason    atomic.Uint32 // Reason of the current or last ejection
	closedAt  atomic.Int64  // unix nanoseconds of the last return to closed; 0 = never
}

const gateHalfOpen = -1

// phase is the breaker state for a gate value at now: an open breaker
// whose cool-down is over, which no pick has seen yet, is already
// half-open (or closed, without a half-open state).
func (u *Upstream) phase(g, now int64) BreakerState {
	switch {
	case g == 0:
		return Closed
	case g == gateHalfOpen:
		return HalfOpen
	case now < g:
		return Open
	case u.HalfOpenRequests > 0:
		return HalfOpen
	}
	return Closed
}

// State returns a snapshot of the upstream's breaker at now.
func (u *Upstream) State(now time.Time) State {
	b := &u.st.brk
	g := b.gate.Load()
	s := State{
		Breaker:    u.phase(g, now.UnixNano()),
		Cooldown:   time.Duration(b.cooldown.Load()),
		Level:      int(b.level.Load()),
		Failures:   b.failures.Load(),
		Ejections:  b.ejections.Load(),
		Reason:     Reason(b.reason.Load()),
		ActiveDown: u.st.activeDown.Load(),
	}
	if s.Breaker == Open {
		s.Until = time.Unix(0, g)
	}
	return s
}

// ReportFailure counts a failed attempt (a 5xx, a transport error, a
// timeout of the backend's). While closed, FailureThreshold consecutive
// failures eject the upstream; while half-open, any failure re-opens it
// for the next back-off step; while open it changes nothing (an attempt
// begun before the ejection). An ejection may be refused (see the rules
// above); after an ejection decision, ejected or refused, the count starts
// again from zero. The result tells the caller what happened.
func (u *Upstream) ReportFailure(now time.Time) Ejection {
	b := &u.st.brk
	ph := u.phase(b.gate.Load(), now.UnixNano())
	switch ph {
	case Open:
		return NotEjected
	case Closed:
		if u.FailureThreshold <= 0 || b.failures.Add(1) < u.FailureThreshold {
			return NotEjected
		}
	}
	u.ejectMu.Lock()
	defer u.ejectMu.Unlock()
	if u.phase(b.gate.Load(), now.UnixNano()) != ph {
		return NotEjected // another report or pick moved the breaker meanwhile
	}
	if ph == HalfOpen {
		return u.ejectLocked(now, HalfOpen, ReasonProbe, 0, 0)
	}
	return u.ejectLocked(now, Closed, ReasonFailures, 0, 0)
}

// ReportSuccess records a successful attempt: it resets the consecutive
// failure count, closes a half-open circuit, and, while closed, ejects the
// upstream when its time to first byte has become a latency outlier (see
// latencyOutlier). It does not end an ejection early: a success while open
// is an attempt begun before the ejection. It allocates nothing; the
// latency check reads a few atomics per target of the upstream's pools.
func (u *Upstream) ReportSuccess(now time.Time) Ejection {
	b := &u.st.brk
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
	switch g := b.gate.Load(); {
	case g == gateHalfOpen:
		u.ejectMu.Lock()
		if b.gate.Load() == gateHalfOpen {
			u.closeLocked(now, HalfOpen)
		}
		u.ejectMu.Unlock()
		return NotEjected
	case g != 0:
		return NotEjected
	}
	if u.LatencyFactor <= 0 {
		return NotEjected
	}
	ttft, median, ok := u.latencyOutlier()
	if !ok {
		return NotEjected
	}
	u.ejectMu.Lock()
	defer u.ejectMu.Unlock()
	if b.gate.Load() != 0 {
		return NotEjected
	}
	return u.ejectLocked(now, Closed, ReasonLatency, ttft, median)
}

// ejectLocked opens the breaker at now, from state from, for reason,
// unless a rule refuses it. The ejection lock is held.
func (u *Upstream) ejectLocked(now time.Time, from BreakerState, reason Reason, ttft, median time.Duration) Ejection {
	b := &u.st.brk
	b.failures.Store(0)
	tr := Transition{From: from, To: Open, Reason: reason, TTFT: ttft, Median: median}
	if tr.Refused, tr.Pool = u.refusal(now); tr.Refused != NotRefused {
		tr.To = Closed
		if from == HalfOpen {
			u.setClosedLocked(now) // a refused re-open: the pool needs it in full
		}
		u.notify(tr)
		return EjectionRefused
	}
	maxCD := max(u.MaxCooldown, u.Cooldown)
	k := b.level.Load()
	switch {
	case b.ejections.Load() == 0:
		k = 0
	case from == HalfOpen:
		k++
	default:
		k++
		at := b.closedAt.Load()
		if g := b.gate.Load(); g > 0 {
			at = g // an open breaker whose cool-down ended unseen (no half-open state): closed since then
		}
		if at != 0 && maxCD > 0 {
			k -= (now.UnixNano() - at) / int64(maxCD)
		}
	}
	d := u.Cooldown
	if k <= 0 {
		k = 0
	} else {
		for i := int64(0); i < k && d < maxCD; i++ {
			d *= 2
		}
		if d >= maxCD {
			d = maxCD
			k = backoffSteps(u.Cooldown, maxCD) // do not climb past the cap
		}
	}
	if reason == ReasonLatency {
		u.resetTTFT() // its return is judged on fresh samples
	}
	b.level.Store(k)
	b.cooldown.Store(int64(d))
	b.reason.Store(uint32(reason))
	b.ejections.Add(1)
	b.gate.Store(now.Add(d).UnixNano())
	tr.Cooldown, tr.Level = d, int(k)
	u.notify(tr)
	return Ejected
}

// backoffSteps is the smallest k with cooldown * 2^k >= maxCD.
func backoffSteps(cooldown, maxCD time.Duration) int64 {
	if cooldown <= 0 {
		return 0
	}
	k := int64(0)
	for d := cooldown; d < maxCD; d *= 2 {
		k++
	}
	return k
}

// closeLocked closes the breaker at now, from state from. The ejection
// lock is held.
func (u *Upstream) closeLocked(now time.Time, from BreakerState) {
	u.setClosedLocked(now)
	u.notify(Transition{From: from, To: Closed})
}

func (u *Upstream) setClosedLocked(now time.Time) {
	b := &u.st.brk
	b.gate.Store(0)
	b.failures.Store(0)
	b.closedAt.Store(now.UnixNano())
}

// endCooldown moves an open breaker whose cool-down (ending at g) is over
// to half-open, or to closed without a half-open state, and reports
// whether the upstream may be picked at now. It runs on the pick path, once
// per ejection: the pick that finds the cool-down over.
func (u *Upstream) endCooldown(g, now int64) bool {
	b := &u.st.brk
	u.ejectMu.Lock()
	defer u.ejectMu.Unlock()
	if cur := b.gate.Load(); cur != g {
		return cur <= 0 || now >= cur // another pick or a report was first
	}
	if u.HalfOpenRequests > 0 {
		b.gate.Store(gateHalfOpen)
		b.failures.Store(0)
		u.notify(Transition{From: Open, To: HalfOpen})
		return true
	}
	u.closeLocked(time.Unix(0, now), Open)
	return true
}

// notify passes tr to Spec.OnTransition. The ejection lock is held, so
// transitions reach it in order.
func (u *Upstream) notify(tr Transition) {
	if u.onTransition != nil {
		u.onTransition(u, tr)
	}
}

// refusal checks the ejection rules for u at now: it returns the first
// rule, and pool, that refuses an ejection of u. Pools where u has no
// target that may be picked (weight 0 under a weighted strategy) do not
// count. The ejection lock is held.
func (u *Upstream) refusal(now time.Time) (Refusal, *Pool) {
	for _, p := range u.pools {
		n, out, mine, others := 0, 0, false, false
		for _, t := range p.Targets {
			if !p.serves(t) {
				continue
			}
			n++
			switch {
			case t.Upstream.st == u.st:
				mine = true
				out++
			case t.Upstream.Healthy(now):
				others = true
			default:
				out++
			}
		}
		switch {
		case !mine:
		case !others:
			return RefusedLastHealthy, p
		case u.MaxEjectedPercent > 0 && u.MaxEjectedPercent < 100 && out*100 > u.MaxEjectedPercent*n:
			return RefusedMaxEjected, p
		}
	}
	return NotRefused, nil
}

// maxLatencyPeers bounds the targets of one pool the latency check compares
// with (the first ones, in pool order).
const maxLatencyPeers = 32

// latencyOutlier reports whether u's average time to first byte (TTFT,
// from at least LatencyMinSamples samples, and at least LatencyMin) is
// more than LatencyFactor times the median of the other targets' averages
// (those with LatencyMinSamples samples), in every pool of u that has such
// targets to compare with, and at least one. Comparing in every pool keeps
// a backend that serves a slow model in one pool and a fast one in another
// from looking slow next to the fast model's other backends. It returns
// u's average and the largest of the pools' medians.
func (u *Upstream) latencyOutlier() (ttft, median time.Duration, ok bool) {
	ttft = u.TTFT()
	if ttft <= 0 || ttft < u.LatencyMin || u.ttftSamples() < int64(u.LatencyMinSamples) {
		return 0, 0, false
	}
	limit := float64(ttft) / u.LatencyFactor
	for _, p := range u.pools {
		var buf [maxLatencyPeers]time.Duration
		n := 0
	targets:
		for i, t := range p.Targets {
			o := t.Upstream
			if o.st == u.st || !p.serves(t) || o.ttftSamples() < int64(u.LatencyMinSamples) {
				continue
			}
			for _, prev := range p.Targets[:i] {
				if prev.Upstream.st == o.st {
					continue targets // the same backend for another model id
				}
			}
			d := o.TTFT()
			if d <= 0 {
				continue
			}
			// Insertion into the sorted prefix of buf.
			j := n
			for j > 0 && buf[j-1] > d {
				if j < len(buf) {
					buf[j] = buf[j-1]
				}
				j--
			}
			if j < len(buf) {
				buf[j] = d
			}
			if n < len(buf) {
				n++
			}
		}
		if n == 0 {
			continue
		}
		m := buf[n/2]
		if n%2 == 0 {
			m = (buf[n/2-1] + buf[n/2]) / 2
		}
		if float64(m) >= limit {
			return 0, 0, false // within LatencyFactor of this pool's median
		}
		median = max(median, m)
	}
	return ttft, median, median > 0
}

// Healthy reports whether the upstream may receive traffic at now: not
// marked down by active health checks and its breaker not open at now (a
// half-open breaker counts as healthy: it takes probes).
func (u *Upstream) Healthy(now time.Time) bool {
	if u.st.activeDown.Load() {
		return false
	}
	g := u.st.brk.gate.Load()
	return g <= 0 || now.UnixNano() >= g
}

// EjectedUntil returns the end of the current ejection (an open breaker),
// or the zero time when the upstream is not ejected (for admin and
// metrics).
func (u *Upstream) EjectedUntil() time.Time {
	if g := u.st.brk.gate.Load(); g > 0 {
		return time.Unix(0, g)
	}
	return time.Time{}
}

// healthy is Healthy for the pick path: the clock is read only when the
// breaker is open, and the pick that finds its cool-down over moves it to
// half-open (or closed), once, taking the ejection lock. A half-open
// upstream is healthy here: TryAcquire limits it to HalfOpenRequests.
func (u *Upstream) healthy(clk *Clock) bool {
	if u.st.activeDown.Load() {
		return false
	}
	g := u.st.brk.gate.Load()
	if g <= 0 {
		return true
	}
	now := clk.UnixNano()
	if now < g {
		return false
	}
	return u.endCooldown(g, now)
}

// limit is the concurrency cap now: MaxConcurrency, or HalfOpenRequests
// while half-open if that is lower; 0 = none.
func (u *Upstream) limit() int64 {
	m := u.MaxConcurrency
	if h := u.HalfOpenRequests; h > 0 && (m <= 0 || h < m) && u.st.brk.gate.Load() == gateHalfOpen {
		return h
	}
	return m
}
