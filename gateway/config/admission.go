package config

import (
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
)

// Priority classes of keys and tenants: who yields first when a model
// pool is at capacity.
const (
	PriorityCritical  = "critical"  // served first; waits for capacity
	PriorityStandard  = "standard"  // waits for capacity up to admission.wait.standard
	PrioritySheddable = "sheddable" // refused at once (503) when the pool is full
)

// Rate-limit backends.
const (
	RateLimitLocal = "local" // token buckets in process
	RateLimitRedis = "redis" // shared by replicas through Redis
)

// Budget periods.
const (
	PeriodDay   = "day"   // midnight to midnight, UTC
	PeriodMonth = "month" // the 1st to the 1st, UTC
)

// Admission defaults.
const (
	DefaultDataDir          = "./data"
	DefaultOnRedisError     = RateLimitLocal
	DefaultReserveMaxTokens = 4096
	DefaultQueueSize        = 1024
	DefaultWaitCritical     = Duration(60e9)
	DefaultWaitStandard     = Duration(10e9)
	DefaultKeySync          = Duration(2e9)
)

// Limits caps the rate and concurrency of a key, a tenant or a model pool.
// A limit left out (or 0) is not applied.
type Limits struct {
	// RPM is requests per minute. A limit of N admits a burst of up to N at
	// once and refills continuously, one every 60/N seconds.
	RPM int64 `yaml:"rpm,omitempty" json:"rpm,omitempty"`
	// Burst lowers the requests admitted at once (default RPM; at most RPM).
	Burst int64 `yaml:"burst,omitempty" json:"burst,omitempty"`
	// TPM is tokens per minute, prompt and completion together. A request
	// reserves its prompt estimate plus its max_tokens (or
	// ratelimit.reserve_max_tokens) at admission, and the unused part is
	// refunded when its answer ends.
	TPM int64 `yaml:"tpm,omitempty" json:"tpm,omitempty"`
	// TPMBurst lowers the tokens admitted at once (default TPM; at most TPM).
	TPMBurst int64 `yaml:"tpm_burst,omitempty" json:"tpm_burst,omitempty"`
	// Concurrency caps requests in flight (across replicas with the redis
	// backend).
	Concurrency int64 `yaml:"concurrency,omitempty" json:"concurrency,omitempty"`
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// Budget caps spend per period, priced by models[].prices.
type Budget struct {
	// Period is day or month (UTC). Default month.
	Period string `yaml:"period,omitempty" json:"period,omitempty"`
	// Hard is the spend in USD at which requests are refused (429
	// insufficient_quota) until the period ends. 0: no hard cap.
	Hard float64 `yaml:"hard,omitempty" json:"hard,omitempty"`
	// Soft is the spend in USD past which each request is logged and
	// counted in switchyard_budget_soft_exceeded_total, but served. 0: none.
	Soft float64 `yaml:"soft,omitempty" json:"soft,omitempty"`
}

// IsZero reports whether no budget is set.
func (b Budget) IsZero() bool { return b.Hard == 0 && b.Soft == 0 }

// Tenant is a team or application that keys belong to. Its models, limits
// and budget apply to all its keys together, on top of each key's own.
type Tenant struct {
	// Name identifies the tenant in keys, routes, logs and metrics.
	// Required and unique.
	Name string `yaml:"name"`
	// Models are globs on the model pools the tenant's keys may use. Empty
	// allows all.
	Models StringList `yaml:"models,omitempty"`
	// Priority is the class of the tenant's keys that set none: critical,
	// standard (default) or sheddable.
	Priority string `yaml:"priority,omitempty"`
	// Limits apply to all the tenant's keys together.
	Limits Limits `yaml:"limits,omitempty"`
	// ModelLimits maps globs on model pool names to limits (rpm, tpm) on the
	// tenant's requests to the pools that match, each glob its own bucket.
	ModelLimits map[string]Limits `yaml:"model_limits,omitempty"`
	// Budget caps the tenant's spend.
	Budget Budget `yaml:"budget,omitempty"`
	// Metadata is free-form labels (owner, cost center), shown by the admin
	// API.
	Metadata map[string]string `yaml:"metadata,omitempty"`

	// Line is the tenant's line in the file (0 when unknown).
	Line int `yaml:"-"`
}

// Store is the durable store: keys made through the admin API, spend.
// SQLite in data_dir by default; PostgreSQL when postgres.dsn is set
// (replicas then share it).
type Store struct {
	// Postgres selects PostgreSQL.
	Postgres Postgres `yaml:"postgres,omitempty"`
	// KeySync is how often keys made, revoked or rotated through the admin
	// API (on any replica) are read from the store. Default "2s"; must be
	// positive.
	KeySync Duration `yaml:"key_sync,omitempty"`
}

// Postgres is a PostgreSQL connection.
type Postgres struct {
	// DSN is a connection string or URL (postgres://user:pass@host/db);
	// give it by ${ENV} reference.
	DSN Secret `yaml:"dsn,omitempty"`
}

// RateLimit sets where rate-limit state lives.
type RateLimit struct {
	// Backend is local (default: each replica keeps its own buckets) or
	// redis (replicas share them: limits hold across replicas).
	Backend string `yaml:"backend,omitempty"`
	// Redis is the server for backend redis.
	Redis Redis `yaml:"redis,omitempty"`
	// OnRedisError is what happens while Redis is unreachable: local
	// (default: each replica falls back to its own buckets) or closed
	// (requests under a limit get 503). Recovery is automatic.
	OnRedisError string `yaml:"on_redis_error,omitempty"`
	// ReserveMaxTokens is the completion tokens reserved against a TPM
	// limit for a request that gives no max_tokens. Default 4096.
	ReserveMaxTokens int64 `yaml:"reserve_max_tokens,omitempty"`
}

// Redis is a Redis server.
type Redis struct {
	// URL is redis://[user:password@]host:port[/db] or rediss://...; give a
	// password by ${ENV} reference.
	URL Secret `yaml:"url,omitempty"`
}

// Admission sets priority load shedding: what happens when a model pool has
// as many requests in flight as its backends' max_concurrency summed.
type Admission struct {
	// Queue is the most requests waiting for one pool; past it, requests
	// are refused (503). Default 1024.
	Queue int `yaml:"queue,omitempty"`
	// Wait is how long each class waits for capacity before a 503.
	Wait ClassWait `yaml:"wait,omitempty"`
}

// ClassWait is the longest wait for capacity by priority class (sheddable
// never waits).
type ClassWait struct {
	// Critical requests wait first in line. Default "60s".
	Critical Duration `yaml:"critical,omitempty"`
	// Standard requests wait behind critical ones. Default "10s".
	Standard Duration `yaml:"standard,omitempty"`
}

// Prices are a model pool's prices in USD per million tokens.
type Prices struct {
	// Input is the price of prompt tokens.
	Input float64 `yaml:"input"`
	// CachedInput is the price of prompt tokens the backend served from its
	// prefix cache (usage.prompt_tokens_details.cached_tokens). Default:
	// the input price.
	CachedInput *float64 `yaml:"cached_input,omitempty"`
	// Output is the price of completion tokens.
	Output float64 `yaml:"output"`
}

// maxLimit bounds every limit: past it a value is surely a typo.
const maxLimit = 1 << 40

// maxPrice bounds prices (USD per million tokens).
const maxPrice = 1e6

// CheckLimits returns the problems of a Limits, as "field: problem"; the
// admin API uses it for keys made at run time.
func CheckLimits(l Limits) []string {
	var out []string
	check := func(name string, n int64) {
		switch {
		case n < 0:
			out = append(out, fmt.Sprintf("%s: must not be negative, got %d", name, n))
		case n > maxLimit:
			out = append(out, fmt.Sprintf("%s: %d is too large (at most %d)", name, n, int64(maxLimit)))
		}
	}
	check("rpm", l.RPM)
	check("burst", l.Burst)
	check("tpm", l.TPM)
	check("tpm_burst", l.TPMBurst)
	check("concurrency", l.Concurrency)
	if l.Burst > 0 && l.RPM == 0 {
		out = append(out, "burst: needs rpm")
	} else if l.Burst > 0 && l.RPM > 0 && l.Burst > l.RPM {
		out = append(out, fmt.Sprintf("burst: %d is more than rpm %d (burst may only lower it)", l.Burst, l.RPM))
	}
	if l.TPMBurst > 0 && l.TPM == 0 {
		out = append(out, "tpm_burst: needs tpm")
	} else if l.TPMBurst > 0 && l.TPM > 0 && l.TPMBurst > l.TPM {
		out = append(out, fmt.Sprintf("tpm_burst: %d is more than tpm %d (tpm_burst may only lower it)", l.TPMBurst, l.TPM))
	}
	return out
}

// CheckModelLimits returns the problems of model_limits.
func CheckModelLimits(m map[string]Limits) []string {
	var out []string
	globs := make([]string, 0, len(m))
	for g := range m {
		globs = append(globs, g)
	}
	sort.Strings(globs)
	for _, g := range globs {
		if err := ValidGlob(g); err != nil {
			out = append(out, fmt.Sprintf("%q: %v", g, err))
			continue
		}
		l := m[g]
		if l.Concurrency != 0 {
			out = append(out, fmt.Sprintf("%q.concurrency: not supported per model (set it in limits)", g))
		}
		if l.RPM == 0 && l.TPM == 0 {
			out = append(out, fmt.Sprintf("%q: set rpm or tpm", g))
		}
		for _, p := range CheckLimits(l) {
			out = append(out, fmt.Sprintf("%q.%s", g, p))
		}
	}
	return out
}

// CheckBudget returns the problems of a Budget.
func CheckBudget(b Budget) []string {
	var out []string
	switch b.Period {
	case "", PeriodDay, PeriodMonth:
	default:
		out = append(out, fmt.Sprintf("period: unknown period %q (want day or month)", b.Period))
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"hard", b.Hard}, {"soft", b.Soft}} {
		switch {
		case math.IsNaN(f.v) || f.v < 0:
			out = append(out, fmt.Sprintf("%s: must be a non-negative amount in USD, got %v", f.name, f.v))
		case f.v > 1e9:
			out = append(out, fmt.Sprintf("%s: %v USD is too large (at most 1e9)", f.name, f.v))
		}
	}
	if b.Hard > 0 && b.Soft > b.Hard {
		out = append(out, fmt.Sprintf("soft: %v is above hard %v (a soft cap warns before the hard one)", b.Soft, b.Hard))
	}
	return out
}

