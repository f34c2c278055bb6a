//go:build !race

package router

import "testing"

func TestInferenceAwareZeroAllocs(t *testing.T) {
	for _, st := range []string{"inference_aware", "consistent_hash"} {
		p, req := benchAwarePool(t, st)
		n := testing.AllocsPerRun(200, func() {
			tg := p.Pick(req, nil)
			tg.Upstream.Release()
			tg = p.Pick(req, tg)
			tg.Upstream.Release()
		})
		if n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", st, n)
		}
	}
}
