//go:build !race

package gateway_test

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestProxyAllocations holds the whole proxied request (client, gateway and
// upstream in this process) to a small fixed number of allocations.
func TestProxyAllocations(t *testing.T) {
	c := benchGateway(t)
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	do := func() {
		req.Reset()
		req.Header.SetMethod("POST")
		req.SetRequestURI("http://gateway/v1/chat/completions")
		req.Header.SetContentType("application/json")
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