// CheckPriority returns the problem of a priority class ("" is allowed: the
// default).
func CheckPriority(p string) string {
	switch p {
	case "", PriorityCritical, PriorityStandard, PrioritySheddable:
		return ""
	}
	return fmt.Sprintf("unknown priority class %q (want critical, standard or sheddable)", p)
}

// CheckMetadata returns the problems of free-form metadata.
func CheckMetadata(m map[string]string) []string {
	var out []string
	if len(m) > 64 {
		out = append(out, fmt.Sprintf("at most 64 entries, got %d", len(m)))
	}
	for k, v := range m {
		if k == "" || len(k) > 64 {
			out = append(out, fmt.Sprintf("key %q: want 1 to 64 characters", k))
		}
		if len(v) > 512 {
			out = append(out, fmt.Sprintf("%q: value longer than 512 characters", k))
		}
	}
	sort.Strings(out)
	return out
}

func (v *validator) problems(p string, list []string) {
	for _, s := range list {
		// "field: message" → the field's own path, for its line.
		if i := strings.Index(s, ": "); i > 0 && !strings.ContainsAny(s[:i], " \"") {
			v.add(p+"."+s[:i], "%s", s[i+2:])
			continue
		}
		v.add(p, "%s", s)
	}
}

func (v *validator) modelLimits(p string, m map[string]Limits) {
	for _, s := range CheckModelLimits(m) {
		// `"glob".field: message` or `"glob": message`
		if strings.HasPrefix(s, `"`) {
			if end := strings.Index(s[1:], `"`); end >= 0 {
				glob := s[1 : 1+end]
				rest := strings.TrimPrefix(s[2+end:], ".")
				gp := p + "." + glob
				if i := strings.Index(rest, ": "); i > 0 && !strings.HasPrefix(rest, ":") {
					v.add(gp+"."+rest[:i], "%s", rest[i+2:])
				} else {
					v.add(gp, "%s", strings.TrimPrefix(rest, ": "))
				}
				continue
			}
		}
		v.add(p, "%s", s)
	}
}

