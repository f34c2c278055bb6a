// Package plugins registers Switchyard's built-in stages and backend kinds.
// The binary calls RegisterAll explicitly; nothing registers itself from
// init.
package plugins

import (
	"switchyard/gateway"
	"switchyard/plugins/agent"
	"switchyard/plugins/cache"
	"switchyard/plugins/defaults"
	"switchyard/plugins/guard"
	"switchyard/plugins/headers"
	"switchyard/plugins/ratelimit"
	"switchyard/plugins/retrieval"
	"switchyard/plugins/simbackend"
)

// RegisterAll adds every built-in stage kind and backend kind to reg (the
// backend kind openai is the gateway's own and comes with
// gateway.NewRegistry).
func RegisterAll(reg *gateway.Registry) {
	reg.Register(defaults.Factory)
	reg.Register(headers.Factory)
	reg.Register(ratelimit.Factory)
	reg.Register(guard.Factory)
	cache.Register(reg)
	retrieval.Register(reg)
	agent.Register(reg)
	reg.RegisterBackend(simbackend.Kind)
}
