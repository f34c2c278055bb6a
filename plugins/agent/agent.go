// Package agent is the gateway's agent plugin. This part is the tool
// registry: the MCP servers of the config's tools.mcp (streamable HTTP or
// stdio, through the official MCP Go SDK), connected once and kept across
// reloads, reconnected with back-off, their tool lists kept fresh on
// tools/list_changed, and their tools offered as OpenAI function tools
// named "<server>__<tool>" and called with a timeout and a bounded
// result. The agent stage and the /mcp endpoint build on it; see
// docs/agent.md.
//
// A stage gets the registry when it is provisioned and calls tools with
// it:
//
//	func (s *Stage) Provision(env *gateway.Env) error {
//		s.tools = agent.RegistryOf(env) // nil: no agent plugin registered
//		return nil
//	}
//
//	set := s.tools.Tools()                      // the offered tools, a snapshot
//	body = set.AppendFunctions(body, s.permits) // into the request's "tools"
//	res, err := s.tools.Call(ctx, call.Name, call.Arguments)
//	// err: a *CallError (errors.Is ErrTimeout, ErrUnavailable, ...);
//	// res.Text (and res.IsError) otherwise: the tool message's content.
package agent

import (
	"encoding/json"

	"github.com/valyala/fasthttp"

	"switchyard/gateway"
	"switchyard/gateway/config"
)

// ServiceName is the gateway service of the tool registry.
const ServiceName = "tools"

// Register adds the tool registry service and its admin endpoint
// (GET /admin/tools) to reg.
func Register(reg *gateway.Registry) {
	reg.RegisterService(gateway.Service{Name: ServiceName, Open: func(env *gateway.Env, cfg *config.Config) (any, error) {
		return Open(env, cfg)
	}})
	reg.RegisterEndpoint(gateway.Endpoint{Method: "GET", Path: "/admin/tools", Admin: true, Handle: serveStatus})
	audit := newAuditLog()
	reg.Register(gateway.Factory{
		Kind: "agent",
		Doc:  "runs the tool loop for the client over the registry's MCP tools, with bounds, approvals and an audit trail",
		New:  func() gateway.Stage { return &Stage{audit: audit} },
	})
	reg.RegisterEndpoint(gateway.Endpoint{Method: "GET", Path: "/admin/audit", Admin: true, Handle: audit.serve})
}

// RegistryOf returns the registry of the generation being built, for a
// stage's Provision; nil when the service is not registered.
func RegistryOf(env *gateway.Env) *Registry {
	r, _ := env.Service(ServiceName).(*Registry)
	return r
}

// RegistryFor returns, inside an endpoint's handler, the registry of the
// generation serving the request (nil when there is none); not to be kept
// past the handler.
func RegistryFor(ctx *fasthttp.RequestCtx) *Registry {
	r, _ := gateway.ServiceOf(ctx, ServiceName).(*Registry)
	return r
}

// serveStatus answers GET /admin/tools: each server's state and the
// offered tools as the model sees them.
func serveStatus(ctx *fasthttp.RequestCtx, _ *gateway.Principal) {
	r := RegistryFor(ctx)
	out := struct {
		Servers []ServerStatus    `json:"servers"`
		Tools   []json.RawMessage `json:"tools"`
	}{Servers: []ServerStatus{}, Tools: []json.RawMessage{}}
	if r != nil {
		out.Servers = r.Servers()
		for _, t := range r.Tools().Tools {
			out.Tools = append(out.Tools, t.Function)
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}