func (v *validator) admission() map[string]bool {
	c := v.c
	tenants := map[string]bool{}
	seen := map[string]string{}
	for i := range c.Tenants {
		t := &c.Tenants[i]
		p := indexPath("tenants", i)
		if v.name(p+".name", "tenant", t.Name, seen) {
			tenants[t.Name] = true
		}
		v.globs(p+".models", t.Models)
		if s := CheckPriority(t.Priority); s != "" {
			v.add(p+".priority", "%s", s)
		}
		v.problems(p+".limits", CheckLimits(t.Limits))
		v.modelLimits(p+".model_limits", t.ModelLimits)
		v.problems(p+".budget", CheckBudget(t.Budget))
		v.problems(p+".metadata", CheckMetadata(t.Metadata))
	}

	r := &c.RateLimit
	switch r.Backend {
	case RateLimitLocal:
		if r.Redis.URL != "" {
			v.add("ratelimit.redis", "set, but ratelimit.backend is local (set backend: redis to use it)")
		}
	case RateLimitRedis:
		if r.Redis.URL == "" {
			v.add("ratelimit.redis.url", "required with backend redis")
		} else if err := CheckRedisURL(r.Redis.URL.Value()); err != nil {
			v.add("ratelimit.redis.url", "%v", err)
		}
	default:
		v.add("ratelimit.backend", "unknown backend %q (want local or redis)", r.Backend)
	}
	switch r.OnRedisError {
	case RateLimitLocal, "closed":
	default:
		v.add("ratelimit.on_redis_error", "unknown value %q (want local or closed)", r.OnRedisError)
	}
	if r.ReserveMaxTokens <= 0 || r.ReserveMaxTokens > maxLimit {
		v.add("ratelimit.reserve_max_tokens", "must be from 1 to %d, got %d", int64(maxLimit), r.ReserveMaxTokens)
	}

	a := &c.Admission
	if a.Queue < 0 {
		v.add("admission.queue", "must not be negative, got %d", a.Queue)
	}
	v.nonNegDur("admission.wait.critical", a.Wait.Critical)
	v.nonNegDur("admission.wait.standard", a.Wait.Standard)
	v.positiveDur("store.key_sync", c.Store.KeySync)
	if c.Store.Postgres.DSN == "" && c.DataDir == "" {
		v.add("data_dir", "must not be empty (it holds the SQLite store)")
	}
	return tenants
}

