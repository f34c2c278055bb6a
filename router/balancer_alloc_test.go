//go:build !race

package router_test

import (
	"testing"

	"switchyard/router"
)

func TestRegisteredBalancerZeroAllocs(t *testing.T) {
	_, p := sessionPool(t)
	req := &router.Request{SessionKey: []byte("user-7")}
	n := testing.AllocsPerRun(200, func() {
		tg := p.Pick(req, nil)
		tg.Upstream.Release()
		tg = p.Pick(req, tg)
		tg.Upstream.Release()
	})
	if n != 0 {
		t.Fatalf("Pick with a registered balancer: %v allocs/op, want 0", n)
	}
}
