package gateway

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// adminHandler serves the admin API: the effective config (secrets
// redacted), backend health, and a reload trigger. Every call needs the
// admin bearer token unless admin.insecure is set.
func (s *Server) adminHandler(ctx *fasthttp.RequestCtx) {
	gen := s.gen.Load()
	a := gen.Config.Admin
	if !a.Insecure {
		auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
		want := "Bearer " + a.Token.Value()
		if a.Token.Value() == "" || subtle.ConstantTimeCompare(auth, []byte(want)) != 1 {
			writeError(ctx, &Error{Status: fasthttp.StatusUnauthorized, Code: CodeAuthentication, Message: "admin API: missing or wrong bearer token"})
			return
		}
	}
	switch string(ctx.Path()) {
	case "/admin/config":
		b, err := gen.Config.Redacted()
		if err != nil {
			writeError(ctx, &Error{Status: fasthttp.StatusInternalServerError, Code: CodeInternal, Message: "rendering the config", Err: err})
			return
		}
		ctx.SetContentType("application/yaml")
		ctx.SetBody(b)
	case "/admin/backends":
		type backendState struct {
			Name     string `json:"name"`
			Healthy  bool   `json:"healthy"`
			Inflight int64  `json:"inflight"`
			Kind     string `json:"kind"`
			URL      string `json:"url,omitempty"`
			// Breaker is the backend's circuit breaker (outlier ejection).
			Breaker adminBreaker `json:"breaker"`
			// Load is the last good scrape of the backend's metrics page
			// (backends[].metrics), with its age; absent when not scraped
			// or before the first good scrape.
			Load *loadState `json:"load,omitempty"`
		}
		now := time.Now()
		var out []backendState
		for i, u := range gen.Router.Upstreams() {
			b := gen.Config.Backends[i]
			out = append(out, backendState{Name: u.Name, Healthy: u.Healthy(now), Inflight: u.Inflight(), Kind: b.Kind, URL: b.URL,
				Breaker: breakerOf(u, now), Load: adminLoad(u, now)})
		}
		body, _ := json.Marshal(map[string]any{"generation": gen.ID, "backends": out})
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	case "/admin/reload":
		if !ctx.IsPost() {
			writeError(ctx, &Error{Status: fasthttp.StatusMethodNotAllowed, Code: CodeInvalidRequest, Message: "use POST /admin/reload"})
			return
		}
		if err := s.Reload(); err != nil {
			body, _ := json.Marshal(map[string]any{"reloaded": false, "error": err.Error()})
			ctx.SetStatusCode(fasthttp.StatusUnprocessableEntity)
			ctx.SetContentType("application/json")
			ctx.SetBody(body)
			return
		}
		body, _ := json.Marshal(map[string]any{"reloaded": true, "generation": s.gen.Load().ID})
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	case "/metrics":
		ctx.SetContentType("text/plain; version=0.0.4")
		s.metrics.write(ctx)
	default:
		if s.serveAdminKeys(ctx) {
			return
		}
		if e, ok := s.opts.Registry.endpoint(ctx.Path(), true); ok {
			if !e.allows(ctx.Method()) {
				writeError(ctx, errMethod(ctx, e.Method))
				return
			}
			serveWithGeneration(ctx, s.gen.Load(), e, nil)
			return
		}
		if bytes.HasPrefix(ctx.Path(), []byte("/debug/pprof/")) {
			pprofhandler.PprofHandler(ctx) // Go's profiles, for finding where time goes
			return
		}
		writeError(ctx, &Error{Status: fasthttp.StatusNotFound, Code: CodeInvalidRequest, Message: "unknown admin path " + string(ctx.Path())})
	}
}
