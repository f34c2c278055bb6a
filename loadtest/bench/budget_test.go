package main

import (
	"strings"
	"testing"
)

func TestBudgetChecks(t *testing.T) {
	r := fixtureResults(true)
	got := map[string]Check{}
	for _, c := range BudgetChecks(r) {
		got[c.Name] = c
	}
	f := func(name, status, measured string) {
		t.Helper()
		c, ok := got[name]
		if !ok {
			t.Errorf("no check %q; have %v", name, got)
			return
		}
		if c.Status != status || !strings.Contains(c.Measured, measured) {
			t.Errorf("%s: %s %q, want %s and %q", name, c.Status, c.Measured, status, measured)
		}
	}
	// switchyard adds 60 µs at p50, nginx 40: within nginx + 30.
	f("chat, added p50 at 1000 req/s", "pass", "10 µs to spare (within the noise: repeats span up to 15 µs)")
	// p99: switchyard +200, nginx +300.
	f("chat, added p99 at 2000 req/s", "pass", "100 µs to spare")
	f("stream, added TTFT p50 at 1000 req/s", "pass", "switchyard +60 µs, nginx +40 µs")
	// CPU: 97.5 vs 57.5 (medians of 90,105 and 50,65) = 1.70x.
	f("CPU per request, chat at 1000 req/s", "fail", "1.70x")
	f("CPU per request, chat closed loop", "fail", "1.80x")
	f("throughput, chat closed loop (64 conns)", "pass", "1.07x; the load side was saturated (95% busy), so per proxy CPU: 25083 vs 23417 req/s = 1.07x")
	f("RSS idle", "pass", "10.0 MiB: 20.0 MiB to spare")
	f("RSS peak under the load above (VmHWM)", "pass", "20.0 MiB")
	f("RSS with 1000 concurrent streams", "pass", "68.4 MiB")

	r.Memory.StreamsRSSKB = 200 * 1024
	for _, c := range BudgetChecks(r) {
		if strings.HasPrefix(c.Name, "RSS with") && (c.Status != "fail" || !strings.Contains(c.Measured, "50.0 MiB over")) {
			t.Errorf("over-budget streams RSS: %+v", c)
		}
	}
}

func TestBudgetChecksWithoutNginx(t *testing.T) {
	for _, c := range BudgetChecks(fixtureResults(false)) {
		relative := strings.Contains(c.Budget, "nginx")
		if relative && (c.Status != "n/a" || c.Measured != "no nginx in this run") {
			t.Errorf("%s: %s %q, want n/a without nginx", c.Name, c.Status, c.Measured)
		}
		if !relative && c.Status == "n/a" {
			t.Errorf("%s: n/a, want an absolute check", c.Name)
		}
	}
}
