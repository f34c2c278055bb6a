//go:build !race

package gateway

import (
	"testing"
	"time"
)

// TestMetricsAllocations: recording allocates nothing once a series exists,
// through the table and through the map.
func TestMetricsAllocations(t *testing.T) {
	m, g := metricsFixture(t)
	pools := g.Router.Pools()
	x := metricsExchange(g)
	x.upStart = time.Now()
	record := func() {
		m.request(x)
		m.requestError(x, CodeUpstream)
		m.upstreamResult(x, 200)
		m.upstreamResult(x, 0)
		m.retry(pools[0])
		m.fallback(pools[0], pools[2])
		m.streamHistograms(x)
		m.streamError(x)
		m.clientGone(x)
	}
	record()
	if n := testing.AllocsPerRun(200, record); n != 0 {
		t.Errorf("recording through the table allocates %.1f times", n)
	}
	m.tab.Store(nil)
	record()
	if n := testing.AllocsPerRun(200, record); n != 0 {
		t.Errorf("recording through the map allocates %.1f times", n)
	}
}
