// Package ratelimit is the `ratelimit` stage: route-level rate limits on top
// of the admission limits of keys, tenants and pools, with a bucket per
// key, per tenant, per value of a request header, or per value of a
// metadata field.
//
//	chain:
//	  - ratelimit: {by: header:x-user-id, rpm: 20, tpm: 20000}
//	  - ratelimit: {by: tenant, concurrency: 8}
//
// It uses the gateway's limiter (ratelimit.backend: local or redis), so the
// limits hold across replicas with Redis, with the same semantics as the
// admission limits: a burst of up to the limit at once, refilled
// continuously; tokens reserved at admission and settled with the real
// usage when the answer ends.
package ratelimit

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/internal/httpname"
	"switchyard/internal/jsonscan"
	"switchyard/internal/limit"
)

// Factory registers the stage kind "ratelimit".
var Factory = gateway.Factory{
	Kind: "ratelimit",
	Doc:  "route-level rate limits per key, tenant, header or metadata value",
	New:  func() gateway.Stage { return &Stage{} },
}

// Stage holds the stage's settings.
type Stage struct {
	// By chooses the bucket: key (default: the caller's key id), tenant,
	// header:<name> (each value of a request header) or metadata:<field>
	// (each value of a field of the request's metadata object).
	By string `yaml:"by"`
	// RPM is requests per minute per bucket.
	RPM int64 `yaml:"rpm"`
	// Burst lowers the requests admitted at once (default rpm).
	Burst int64 `yaml:"burst"`
	// TPM is tokens per minute per bucket.
	TPM int64 `yaml:"tpm"`
	// TPMBurst lowers the tokens admitted at once (default tpm).
	TPMBurst int64 `yaml:"tpm_burst"`
	// Concurrency caps requests in flight per bucket.
	Concurrency int64 `yaml:"concurrency"`
	// Missing is what happens to a request without the value By names (no
	// key, no tenant, no such header or field): skip (default: not limited
	// by this stage) or reject (400).
	Missing string `yaml:"missing"`

	kind    byKind
	field   string // header name (canonical) or metadata field
	prefix  string // bucket name prefix: route:<route>|<by>=
	limit   limit.Limit
	limiter limit.Limiter
	pool    sync.Pool // *state
}

type byKind uint8

const (
	byKey byKind = iota
	byTenant
	byHeader
	byMetadata
)

// state is one request's admission, pooled.
type state struct {
	req    limit.Request
	checks [1]limit.Check
	res    limit.Result
	st     *Stage
	tokens int64
}

// Provision compiles the settings.
func (s *Stage) Provision(env *gateway.Env) error {
	switch by := s.By; {
	case by == "" || by == "key":
		s.kind, s.By = byKey, "key"
	case by == "tenant":
		s.kind = byTenant
	case strings.HasPrefix(by, "header:"):
		s.kind, s.field = byHeader, strings.TrimPrefix(by, "header:")
		if err := httpname.Check(s.field); err != nil {
			return fmt.Errorf("by: %w", err)
		}
		s.field = httpname.Canonical(s.field)
	case strings.HasPrefix(by, "metadata:"):
		s.kind, s.field = byMetadata, strings.TrimPrefix(by, "metadata:")
		if s.field == "" {
			return errors.New("by: metadata: needs a field name (metadata:team)")
		}
	default:
		return fmt.Errorf("by: unknown %q (want key, tenant, header:<name> or metadata:<field>)", by)
	}
	switch s.Missing {
	case "", "skip", "reject":
	default:
		return fmt.Errorf("missing: unknown %q (want skip or reject)", s.Missing)
	}
	l := config.Limits{RPM: s.RPM, Burst: s.Burst, TPM: s.TPM, TPMBurst: s.TPMBurst, Concurrency: s.Concurrency}
	if l.IsZero() {
		return errors.New("set at least one of rpm, tpm and concurrency")
	}
	if p := config.CheckLimits(l); len(p) > 0 {
		return errors.New(strings.Join(p, "; "))
	}
	s.limit = limit.Limit{RPM: s.RPM, RequestBurst: s.Burst, TPM: s.TPM, TokenBurst: s.TPMBurst, Concurrency: s.Concurrency}
	s.prefix = "route:" + env.Route + "|" + s.By + "="
	s.limiter = env.Limiter
	if s.limiter == nil {
		return errors.New("no rate limiter in this environment")
	}
	s.pool.New = func() any { return &state{st: s} }
	return nil
}

// value is the request's bucket value, or nil when it has none.
func (s *Stage) value(x *gateway.Exchange) []byte {
	switch s.kind {
	case byKey:
		if x.Principal != nil {
			return []byte(x.Principal.KeyID)
		}
	case byTenant:
		if x.Principal != nil && x.Principal.Tenant != "" {
			return []byte(x.Principal.Tenant)
		}
	case byHeader:
		if v := x.Header(s.field); len(v) > 0 {
			return v
		}
	case byMetadata:
		if m := x.Fields.Metadata; len(m) > 0 {
			if v, ok := jsonscan.MetadataValue(m, s.field); ok && len(v) > 0 {
				return v
			}
		}
	}
	return nil
}

// Handle admits the request against its bucket, then continues.
func (s *Stage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	v := s.value(x)
	if v == nil {
		if s.Missing == "reject" {
			return &gateway.Error{Status: 400, Code: gateway.CodeInvalidRequest,
				Message: "this route limits requests by " + s.By + ", and the request has none"}
		}
		return next.Handle(x)
	}
	if len(v) > 256 {
		v = v[:256] // a bound on bucket names; longer values share a bucket by their prefix
	}
	st := s.pool.Get().(*state)
	st.checks[0] = limit.Check{Name: s.prefix + string(v), Limit: s.limit}
	st.req.Checks = st.checks[:]
	st.req.Tokens = 0
	if s.limit.TPM > 0 {
		st.req.Tokens = x.TokenEstimate()
	}
	if err := s.limiter.Admit(x.Context(), &st.req, &st.res); err != nil {
		s.put(st)
		return err
	}
	x.MergeLimits(&st.res)
	if !st.res.OK {
		e := gateway.RateLimitError(&st.res, &st.checks[0], st.req.Tokens)
		s.put(st)
		return e
	}
	st.tokens = st.req.Tokens
	calls := x.Calls
	x.Defer(func(x *gateway.Exchange) {
		var delta int64
		u := x.TotalUsage()
		switch {
		case x.Calls == calls:
			delta = -st.tokens // nothing dispatched: all back
		case u.PromptTokens > 0 || u.CompletionTokens > 0:
			delta = u.PromptTokens + u.CompletionTokens - st.tokens
		}
		s.limiter.Settle(&st.req, delta)
		s.put(st)
	})
	return next.Handle(x)
}

func (s *Stage) put(st *state) {
	st.checks[0] = limit.Check{}
	st.req = limit.Request{}
	st.res = limit.Result{}
	s.pool.Put(st)
}
