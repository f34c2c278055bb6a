package main

import (
	"fmt"
	"math"
	"slices"
)

// Check is one line of the budget comparison (DESIGN.md, "Performance budget").
type Check struct {
	Name     string
	Budget   string
	Measured string
	// Status is "pass", "fail" or "n/a" (not measured, e.g. without nginx).
	Status string
}

// Budget limits from DESIGN.md.
const (
	budgetAddedP50US     = 30.0  // switchyard added p50 <= nginx's + 30 us
	budgetAddedTTFTUS    = 50.0  // streams: added TTFB p50 <= nginx's + 50 us
	budgetCPURatio       = 1.5   // CPU per request <= 1.5x nginx's
	budgetThroughputFrac = 0.8   // closed-loop throughput >= 0.8x nginx's
	budgetIdleMiB        = 30.0  // idle RSS
	budgetPeakMiB        = 60.0  // peak RSS under the open/closed load
	budgetStreamsMiB     = 150.0 // 1,000 concurrent streams
	budgetAdmissionUS    = 10.0  // admission (local limits) adds <= 10 us p50

	// loadSaturated is the load side's busy fraction from which the
	// closed loop is taken to be limited by the load side, not the proxy.
	loadSaturated = 0.9
)

// budgetRates are the rates the latency budget names; rates of the run that
// are not among them are shown in the tables but not checked.
var budgetRates = []float64{1000, 2000}

func status(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}

// added returns path's median minus direct's median at the same point, or
// NaN when either is missing.
func added(r *Results, scenario, path string, rate float64, f func(Agg) float64) float64 {
	p, d := r.Find(scenario, path, "open", rate), r.Find(scenario, PathDirect, "open", rate)
	if p == nil || d == nil || len(p.Samples) == 0 || len(d.Samples) == 0 {
		return math.NaN()
	}
	return f(p.Agg()) - f(d.Agg())
}

