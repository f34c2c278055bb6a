package gateway

import (
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/internal/jsonscan"
	"switchyard/internal/oip"
)

// The Open Inference Protocol (KServe v2 REST), docs/kserve.md. The model
// operations (infer, model metadata, model ready) are rows of the
// operations table, routed, admitted and dispatched as the OpenAI ones are;
// the server-level endpoints are answered by the gateway itself.

var oipRequests = sync.Pool{New: func() any { return new(oip.Request) }}

// checkV2Infer validates an inference request's body (shapes, datatypes,
// data lengths) before it is routed anywhere.
func checkV2Infer(body []byte) error {
	r := oipRequests.Get().(*oip.Request)
	defer func() { r.Reset(); oipRequests.Put(r) }()
	if err := oip.ParseRequest(body, r); err != nil {
		return &Error{Status: fasthttp.StatusBadRequest, Code: CodeInvalidRequest, Message: err.Error()}
	}
	return nil
}

// publicModelName renames the target's model in a KServe answer (model
// metadata's "name", an inference response's "model_name") to the name the
// client asked for.
func (x *Exchange) publicModelName() {
	field := "name"
	if x.Op == OpV2Infer {
		field = "model_name"
	}
	if _, ok := jsonscan.Lookup(x.RespBody, field); !ok {
		return
	}
	x.upModel = jsonscan.AppendString(x.upModel[:0], string(x.RequestModel))
	x.tmp = jsonscan.Set(x.tmp[:0], x.RespBody, field, x.upModel)
	x.RespBody, x.tmp = x.tmp, x.RespBody
}

// serveV2 answers the server-level endpoints: live (the gateway runs),
// ready (every model pool has a healthy backend) and the server metadata
// (for authenticated callers).
func (s *Server) serveV2(ctx *fasthttp.RequestCtx, gen *Generation, path string) {
	if !ctx.IsGet() && !ctx.IsHead() {
		writeKServeError(ctx, errMethod(ctx, "GET, HEAD"))
		return
	}
	ctx.SetContentType("application/json")
	switch path {
	case "/v2/health/live":
		ctx.SetBodyString(`{"live":true}`)
	case "/v2/health/ready":
		now := time.Now()
		for _, p := range gen.Router.Pools() {
			if !p.Healthy(now) {
				ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
				ctx.SetBodyString(`{"live":true,"ready":false}`)
				return
			}
		}
		ctx.SetBodyString(`{"live":true,"ready":true}`)
	default: // /v2, /v2/
		if s.authRequired(gen) {
			if _, err := s.principal(ctx, gen); err != nil {
				writeKServeError(ctx, asError(err))
				return
			}
		}
		b := append([]byte(nil), `{"name":"switchyard","version":`...)
		v := s.opts.Version
		if v == "" {
			v = "dev"
		}
		b = jsonscan.AppendString(b, v)
		b = append(b, `,"extensions":[]}`...)
		ctx.SetBody(b)
	}
}
