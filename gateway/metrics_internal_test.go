package gateway

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func requestsKey(route, model, backend, op string, code int) seriesKey {
	return seriesKey{name: "switchyard_requests_total", l: [4]string{route, model, backend, op}, code: code}
}

// TestMetricsTableMatchesMap records each exchange once through the
// generation's table and once through the map (no table): both must land
// in the same series, with the labels wanted.
func TestMetricsTableMatchesMap(t *testing.T) {
	m, g := metricsFixture(t)
	_, old := metricsFixture(t) // a retired generation with the same names
	pools, routes := g.Router.Pools(), g.Router.Routes()
	f := func(desc string, mod func(x *Exchange), want seriesKey) {
		t.Helper()
		before := m.counter(want).Get()
		for _, table := range []bool{true, false} {
			x := metricsExchange(g)
			mod(x)
			if table {
				m.prepare(g)
			} else {
				m.tab.Store(nil)
			}
			m.request(x)
		}
		m.prepare(g)
		if got := m.counter(want).Get() - before; got != 2 {
			t.Errorf("%s: %s counted %d times, want 2", desc, m.seriesName(want), got)
		}
	}
	f("answered", func(x *Exchange) {}, requestsKey("default", "chat", "up-a", "chat", 200))
	f("embeddings on a fixed route", func(x *Exchange) { x.Op, x.Route = OpEmbeddings, routes[0] },
		requestsKey("team", "chat", "up-a", "embeddings", 200))
	f("unusual status", func(x *Exchange) { x.Status = 418 }, requestsKey("default", "chat", "up-a", "chat", 418))
	f("no status", func(x *Exchange) { x.Status = 0 }, requestsKey("default", "chat", "up-a", "chat", 500))
	f("unknown model", func(x *Exchange) { x.Pool, x.Backend, x.target, x.Status = nil, "", nil, 404 },
		requestsKey("default", "", "", "chat", 404))
	f("unrouted", func(x *Exchange) { x.Route, x.Pool, x.Backend, x.target, x.Status = nil, nil, "", nil, 400 },
		requestsKey("", "", "", "chat", 400))
	f("499 during an attempt", func(x *Exchange) { x.Backend, x.Status = "", StatusClientClosed },
		requestsKey("default", "chat", "up-a", "chat", StatusClientClosed))
	f("503 before any attempt", func(x *Exchange) { x.Backend, x.target, x.Status = "", nil, 503 },
		requestsKey("default", "chat", "", "chat", 503))
	f("an earlier attempt answered", func(x *Exchange) { x.Backend, x.Status = "up-b", 502 },
		requestsKey("default", "chat", "up-b", "chat", 502))
	f("fallback pool", func(x *Exchange) { x.Pool, x.target, x.Backend = pools[2], pools[2].Targets[0], "up-c" },
		requestsKey("default", "spare", "up-c", "chat", 200))
	f("retired generation", func(x *Exchange) {
		x.Route, x.Pool, x.target = old.Router.Routes()[1], old.Router.Pools()[0], old.Router.Pools()[0].Targets[0]
	}, requestsKey("default", "chat", "up-a", "chat", 200))

	// The other series of the exchanges above.
	for _, c := range []struct {
		k    seriesKey
		want uint64
	}{
		{seriesKey{name: "switchyard_tokens_total", l: [4]string{"chat", "up-a", "prompt"}}, 12 * 2 * 6}, // six cases above
		{seriesKey{name: "switchyard_tokens_total", l: [4]string{"chat", "up-b", "completion"}}, 34 * 2},
		{seriesKey{name: "switchyard_tokens_total", l: [4]string{"", "", "prompt"}}, 12 * 2 * 2},
	} {
		if got := m.counter(c.k).Get(); got != c.want {
			t.Errorf("%s = %d, want %d", m.seriesName(c.k), got, c.want)
		}
	}
	if n := m.histogram(seriesKey{name: "switchyard_request_duration_seconds", l: [4]string{"team", "chat", "embeddings"}}); n == nil {
		t.Error("no duration histogram")
	}
}

// TestMetricsRequestError: errors are counted by route, model and code.
func TestMetricsRequestError(t *testing.T) {
	m, g := metricsFixture(t)
	f := func(x *Exchange, code Code, route, model string) {
		t.Helper()
		k := seriesKey{name: "switchyard_errors_total", l: [4]string{route, model, string(code)}}
		before := m.counter(k).Get()
		m.requestError(x, code)
		if got := m.counter(k).Get() - before; got != 1 {
			t.Errorf("%s counted %d times, want 1", m.seriesName(k), got)
		}
	}
	x := metricsExchange(g)
	for _, c := range tableReasons {
		f(x, c, "default", "chat")
	}
	f(x, "plugin_specific", "default", "chat") // not in the table
	x.Pool = nil
	f(x, CodeNotFound, "default", "")
	f(nil, CodeBodyTooLarge, "", "") // before there is an exchange
	_, old := metricsFixture(t)
	f(metricsExchange(old), CodeRateLimited, "default", "chat")
	for i, c := range tableReasons {
		if reasonSlot(c) != i {
			t.Errorf("reasonSlot(%s) = %d, want %d", c, reasonSlot(c), i)
		}
	}
}

