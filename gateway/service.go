package gateway

import (
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"switchyard/gateway/config"
)

// Service is plugin state that follows the config as a whole rather than
// one route: retrieval's collections and the Files API's store, which the
// retrieval stages and the plugin's endpoints share. Open is called once
// per generation, before the chains are built, with the generation's
// environment (Env.Route and Env.Path are empty) and config; its value is
// the generation's for the service's name (Env.Service for stages,
// ServiceOf for endpoints), and is closed, if it is a Closer, when the
// generation retires, after the stages. State that must outlive a reload
// (open indexes, connections) is kept with Resource, as a stage's is. An
// error rejects the generation; it should name the config's YAML path
// (cfg.Errorf).
//
// env.Live is false while a config is only validated: Open then checks
// what it can without opening files or connecting, and returns a value
// stages can still be provisioned against.
type Service struct {
	Name string
	Open func(env *Env, cfg *config.Config) (any, error)
}

// RegisterService adds a service; a name registered twice panics.
func (r *Registry) RegisterService(s Service) {
	if s.Name == "" || s.Open == nil {
		panic("gateway: service without a name or an Open function")
	}
	for _, o := range r.services {
		if o.Name == s.Name {
			panic("gateway: service registered twice: " + s.Name)
		}
	}
	r.services = append(r.services, s)
}

// openServices opens the registry's services for g, in registration
// order.
func (g *Generation) openServices(o BuildOptions, env Env) error {
	if o.Registry == nil || len(o.Registry.services) == 0 {
		return nil
	}
	g.services = map[string]any{}
	for _, s := range o.Registry.services {
		e := g.shared.env(env)
		e.Log = env.Log.With("service", s.Name)
		v, err := s.Open(e, g.Config)
		if err != nil {
			var ce config.Error
			if errors.As(err, &ce) {
				return err // it names its file and line
			}
			return fmt.Errorf("%s: service %s: %w", g.Config.File, s.Name, err)
		}
		g.services[s.Name] = v
		if c, ok := v.(Closer); ok {
			g.serviceClosers = append(g.serviceClosers, c)
		}
	}
	return nil
}

// Service returns the generation's value of the service name, or nil.
func (g *Generation) Service(name string) any { return g.services[name] }

// Service returns the value of the service name in the generation being
// built, for a stage's Provision; nil when there is none.
func (e *Env) Service(name string) any {
	if e.services == nil {
		return nil
	}
	return e.services[name]
}

// genKey is the RequestCtx user value under which an endpoint's handler
// finds its generation.
type genKey struct{}

// ServiceOf returns, inside an Endpoint's Handle, the value of the service
// name in the generation serving the request (nil when there is none). It
// must not be kept past the handler: the generation may retire after it.
func ServiceOf(ctx *fasthttp.RequestCtx, name string) any {
	g, _ := ctx.UserValue(genKey{}).(*Generation)
	if g == nil {
		return nil
	}
	return g.Service(name)
}

// serveWithGeneration runs an endpoint with g counted in and reachable
// through ServiceOf.
func serveWithGeneration(ctx *fasthttp.RequestCtx, g *Generation, e Endpoint, p *Principal) {
	g.acquire()
	defer g.release()
	ctx.SetUserValue(genKey{}, g)
	defer ctx.RemoveUserValue(genKey{})
	e.Handle(ctx, p)
}
