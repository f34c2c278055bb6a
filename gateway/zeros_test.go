package gateway_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/router"
)

// buildYAML parses a config and builds its generation without starting
// anything (no simulators, no health checks).
func buildYAML(t *testing.T, yaml string) *gateway.Generation {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "zeros.yaml")
	if err != nil {
		t.Fatalf("parsing:\n%v", err)
	}
	g, err := gateway.Build(cfg, gateway.BuildOptions{Registry: gateway.NewRegistry()})
	if err != nil {
		t.Fatalf("building: %v", err)
	}
	t.Cleanup(g.Close)
	return g
}

// zeroConfig is two backends and one pool; backend (keys of backend a)
// and pool hold the keys under test. The pool's targets are a and b unless
// pool gives its own.
func zeroConfig(backend, pool string) string {
	if !strings.Contains(pool, "targets:") {
		pool = ", targets: [{backend: a}, {backend: b}]" + pool
	}
	return fmt.Sprintf(`
backends:
  - {name: a, url: "http://127.0.0.1:1"%s}
  - {name: b, url: "http://127.0.0.1:2"}
models:
  - {name: m%s}
`, backend, pool)
}

// retries counts the retries a pool allows for n requests in one second.
func retries(p *router.Pool, n int) int {
	now := time.Unix(1_000_000, 0)
	allowed := 0
	for range n {
		p.Retry.Request(now)
	}
	for range 2 * n {
		if p.Retry.AllowRetry(now) {
			allowed++
		}
	}
	return allowed
}

// TestDocumentedZeros checks, from YAML to router behaviour, that every
// zero docs/config.md documents means what it says, and that keys left out
// get the documented defaults (which live only in gateway/config).
func TestDocumentedZeros(t *testing.T) {
	tests := []struct {
		name          string
		backend, pool string
		check         func(t *testing.T, g *gateway.Generation)
	}{
		{"weight 0 under weighted is never picked", "", `, strategy: weighted, targets: [{backend: a, weight: 1}, {backend: b, weight: 0}]`,
			func(t *testing.T, g *gateway.Generation) {
				p := g.Router.Pools()[0]
				for i := range 2000 {
					tg := p.Pick(nil, nil)
					if tg == nil || tg.Upstream.Name != "a" {
						t.Fatalf("pick %d: %v; want a every time", i, tg)
					}
					tg.Upstream.Release()
				}
				// Not even when a, the other target, is the one to avoid.
				if tg := p.Pick(nil, p.Targets[0]); tg == nil || tg.Upstream.Name != "a" {
					t.Fatalf("Pick(avoid a) = %v; want a again rather than the weight-0 b", tg)
				}
			}},
		{"weight left out is 1", "", `, strategy: weighted`,
			func(t *testing.T, g *gateway.Generation) {
				seen := map[string]int{}
				p := g.Router.Pools()[0]
				for range 2000 {
					tg := p.Pick(nil, nil)
					seen[tg.Upstream.Name]++
					tg.Upstream.Release()
				}
				if seen["a"] < 800 || seen["b"] < 800 {
					t.Fatalf("picks %v; want about 1000 each", seen)
				}
			}},
		{"budget 0 and min_per_second 0: no retries", "", `, retry: {attempts: 3, budget: 0, min_per_second: 0}`,
			func(t *testing.T, g *gateway.Generation) {
				if n := retries(g.Router.Pools()[0], 100); n != 0 {
					t.Fatalf("%d retries allowed; want 0", n)
				}
			}},
		{"min_per_second 0: only the budget", "", `, retry: {attempts: 2, budget: 0.5, min_per_second: 0}`,
			func(t *testing.T, g *gateway.Generation) {
				if n := retries(g.Router.Pools()[0], 10); n != 5 {
					t.Fatalf("%d retries allowed for 10 requests; want 5 (budget 0.5, no floor)", n)
				}
			}},
		{"budget 0: only min_per_second", "", `, retry: {attempts: 2, budget: 0, min_per_second: 2}`,
			func(t *testing.T, g *gateway.Generation) {
				if n := retries(g.Router.Pools()[0], 100); n != 2 {
					t.Fatalf("%d retries allowed; want 2", n)
				}
			}},
		{"retry left out: attempts 2, budget 0.2, min_per_second 5", "", "",
			func(t *testing.T, g *gateway.Generation) {
				p := g.Router.Pools()[0]
				if p.Attempts != 2 {
					t.Fatalf("attempts %d; want 2", p.Attempts)
				}
				if n := retries(p, 100); n != 20 {
					t.Fatalf("%d retries allowed for 100 requests; want 20 (budget 0.2)", n)
				}
				if n := retries(g.Router.Pools()[0], 0); n != 0 {
					t.Fatalf("another %d retries; the budget is spent", n)
				}
			}},
		{"min_per_second left out is 5", "", `, retry: {budget: 0}`,
			func(t *testing.T, g *gateway.Generation) {
				if n := retries(g.Router.Pools()[0], 100); n != 5 {
					t.Fatalf("%d retries allowed with budget 0; want the documented floor of 5", n)
				}
			}},
		{"failure_threshold 0: never ejected", `, health: {failure_threshold: 0}`, "",
			func(t *testing.T, g *gateway.Generation) {
				u := g.Router.Upstream("a")
				for range 100 {
					if e := u.ReportFailure(time.Now()); e != router.NotEjected {
						t.Fatalf("ReportFailure = %v", e)
					}
				}
				if !u.Healthy(time.Now()) {
					t.Fatal("ejected")
				}
			}},
		{"failure_threshold 0 with cooldown 0: never ejected", `, health: {failure_threshold: 0, cooldown: 0}`, "",
			func(t *testing.T, g *gateway.Generation) {
				if e := g.Router.Upstream("a").ReportFailure(time.Now()); e != router.NotEjected {
					t.Fatalf("ReportFailure = %v", e)
				}
			}},
		{"health left out: out after 3 failures for 10s", "", "",
			func(t *testing.T, g *gateway.Generation) {
				u := g.Router.Upstream("a")
				now := time.Unix(1_000_000, 0)
				u.ReportFailure(now)
				u.ReportFailure(now)
				if e := u.ReportFailure(now); e != router.Ejected {
					t.Fatalf("third failure: %v; want Ejected", e)
				}
				if u.Healthy(now.Add(10*time.Second-1)) || !u.Healthy(now.Add(10*time.Second)) {
					t.Fatal("ejection does not last the documented 10s")
				}
			}},
		{"max_concurrency 0: unlimited", `, max_concurrency: 0`, `, targets: [{backend: a}]`,
			func(t *testing.T, g *gateway.Generation) {
				p := g.Router.Pools()[0]
				for i := range 1000 {
					if p.Pick(nil, nil) == nil {
						t.Fatalf("pick %d refused", i)
					}
				}
			}},
		{"timeouts 0 stay 0", `, timeouts: {connect: 0, first_byte: 0, idle: 0, total: 0}, max_conns: 0`, "",
			func(t *testing.T, g *gateway.Generation) {
				// backends.TestZeroMeansNone checks what the client does with them.
				b := g.Config.Backends[0]
				if to := b.Timeouts; to.Connect != 0 || to.FirstByte != 0 || to.Idle != 0 || to.Total != 0 || b.MaxConns != 0 {
					t.Fatalf("explicit zeros replaced: %+v, max_conns %d", to, b.MaxConns)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, buildYAML(t, zeroConfig(tc.backend, tc.pool)))
		})
	}
}

