package cache_test

import (
	"context"
	"testing"

	"switchyard/gateway"
)

// BenchmarkExactHit is an exact hit through the gateway without HTTP
// (Server.Do: routing, admission, the chain, the answer).
func BenchmarkExactHit(b *testing.B) {
	g := start(b, config(b, `cache: {nondeterministic: true}`, ""))
	body := []byte(`{"model":"sim-chat","temperature":0,"max_tokens":50,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France, and why is it famous?"}]}`)
	ctx := context.Background()
	if _, err := g.g.Srv.Do(ctx, &gateway.Request{Op: gateway.OpChat, Body: body}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := g.g.Srv.Do(ctx, &gateway.Request{Op: gateway.OpChat, Body: body})
		if err != nil || resp.Status != 200 {
			b.Fatal(err)
		}
	}
}
