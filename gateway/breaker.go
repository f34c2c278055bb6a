package gateway

import (
	"log/slog"

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