// BudgetChecks compares the results with DESIGN.md's budget.
func BudgetChecks(r *Results) []Check {
	var out []Check
	haveNginx := r.Nginx != ""
	na := func(name, budget, why string) {
		out = append(out, Check{Name: name, Budget: budget, Measured: why, Status: "n/a"})
	}
	p50 := func(a Agg) float64 { return a.P50 }
	p99 := func(a Agg) float64 { return a.P99 }
	ttft := func(a Agg) float64 { return a.TTFTP50 }
	rel := []struct {
		scenario, what string
		f              func(Agg) float64
		spread         func(Agg) float64
		slack          float64
		budget         string
	}{
		{ScenarioChat, "added p50", p50, func(a Agg) float64 { return a.P50Max - a.P50Min }, budgetAddedP50US, "<= nginx + 30 µs"},
		{ScenarioChat, "added p99", p99, func(a Agg) float64 { return a.P99Max - a.P99Min }, 0, "<= nginx"},
		{ScenarioStream, "added TTFT p50", ttft, func(a Agg) float64 { return a.TTFTMax - a.TTFTMin }, budgetAddedTTFTUS, "<= nginx + 50 µs"},
	}
	for _, c := range rel {
		for _, rate := range budgetRates {
			if !slices.Contains(r.Settings.Rates, rate) {
				continue
			}
			name := fmt.Sprintf("%s, %s at %g req/s", c.scenario, c.what, rate)
			if !haveNginx {
				na(name, c.budget, "no nginx in this run")
				continue
			}
			sy, ng := added(r, c.scenario, PathSwitchyard, rate, c.f), added(r, c.scenario, PathNginx, rate, c.f)
			if math.IsNaN(sy) || math.IsNaN(ng) {
				na(name, c.budget, "not measured")
				continue
			}
			limit := ng + c.slack
			measured := fmt.Sprintf("switchyard %+.0f µs, nginx %+.0f µs: %s", sy, ng, margin(sy-limit, "µs"))
			// The repeats' spread is the noise floor: a margin inside it
			// could go either way on the next run.
			var noise float64
			for _, path := range []string{PathDirect, PathSwitchyard, PathNginx} {
				if p := r.Find(c.scenario, path, "open", rate); p != nil && len(p.Samples) > 1 {
					noise = max(noise, c.spread(p.Agg()))
				}
			}
			if noise > 0 && math.Abs(sy-limit) < noise {
				measured += fmt.Sprintf(" (within the noise: repeats span up to %.0f µs)", noise)
			}
			out = append(out, Check{
				Name:     name,
				Budget:   c.budget,
				Measured: measured,
				Status:   status(sy <= limit),
			})
		}
	}

	// CPU per request: at 1k req/s (or the run's first rate) and closed loop.
	cpuRate := r.Settings.Rates[0]
	if slices.Contains(r.Settings.Rates, 1000) {
		cpuRate = 1000
	}
	for _, c := range []struct {
		name string
		mode string
		rate float64
	}{
		{fmt.Sprintf("CPU per request, chat at %g req/s", cpuRate), "open", cpuRate},
		{"CPU per request, chat closed loop", "closed", 0},
	} {
		if !haveNginx {
			na(c.name, "<= 1.5x nginx", "no nginx in this run")
			continue
		}
		sp, np := r.Find(ScenarioChat, PathSwitchyard, c.mode, c.rate), r.Find(ScenarioChat, PathNginx, c.mode, c.rate)
		if sp == nil || np == nil || np.Agg().ProxyCPU <= 0 {
			na(c.name, "<= 1.5x nginx", "not measured")
			continue
		}
		s, n := sp.Agg().ProxyCPU, np.Agg().ProxyCPU
		out = append(out, Check{
			Name:     c.name,
			Budget:   "<= 1.5x nginx",
			Measured: fmt.Sprintf("%.0f µs vs %.0f µs = %.2fx", s, n, s/n),
			Status:   status(s <= budgetCPURatio*n),
		})
	}
	for _, sc := range []string{ScenarioChat, ScenarioStream} {
		name := fmt.Sprintf("throughput, %s closed loop (%d conns)", sc, r.Settings.Concurrency)
		if !haveNginx {
			na(name, ">= 0.8x nginx", "no nginx in this run")
			continue
		}
		sp, np := r.Find(sc, PathSwitchyard, "closed", 0), r.Find(sc, PathNginx, "closed", 0)
		if sp == nil || np == nil || np.Agg().Throughput <= 0 {
			na(name, ">= 0.8x nginx", "not measured")
			continue
		}
		sa, nga := sp.Agg(), np.Agg()
		s, n := sa.Throughput, nga.Throughput
		measured := fmt.Sprintf("%.0f vs %.0f req/s = %.2fx", s, n, s/n)
		if sa.LoadBusy >= loadSaturated || nga.LoadBusy >= loadSaturated {
			// The load side limited both: capacity per proxy CPU is the
			// fairer comparison; show it beside the raw figure.
			if sa.ProxyBusy > 0 && nga.ProxyBusy > 0 {
				cs, cn := s/sa.ProxyBusy, n/nga.ProxyBusy
				measured += fmt.Sprintf("; the load side was saturated (%.0f%% busy), so per proxy CPU: %.0f vs %.0f req/s = %.2fx", max(sa.LoadBusy, nga.LoadBusy)*100, cs, cn, cs/cn)
			}
		}
		out = append(out, Check{
			Name:     name,
			Budget:   ">= 0.8x nginx",
			Measured: measured,
			Status:   status(s >= budgetThroughputFrac*n),
		})
	}

	// Admission on vs off: the admission path's p50 over the plain
	// gateway's, at the budget's rates.
	if r.Admission {
		for _, rate := range budgetRates {
			if !slices.Contains(r.Settings.Rates, rate) {
				continue
			}
			name := fmt.Sprintf("chat, admission (local limits) added p50 at %g req/s", rate)
			budget := fmt.Sprintf("<= switchyard + %.0f µs", budgetAdmissionUS)
			on, off := r.Find(ScenarioChat, PathAdmission, "open", rate), r.Find(ScenarioChat, PathSwitchyard, "open", rate)
			if on == nil || off == nil || len(on.Samples) == 0 || len(off.Samples) == 0 {
				na(name, budget, "not measured")
				continue
			}
			a, b := on.Agg(), off.Agg()
			d := a.P50 - b.P50
			measured := fmt.Sprintf("%+.0f µs: %s", d, margin(d-budgetAdmissionUS, "µs"))
			if noise := max(a.P50Max-a.P50Min, b.P50Max-b.P50Min); a.N > 1 && math.Abs(d-budgetAdmissionUS) < noise {
				measured += fmt.Sprintf(" (within the noise: repeats span up to %.0f µs)", noise)
			}
			out = append(out, Check{Name: name, Budget: budget, Measured: measured, Status: status(d <= budgetAdmissionUS)})
		}
	}

	// A cache hit is cheaper than the direct path: lower p50 than the
	// simulator reached directly, and less proxy CPU than the simulator
	// spends on a request.
	if r.CacheHit {
		for _, rate := range budgetRates {
			if !slices.Contains(r.Settings.Rates, rate) {
				continue
			}
			name := fmt.Sprintf("chat, exact cache hit p50 at %g req/s", rate)
			hit, d := r.Find(ScenarioChat, PathCacheHit, "open", rate), r.Find(ScenarioChat, PathDirect, "open", rate)
			if hit == nil || d == nil || len(hit.Samples) == 0 || len(d.Samples) == 0 {
				na(name, "< direct", "not measured")
				continue
			}
			h, da := hit.Agg(), d.Agg()
			out = append(out, Check{Name: name, Budget: "< direct", Measured: fmt.Sprintf("%.0f µs vs %.0f µs direct", h.P50, da.P50), Status: status(h.P50 < da.P50)})
			name = fmt.Sprintf("chat, exact cache hit CPU per request at %g req/s", rate)
			out = append(out, Check{Name: name, Budget: "< the upstream's", Measured: fmt.Sprintf("%.1f µs (gateway) vs %.1f µs (simulator, direct)", h.ProxyCPU, da.UpstreamCPU), Status: status(h.ProxyCPU < da.UpstreamCPU)})
		}
	}

	if r.CacheHit {
		name := "chat, exact cache hit throughput, closed loop"
		hit, d := r.Find(ScenarioChat, PathCacheHit, "closed", 0), r.Find(ScenarioChat, PathDirect, "closed", 0)
		if hit == nil || d == nil || len(hit.Samples) == 0 || len(d.Samples) == 0 {
			na(name, ">= direct", "not measured")
		} else {
			h, da := hit.Agg().Throughput, d.Agg().Throughput
			out = append(out, Check{Name: name, Budget: ">= direct", Measured: fmt.Sprintf("%.0f vs %.0f req/s direct = %.2fx", h, da, h/da), Status: status(h >= da)})
		}
	}

	// Stage hot paths.
	for _, m := range r.Micro {
		switch {
		case m.Package == "internal/limit" && m.Name == "LocalAdmit":
			out = append(out, Check{Name: "local limiter decision (3 buckets), allocations", Budget: "0 allocs/op",
				Measured: fmt.Sprintf("%.0f ns/op, %.0f allocs/op", m.Metrics["ns/op"], m.Metrics["allocs/op"]), Status: status(m.Metrics["allocs/op"] == 0)})
		case m.Package == "plugins/cache" && m.Name == "SemanticLookup/entries=100000":
			p99 := m.Metrics["p99-ns"] / 1000
			out = append(out, Check{Name: "semantic lookup p99 at 100k entries (builtin embedding included)", Budget: "<= 1 ms",
				Measured: fmt.Sprintf("%.0f µs", p99), Status: status(p99 <= 1000)})
		}
	}

	mib := func(kb uint64) float64 { return float64(kb) / 1024 }
	m := r.Memory
	mem := []struct {
		name  string
		kb    uint64
		limit float64
	}{
		{"RSS idle", m.IdleKB, budgetIdleMiB},
		{"RSS peak under the load above (VmHWM)", m.PeakKB, budgetPeakMiB},
		{fmt.Sprintf("RSS with %d concurrent streams", m.Streams), m.StreamsRSSKB, budgetStreamsMiB},
	}
	for _, c := range mem {
		budget := fmt.Sprintf("<= %.0f MiB", c.limit)
		if c.kb == 0 {
			na(c.name, budget, "not measured")
			continue
		}
		v := mib(c.kb)
		out = append(out, Check{
			Name:     c.name,
			Budget:   budget,
			Measured: fmt.Sprintf("%.1f MiB: %s", v, margin(v-c.limit, "MiB")),
			Status:   status(v <= c.limit),
		})
	}
	return out
}

// margin describes over (the measured value minus the limit) in words.
func margin(over float64, unit string) string {
	prec := 0
	if unit == "MiB" {
		prec = 1
	}
	if over > 0 {
		return fmt.Sprintf("%.*f %s over", prec, over, unit)
	}
	return fmt.Sprintf("%.*f %s to spare", prec, -over, unit)
}
