// Package plugins registers Switchyard's built-in stages. The binary calls
// RegisterAll explicitly; nothing registers itself from init.
package plugins

import (
	"switchyard/gateway"
	"switchyard/plugins/defaults"
	"switchyard/plugins/headers"
)

// RegisterAll adds every built-in stage kind to reg.
func RegisterAll(reg *gateway.Registry) {
	reg.Register(defaults.Factory)
	reg.Register(headers.Factory)
}
