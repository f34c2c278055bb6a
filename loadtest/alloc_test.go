//go:build !race

package loadtest

import (
	"bytes"
	"testing"
)

// TestHotPathAllocs pins the generator's own per-request work at zero
// allocations once buffers are warm.
func TestHotPathAllocs(t *testing.T) {
	g := testGenerator(t, func(c *Config) {
		c.SharedPrefixRatio = 0.5
		c.RepeatRatio = 0.5
		c.ParaphraseRatio = 0.5
		c.APIKeys = []string{"a", "b"}
	})
	buf := make([]byte, 0, 64<<10)
	if n := testing.AllocsPerRun(200, func() {
		k, p, para, _ := g.pick()
		buf = g.appendBody(buf[:0], k, p, para)
	}); n != 0 {
		t.Errorf("pick+appendBody: %v allocs/op, want 0", n)
	}
	tg := testGenerator(t, func(c *Config) {
		c.Scenario = ScenarioMix
		c.Mix = map[string]float64{"chat": 1, "stream": 1, "completions": 1}
		c.PrefixTenants, c.PrefixTokens, c.PrefixUsers, c.PrefixSkew = 16, 512, 4, 1
		c.RepeatRatio = 0.2
	})
	if n := testing.AllocsPerRun(200, func() {
		k, p, para, _ := tg.pick()
		buf = tg.appendBody(buf[:0], k, p, para)
	}); n != 0 {
		t.Errorf("pick+appendBody with tenants: %v allocs/op, want 0", n)
	}

	stream := benchStream(16)
	var r bytes.Reader
	var s SSEReader
	s.Reset(&r, 0)
	if n := testing.AllocsPerRun(200, func() {
		r.Reset(stream)
		s.Reset(&r, 0)
		for {
			data, err := s.Next()
			if err != nil || isDone(data) {
				break
			}
			hasTokenContent(data)
			scanUsage(data)
		}
	}); n != 0 {
		t.Errorf("SSE scan: %v allocs/op, want 0", n)
	}
}
