// Package stages holds the example stages of docs/stages.md, one pattern
// each. They are compiled with the module and run through a real gateway by
// this package's tests; docs/stages.md shows their code verbatim (the text
// between "doc:begin" and "doc:end" markers, checked by TestDocShowsTheCode).
//
// They are examples: the switchyard binary does not register them. A binary
// that wants them calls Register next to plugins.RegisterAll.
package stages

import (
	"encoding/json"

	"github.com/valyala/fasthttp"

	"switchyard/gateway"
)

// doc:begin register
// Register adds the example stage kinds and the example endpoint to reg.
func Register(reg *gateway.Registry) {
	reg.Register(gateway.Factory{Kind: "memo", Doc: "answer repeated chat requests from memory", New: func() gateway.Stage { return &Memo{} }})
	reg.Register(gateway.Factory{Kind: "notice", Doc: "answer every request with a fixed text", New: func() gateway.Stage { return &Notice{} }})
	reg.Register(gateway.Factory{Kind: "wordfilter", Doc: "withhold streamed text with denied words", New: func() gateway.Stage { return &Guard{} }})
	reg.Register(gateway.Factory{Kind: "refine", Doc: "ask the model twice: a draft, then an improvement", New: func() gateway.Stage { return &Refine{} }})
	reg.Register(gateway.Factory{Kind: "gate", Doc: "let at most max requests through at a time", New: func() gateway.Stage { return &Gate{} }})
	reg.Register(gateway.Factory{Kind: "quota", Doc: "requests per minute per route, kept across reloads", New: func() gateway.Stage { return &Quota{} }})
	reg.Register(gateway.Factory{Kind: "judge", Doc: "ask another model pool about each request", New: func() gateway.Stage { return &Judge{} }})
	reg.RegisterEndpoint(gateway.Endpoint{Method: "GET", Path: "/v1/examples/whoami", Handle: whoami})
}

// whoami answers with the caller's key id and tenant (null without keys).
func whoami(ctx *fasthttp.RequestCtx, p *gateway.Principal) {
	ctx.SetContentType("application/json")
	if p == nil {
		ctx.SetBodyString(`{"key_id":null}`)
		return
	}
	b, _ := json.Marshal(map[string]string{"key_id": p.KeyID, "tenant": p.Tenant})
	ctx.SetBody(b)
}

// doc:end register
