package backends

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

func BenchmarkDo(b *testing.B) {
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("{}") }}
	go srv.Serve(ln)
	defer srv.Shutdown()
	c, _ := New(Options{Name: "b", URL: "http://" + ln.Addr().String()})
	defer c.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		var k Call
		for pb.Next() {
			req.Reset()
			c.PrepareRequest(req, "POST", "/v1/chat/completions")
			req.SetBodyString(`{"model":"m"}`)
			k.Reset()
			if err := c.Do(&k, req, resp); err != nil {
				b.Fatal(err)
			}
		}
	})
}
