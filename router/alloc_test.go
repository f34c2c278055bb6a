//go:build !race

package router

import (
	"testing"
	"time"
)

func TestZeroAllocs(t *testing.T) {
	r, err := New(benchSpec())
	if err != nil {
		t.Fatal(err)
	}
	req := benchRequest()
	now := time.Now()
	cases := map[string]func(){
		"Match": func() {
			if r.Match(req) == nil {
				t.Fatal("no match")
			}
		},
		"Pool": func() { _ = r.Pool(req.Model) },
		"Retry": func() {
			p := r.Pools()[0]
			p.Retry.Request(now)
			_ = p.Retry.AllowRetry(now)
		},
	}
	for _, p := range r.Pools() {
		cases["Pick/"+p.Name] = func() {
			tg := p.Pick(req, nil)
			tg.Upstream.Release()
			tg = p.Pick(req, tg)
			tg.Upstream.Release()
		}
	}
	for name, fn := range cases {
		if n := testing.AllocsPerRun(200, fn); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
}