// TestMetricsUpstreamAndPools covers the other recordings, through the table
// and without it.
func TestMetricsUpstreamAndPools(t *testing.T) {
	m, g := metricsFixture(t)
	pools := g.Router.Pools()
	x := metricsExchange(g)
	x.upStart = time.Now()
	x.Streaming = true
	record := func() {
		m.upstreamResult(x, 200)
		m.upstreamResult(x, 0)
		m.upstreamResult(x, 418)
		m.retry(pools[0])
		m.fallback(pools[0], pools[2])
		m.streamError(x)
		m.clientGone(x)
		ttft, itl := m.streamHistograms(x)
		ttft.Update(0.01)
		itl.Update(0.001)
		m.request(x)
	}
	record()
	m.tab.Store(nil)
	record()
	for _, c := range []struct {
		k    seriesKey
		want uint64
	}{
		{seriesKey{name: "switchyard_upstream_responses_total", l: [4]string{"up-a"}, code: 200}, 2},
		{seriesKey{name: "switchyard_upstream_responses_total", l: [4]string{"up-a"}, code: -1}, 2},
		{seriesKey{name: "switchyard_upstream_responses_total", l: [4]string{"up-a"}, code: 418}, 2},
		{seriesKey{name: "switchyard_retries_total", l: [4]string{"chat"}}, 2},
		{seriesKey{name: "switchyard_fallbacks_total", l: [4]string{"chat", "spare"}}, 2},
		{seriesKey{name: "switchyard_stream_errors_total", l: [4]string{"chat"}}, 2},
		{seriesKey{name: "switchyard_client_disconnects_total", l: [4]string{"chat"}}, 2},
	} {
		if got := m.counter(c.k).Get(); got != c.want {
			t.Errorf("%s = %d, want %d", m.seriesName(c.k), got, c.want)
		}
	}
	var ctx fasthttp.RequestCtx
	m.write(&ctx)
	body := string(ctx.Response.Body())
	for _, want := range []string{
		`switchyard_upstream_responses_total{backend="up-a",code="error"} 2`,
		`switchyard_ttft_seconds_count{model="chat"} 2`,
		`switchyard_stream_duration_seconds_count{model="chat"} 2`,
		"# HELP switchyard_ttft_seconds Time to the first streamed event, by model.\n# TYPE switchyard_ttft_seconds histogram\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the exposition lacks %q", want)
		}
	}
}

// TestMetricsConcurrentReloads records from many goroutines while
// generations are swapped; nothing is lost (run it with -race).
func TestMetricsConcurrentReloads(t *testing.T) {
	m, g := metricsFixture(t)
	_, g2 := metricsFixture(t)
	const workers, each = 4, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			gen := g
			if w%2 == 1 {
				gen = g2
			}
			x := metricsExchange(gen)
			for range each {
				m.request(x)
				m.requestError(x, CodeUpstream)
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			if i%2 == 0 {
				m.reloaded(true, g)
			} else {
				m.reloaded(true, g2)
			}
		}
	})
	wg.Wait()
	if got := m.counter(requestsKey("default", "chat", "up-a", "chat", 200)).Get(); got != workers*each {
		t.Errorf("requests counted %d, want %d", got, workers*each)
	}
	if got := m.counter(seriesKey{name: "switchyard_errors_total", l: [4]string{"default", "chat", string(CodeUpstream)}}).Get(); got != workers*each {
		t.Errorf("errors counted %d, want %d", got, workers*each)
	}
}

// TestMetricFamilies: each family's help can go into a HELP line as it is,
// and its type fits its name.
func TestMetricFamilies(t *testing.T) {
	for name, f := range families {
		if f.help == "" || strings.ContainsAny(f.help, "\\\n") {
			t.Errorf("%s: help %q is empty or needs escaping", name, f.help)
		}
		switch f.typ {
		case "counter":
			if !strings.HasSuffix(name, "_total") {
				t.Errorf("counter %s does not end in _total", name)
			}
		case "gauge", "histogram":
		default:
			t.Errorf("%s: type %q", name, f.typ)
		}
		if len(f.labels) > 4 {
			t.Errorf("%s: %d labels, a seriesKey holds 4", name, len(f.labels))
		}
	}
	for i, c := range tableCodes {
		if codeSlot(c) != i {
			t.Errorf("codeSlot(%d) = %d, want %d", c, codeSlot(c), i)
		}
	}
	for _, c := range []int{-1, 0, 201, 418, 599, 600, 1000} {
		if codeSlot(c) != -1 {
			t.Errorf("codeSlot(%d) = %d, want -1", c, codeSlot(c))
		}
	}
}
