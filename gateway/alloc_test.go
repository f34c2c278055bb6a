//go:build !race

package gateway_test

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestProxyAllocations holds the whole proxied request (client, gateway and
// upstream in this process) to a small fixed number of allocations.
func TestProxyAllocations(t *testing.T) {
	t.Run("pass-through", func(t *testing.T) { proxyAllocations(t, "", "") })
	// Admission with the local limiter on a key, its tenant and the pool.
	t.Run("admission", func(t *testing.T) { proxyAllocations(t, benchAdmission, benchKey) })
}

func proxyAllocations(t *testing.T, extra, key string) {
	c := benchGatewayWith(t, extra)
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	do := func() {
		req.Reset()
		req.Header.SetMethod("POST")
		req.SetRequestURI("http://gateway/v1/chat/completions")
		req.Header.SetContentType("application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		req.SetBody(benchBody)
		doOne(t, c, req, resp)
	}
	for range 100 {
		do() // warm the pools
	}
	if n := testing.AllocsPerRun(500, do); n > 2 {
		t.Errorf("a proxied request allocates %.1f times, budget 2", n)
	} else {
		t.Logf("%.1f allocations per proxied request", n)
	}
}
