package stages

import (
	"context"
	"errors"
	"fmt"

	"switchyard/gateway"
)

// doc:begin gate
// Gate lets at most Max requests of its route through at a time. The others
// wait for a slot as long as their exchange lasts: until the client leaves
// or the route's timeout passes. A request holds its slot until its
// exchange ends (for a stream, after its last byte). Each generation has
// its own slots; a limit that must hold across reloads keeps them in the
// resource pool (see the quota example).
type Gate struct {
	Max int `yaml:"max"`

	slots chan struct{}
}

func (g *Gate) Validate() error {
	if g.Max < 1 {
		return fmt.Errorf("gate.max must be >= 1, got %d", g.Max)
	}
	return nil
}

func (g *Gate) Provision(*gateway.Env) error {
	g.slots = make(chan struct{}, g.Max)
	return nil
}

func (g *Gate) Handle(x *gateway.Exchange, next gateway.Handler) error {
	ctx := x.Context()
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, gateway.ErrClientGone):
			return &gateway.Error{Status: gateway.StatusClientClosed, Code: gateway.CodeClientClosed, Message: "the client left while waiting for a slot"}
		case errors.Is(cause, context.DeadlineExceeded):
			return &gateway.Error{Status: 504, Code: gateway.CodeUpstreamTimeout, Message: "the route's timeout passed while waiting for a slot"}
		default:
			return &gateway.Error{Status: 503, Code: gateway.CodeUnavailable, Message: "the request ended while waiting for a slot", Err: cause}
		}
	}
	x.Defer(func(*gateway.Exchange) { <-g.slots }) // runs once, however the exchange ends
	return next.Handle(x)
}

// doc:end gate