// TestZeroRejected: zeros that would mean nothing sensible are errors that
// say what to write instead.
func TestZeroRejected(t *testing.T) {
	tests := []struct{ name, backend, pool, want string }{
		{"cooldown 0 with passive checking on", `, health: {cooldown: 0}`, "",
			"backends[0].health.cooldown: must be positive while failure_threshold or latency_factor is above 0"},
		{"weighted with every weight 0", "", `, strategy: weighted, targets: [{backend: a, weight: 0}, {backend: b, weight: 0}]`,
			"strategy weighted needs a target with a positive weight"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(zeroConfig(tc.backend, tc.pool)), "zeros.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q", err, tc.want)
			}
		})
	}
}

// TestNoRetriesWithZeroBudget: with budget 0 and min_per_second 0, failing
// requests reach the upstream once each (there used to be defaults that
// still let retries through).
func TestNoRetriesWithZeroBudget(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, `{"error":{"message":"boom"}}`, http.StatusInternalServerError)
	}))
	defer up.Close()
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: up, url: "`+up.URL+`", health: {failure_threshold: 0}}
models:
  - {name: sim-chat, targets: [{backend: up}], retry: {attempts: 3, budget: 0, min_per_second: 0}}
`)
	for i := range 20 {
		if code, _, b := post(t, g.url+"/v1/chat/completions", faultyChat); code != 502 {
			t.Fatalf("request %d: %d %s; want 502", i, code, b)
		}
	}
	if n := hits.Load(); n != 20 {
		t.Fatalf("20 failing requests made %d upstream attempts; want 20 (no retries)", n)
	}
}
