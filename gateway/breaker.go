package gateway

import (
	"log/slog"
	"time"

	"switchyard/router"
)

// onBreakerTransition is the router's OnTransition: every change of a
// backend's circuit breaker, and every refused ejection, is logged (with
// the backend, the reason and the cool-down) and counted. It runs with the
// router's ejection lock held, on a request's path; transitions are rare.
func onBreakerTransition(log *slog.Logger, m *Metrics) func(u *router.Upstream, tr router.Transition) {
	return func(u *router.Upstream, tr router.Transition) {
		if m != nil {
			m.breakerTransition(u.Name, tr)
		}
		switch {
		case tr.Refused != router.NotRefused:
			why := "it is the last healthy backend of a pool"
			if tr.Refused == router.RefusedMaxEjected {
				why = "ejecting it would put more than its max_ejected_percent of a pool out"
			}
			log.Warn("backend reached an ejection but stays in rotation: "+why, "backend", u.Name,
				"reason", tr.Reason.String(), "pool", tr.Pool.Name, "state", tr.To.String(),
				"failure_threshold", u.FailureThreshold, "max_ejected_percent", u.MaxEjectedPercent)
		case tr.To == router.Open && tr.From == router.HalfOpen:
			log.Warn("backend ejected again: its half-open probe failed", "backend", u.Name,
				"reason", tr.Reason.String(), "cooldown", tr.Cooldown, "backoff_level", tr.Level)
		case tr.To == router.Open && tr.Reason == router.ReasonLatency:
			log.Warn("backend ejected as a latency outlier", "backend", u.Name, "reason", tr.Reason.String(),
				"ttft", tr.TTFT, "pool_median_ttft", tr.Median, "latency_factor", u.LatencyFactor,
				"cooldown", tr.Cooldown, "backoff_level", tr.Level)
		case tr.To == router.Open:
			log.Warn("backend ejected after consecutive failures", "backend", u.Name, "reason", tr.Reason.String(),
				"failure_threshold", u.FailureThreshold, "cooldown", tr.Cooldown, "backoff_level", tr.Level)
		case tr.To == router.HalfOpen:
			log.Info("backend half-open after its cool-down: probe requests let through", "backend", u.Name,
				"half_open_requests", u.HalfOpenRequests)
		case tr.From == router.HalfOpen:
			log.Info("backend back in rotation: a half-open probe succeeded", "backend", u.Name)
		default:
			log.Info("backend back in rotation after its cool-down", "backend", u.Name)
		}
	}
}

// breakerTransition counts an ejection or a refused ejection of backend.
func (m *Metrics) breakerTransition(backend string, tr router.Transition) {
	switch {
	case tr.Refused != router.NotRefused:
		m.counter(seriesKey{name: "switchyard_backend_ejections_refused_total", l: [4]string{backend, tr.Reason.String(), tr.Refused.String()}}).Inc()
	case tr.To == router.Open:
		m.counter(seriesKey{name: "switchyard_backend_ejections_total", l: [4]string{backend, tr.Reason.String()}}).Inc()
	}
}

// adminBreaker is a backend's circuit breaker in /admin/backends.
type adminBreaker struct {
	State string `json:"state"` // closed, open or half-open
	// Until is when an open breaker's cool-down ends (RFC 3339); absent
	// otherwise.
	Until string `json:"until,omitempty"`
	// Cooldown and BackoffLevel are the length and back-off step of the
	// current or last ejection; Reason is why it happened (failures,
	// latency, probe); absent when there has been none.
	Cooldown     string `json:"cooldown,omitempty"`
	BackoffLevel int    `json:"backoff_level"`
	Reason       string `json:"reason,omitempty"`
	// Failures counts the consecutive failures now; Ejections all of the
	// backend's ejections since the gateway started.
	Failures  int64 `json:"consecutive_failures"`
	Ejections int64 `json:"ejections"`
	// ActiveDown says the active health checks have the backend down.
	ActiveDown bool `json:"active_down,omitempty"`
	// TTFT is the average time to first byte the latency rule reads.
	TTFT string `json:"ttft_avg,omitempty"`
}

func breakerOf(u *router.Upstream, now time.Time) adminBreaker {
	s := u.State(now)
	b := adminBreaker{State: s.Breaker.String(), BackoffLevel: s.Level, Reason: s.Reason.String(),
		Failures: s.Failures, Ejections: s.Ejections, ActiveDown: s.ActiveDown}
	if !s.Until.IsZero() {
		b.Until = s.Until.UTC().Format(time.RFC3339Nano)
	}
	if s.Ejections > 0 {
		b.Cooldown = s.Cooldown.String()
	}
	if d := u.TTFT(); d > 0 {
		b.TTFT = d.String()
	}
	return b
}
