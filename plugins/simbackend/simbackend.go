// Package simbackend is the backend kind sim: Switchyard's GPU-server
// simulator (backends/sim) run inside the gateway, on a loopback port of its
// own, one per backend and config generation.
//
//	backends:
//	  - name: sim
//	    kind: sim
//	    sim: {model: sim-chat, profile: fast, itl: 5ms}
package simbackend

import (
	"fmt"
	"net"

	"switchyard/backends/sim"
	"switchyard/gateway"
	"switchyard/gateway/config"
)

// Kind registers the backend kind "sim".
var Kind = gateway.BackendKind{
	Name: config.KindSim,
	Doc:  "the built-in GPU-server simulator, run in process on a loopback port; options under sim:",
	Open: open,
}

// open checks the backend's simulator options and, with env.Start, starts
// the simulator. The generation owns it: the returned Closer stops it.
func open(env *gateway.BackendEnv, b *config.Backend) (gateway.Backend, error) {
	opts, err := sim.OptionsFromMap(b.Sim)
	if err != nil {
		return gateway.Backend{}, fmt.Errorf("sim options: %w", err)
	}
	if !env.Start {
		return gateway.Backend{}, nil
	}
	s, err := sim.New(opts)
	if err != nil {
		return gateway.Backend{}, fmt.Errorf("starting the simulator: %w", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		_ = s.Close()
		return gateway.Backend{}, fmt.Errorf("listening for the simulator: %w", err)
	}
	go func() { _ = s.Serve(ln) }() // stopped by s.Close when the generation retires
	return gateway.Backend{URL: "http://" + ln.Addr().String(), Closer: s}, nil
}