// CheckRedisURL checks a Redis URL without echoing its password.
func CheckRedisURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL (want redis://host:port)")
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
	default:
		return fmt.Errorf("invalid scheme %q (want redis, rediss or unix)", u.Scheme)
	}
	if u.Scheme != "unix" && u.Host == "" {
		return fmt.Errorf("no host (want redis://host:port)")
	}
	return nil
}

func (v *validator) prices(p string, pr *Prices) {
	if pr == nil {
		return
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"input", pr.Input}, {"output", pr.Output}} {
		v.price(p+"."+f.name, f.v)
	}
	if pr.CachedInput != nil {
		v.price(p+".cached_input", *pr.CachedInput)
	}
}

func (v *validator) price(p string, x float64) {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0) || x < 0:
		v.add(p, "must be a non-negative price in USD per million tokens, got %v", x)
	case x > maxPrice:
		v.add(p, "%v USD per million tokens is surely a mistake (at most %v)", x, float64(maxPrice))
	}
}

// DataPath is data_dir resolved: a relative data_dir is taken from the
// config file's directory (from the working directory for a config read
// from bytes).
func (c *Config) DataPath() string {
	if filepath.IsAbs(c.DataDir) || c.File == "" {
		return c.DataDir
	}
	return filepath.Join(filepath.Dir(c.File), c.DataDir)
}
