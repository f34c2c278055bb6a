package loadtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Load-generation modes.
const (
	// ModeOpen sends requests at a constant arrival rate regardless of how
	// fast the target answers. Latency is measured from each request's
	// intended send time, so queueing in the target (or in the generator)
	// shows up in the numbers instead of being hidden by coordinated omission.
	ModeOpen = "open"
	// ModeClosed runs a fixed number of users, each sending its next request
	// as soon as the previous one completes.
	ModeClosed = "closed"
)

// Scenarios (request kinds). ScenarioMix draws one of the others per request,
// weighted by Config.Mix.
const (
	ScenarioChat        = "chat"        // POST /v1/chat/completions, not streamed
	ScenarioStream      = "stream"      // POST /v1/chat/completions with stream=true and include_usage
	ScenarioCompletions = "completions" // POST /v1/completions, not streamed
	ScenarioEmbeddings  = "embeddings"  // POST /v1/embeddings
	ScenarioMix         = "mix"         // weighted mix of the above
)

// scenarioKinds lists the concrete request kinds in a fixed order; the index
// is the kind's id on the hot path.
var scenarioKinds = [...]string{ScenarioChat, ScenarioStream, ScenarioCompletions, ScenarioEmbeddings}

type kind uint8

const (
	kindChat kind = iota
	kindStream
	kindCompletions
	kindEmbeddings
	numKinds
)

func (k kind) String() string { return scenarioKinds[k] }

func parseKind(s string) (kind, bool) {
	for i, name := range scenarioKinds {
		if name == s {
			return kind(i), true
		}
	}
	return 0, false
}

// API-key selection strategies for Config.KeyPick.
const (
	KeyRoundRobin = "roundrobin"
	KeyRandom     = "random"
)

// Config describes one load run. The zero value is not usable: URL, Model
// (Embedding-only runs need only EmbedModel) and a bound (Duration or
// Requests) are required; everything else has a default, applied by Run.
type Config struct {
	// URL is the target's base URL, e.g. "http://127.0.0.1:8080". A trailing
	// "/v1" is accepted and not doubled. http and https are supported.
	URL string
	// Model is sent as "model" in chat and completions requests.
	Model string
	// EmbedModel is sent as "model" in embeddings requests. Default: Model.
	EmbedModel string
	// APIKeys are sent as "Authorization: Bearer KEY", one per request,
	// chosen by KeyPick. Empty: no Authorization header.
	APIKeys []string
	// KeyPick is KeyRoundRobin (default) or KeyRandom.
	KeyPick string

	// Mode is ModeOpen (default) or ModeClosed.
	Mode string
	// Rate is the arrival rate in requests per second (open loop only).
	Rate float64
	// Concurrency is the number of users (closed loop only). Default 1.
	Concurrency int
	// Duration bounds the measured phase (after Warmup). Zero: bounded by
	// Requests only.
	Duration time.Duration
	// Warmup runs load before the measured phase; its requests are sent the
	// same way but left out of the report.
	Warmup time.Duration
	// Requests bounds the number of measured requests (dropped ones
	// included). Zero: bounded by Duration only. With both set, whichever
	// comes first ends the run.
	Requests int

	// Scenario is one of the Scenario* constants. Default ScenarioChat.
	Scenario string
	// Mix weights the kinds for ScenarioMix, e.g. {"chat": 0.5,
	// "stream": 0.3, "embeddings": 0.2}. Weights need not sum to 1.
	Mix map[string]float64

	// PromptTokens is the distribution of prompt lengths, in tokens
	// (approximated as words). The shared prefix, if any, comes on top.
	// Default fixed:128.
	PromptTokens Dist
	// OutputTokens is the distribution of max_tokens. Default fixed:64.
	OutputTokens Dist
	// SharedPrefixRatio is the share of chat/completions requests that start
	// with the same long system prompt (SharedPrefixTokens long), so that
	// prefix-aware routing and prefix caches can show their effect.
	SharedPrefixRatio float64
	// SharedPrefixTokens is the length of the shared prefix. Default 512.
	SharedPrefixTokens int
	// PrefixTenants turns on the multi-tenant shared-prefix scenario (the
	// llm-d benchmark's "shared prefix" workload): every chat and
	// completions request belongs to one of PrefixTenants tenants and starts
	// with that tenant's own context (PrefixTokens long, as the system
	// message), followed by a question of PromptTokens from one of the
	// tenant's PrefixUsers users, whose identity is sent as the OpenAI
	// "user" field, "tenantT-userU" (T and U from 0). Where a request lands
	// then decides whether its context is in that server's prefix cache.
	// Zero (default): off. Not combined with SharedPrefixRatio.
	PrefixTenants int
	// PrefixTokens is the length of each tenant's context. Default 2048.
	PrefixTokens int
	// PrefixUsers is the number of users per tenant; the user is drawn
	// uniformly. Default 4.
	PrefixUsers int
	// PrefixSkew skews the choice of tenant: tenant k (from 0) is drawn
	// with a weight of 1/(k+1)^PrefixSkew (Zipf). 0 (default) is uniform;
	// 1 makes tenant 0 about twice as popular as tenant 1.
	PrefixSkew float64
	// RepeatRatio is the share of requests that repeat an earlier prompt of
	// the same kind, so that caches can show their effect.
	RepeatRatio float64
	// ParaphraseRatio is the share of repeats that are paraphrases (same
	// words, lightly reworded) rather than exact copies of the body.
	ParaphraseRatio float64
	// IgnoreEOS adds "ignore_eos": true (a vLLM extension) so that servers
	// generate exactly max_tokens. Off by default: OpenAI rejects it.
	IgnoreEOS bool
	// Seed makes prompts reproducible. Zero: a fixed default seed.
	Seed int64

	// MaxInflight bounds requests in flight (open loop). A request due when
	// the bound is reached is not sent and counts as the error "dropped".
	// Default 10000.
	MaxInflight int
	// Timeout bounds each request, streams included. Default 60s.
	Timeout time.Duration
	// Headers are added to every request.
	Headers map[string]string
}

// Dist is a distribution of token counts. Sample never returns less than 1.
type Dist struct {
	// Kind is "fixed", "uniform" or "normal".
	Kind string `json:"kind"`
	// A is the fixed value, the uniform minimum or the normal mean.
	A float64 `json:"a"`
	// B is the uniform maximum or the normal standard deviation.
	B float64 `json:"b,omitempty"`
}

// Fixed returns a Dist that always yields n.
func Fixed(n int) Dist { return Dist{Kind: "fixed", A: float64(n)} }

// ParseDist parses "fixed:N", "uniform:MIN-MAX" or "normal:MEAN,STDDEV".
// A bare number N means fixed:N.
func ParseDist(s string) (Dist, error) {
	kindName, arg, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		kindName, arg = "fixed", kindName
	}
	num := func(v string) (float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("distribution %q: %q is not a number", s, v)
		}
		return f, nil
	}
	var d Dist
	var err error
	switch kindName {
	case "fixed":
		d.Kind = "fixed"
		d.A, err = num(arg)
	case "uniform":
		lo, hi, ok := strings.Cut(arg, "-")
		if !ok {
			return Dist{}, fmt.Errorf("distribution %q: want uniform:MIN-MAX", s)
		}
		d.Kind = "uniform"
		if d.A, err = num(lo); err == nil {
			d.B, err = num(hi)
		}
	case "normal":
		mean, sd, ok := strings.Cut(arg, ",")
		if !ok {
			return Dist{}, fmt.Errorf("distribution %q: want normal:MEAN,STDDEV", s)
		}
		d.Kind = "normal"
		if d.A, err = num(mean); err == nil {
			d.B, err = num(sd)
		}
	default:
		return Dist{}, fmt.Errorf("distribution %q: unknown kind %q (want fixed, uniform or normal)", s, kindName)
	}
	if err != nil {
		return Dist{}, err
	}
	if err := d.validate(); err != nil {
		return Dist{}, fmt.Errorf("distribution %q: %w", s, err)
	}
	return d, nil
}

// maxTokensPerDist caps sampled values so a typo cannot build gigabyte prompts.
const maxTokensPerDist = 1 << 20

func (d Dist) validate() error {
	switch d.Kind {
	case "fixed":
		if d.A < 1 || d.A > maxTokensPerDist {
			return fmt.Errorf("fixed value %g must be in [1, %d]", d.A, maxTokensPerDist)
		}
	case "uniform":
		if d.A < 1 || d.B < d.A || d.B > maxTokensPerDist {
			return fmt.Errorf("uniform range %g-%g must satisfy 1 <= MIN <= MAX <= %d", d.A, d.B, maxTokensPerDist)
		}
	case "normal":
		if d.A < 1 || d.A > maxTokensPerDist || d.B < 0 || d.B > maxTokensPerDist {
			return fmt.Errorf("normal mean %g must be in [1, %d] and stddev %g in [0, %d]", d.A, maxTokensPerDist, d.B, maxTokensPerDist)
		}
	default:
		return fmt.Errorf("unknown kind %q", d.Kind)
	}
	return nil
}

// String formats d in the syntax ParseDist accepts.
func (d Dist) String() string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	switch d.Kind {
	case "uniform":
		return "uniform:" + f(d.A) + "-" + f(d.B)
	case "normal":
		return "normal:" + f(d.A) + "," + f(d.B)
	default:
		return d.Kind + ":" + f(d.A)
	}
}

// Sample draws one value, at least 1 and at most the cap.
func (d Dist) Sample(r *rand.Rand) int {
	var v float64
	switch d.Kind {
	case "uniform":
		v = d.A + r.Float64()*(d.B-d.A+1)
	case "normal":
		v = d.A + r.NormFloat64()*d.B
	default:
		v = d.A
	}
	n := int(v)
	if n < 1 {
		return 1
	}
	if n > maxTokensPerDist {
		return maxTokensPerDist
	}
	return n
}

// ParseMix parses "chat=0.5,stream=0.3,embeddings=0.2".
func ParseMix(s string) (map[string]float64, error) {
	m := make(map[string]float64)
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("mix %q: entry %q: want NAME=WEIGHT", s, part)
		}
		name = strings.TrimSpace(name)
		if _, ok := parseKind(name); !ok {
			return nil, fmt.Errorf("mix %q: unknown scenario %q (want %s)", s, name, strings.Join(scenarioKinds[:], ", "))
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("mix %q: weight %q of %s must be a non-negative number", s, w, name)
		}
		m[name] += f
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("mix %q: no entries", s)
	}
	return m, nil
}

// Defaults.
const (
	defaultMaxInflight  = 10000
	defaultTimeout      = 60 * time.Second
	defaultPrefixTokens = 512
	defaultTenantTokens = 2048
	defaultTenantUsers  = 4
	defaultSeed         = 1
)

// withDefaults returns a copy of c with defaults applied.
func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeOpen
	}
	if c.Scenario == "" {
		c.Scenario = ScenarioChat
	}
	if c.KeyPick == "" {
		c.KeyPick = KeyRoundRobin
	}
	if c.EmbedModel == "" {
		c.EmbedModel = c.Model
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.PromptTokens.Kind == "" {
		c.PromptTokens = Fixed(128)
	}
	if c.OutputTokens.Kind == "" {
		c.OutputTokens = Fixed(64)
	}
	if c.SharedPrefixTokens == 0 {
		c.SharedPrefixTokens = defaultPrefixTokens
	}
	if c.PrefixTenants > 0 && c.PrefixTokens == 0 {
		c.PrefixTokens = defaultTenantTokens
	}
	if c.PrefixTenants > 0 && c.PrefixUsers == 0 {
		c.PrefixUsers = defaultTenantUsers
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = defaultMaxInflight
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.Seed == 0 {
		c.Seed = defaultSeed
	}
	return c
}

// Validate reports every problem with c (after defaults), joined.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.URL == "" {
		bad("url: required")
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("url %q: want http(s)://HOST[:PORT][/PATH]", c.URL)
	}
	kinds, err := c.kindWeights()
	if err != nil {
		errs = append(errs, err)
	}
	if c.Model == "" && (kinds[kindChat]+kinds[kindStream]+kinds[kindCompletions] > 0) {
		bad("model: required for chat, stream and completions")
	}
	if c.EmbedModel == "" && kinds[kindEmbeddings] > 0 {
		bad("embed-model: required for embeddings")
	}
	switch c.Mode {
	case ModeOpen:
		if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
			bad("rate %g: open loop needs a positive rate", c.Rate)
		}
	case ModeClosed:
		if c.Concurrency < 1 {
			bad("concurrency %d: must be >= 1", c.Concurrency)
		}
	default:
		bad("mode %q: want %s or %s", c.Mode, ModeOpen, ModeClosed)
	}
	if c.Duration < 0 || c.Warmup < 0 || c.Requests < 0 {
		bad("duration, warmup and requests must not be negative")
	}
	if c.Duration == 0 && c.Requests == 0 {
		bad("duration or requests: one bound is required so the run stops by itself")
	}
	if err := c.PromptTokens.validate(); err != nil {
		bad("prompt-tokens: %v", err)
	}
	if err := c.OutputTokens.validate(); err != nil {
		bad("output-tokens: %v", err)
	}
	for name, v := range map[string]float64{"shared-prefix-ratio": c.SharedPrefixRatio, "repeat-ratio": c.RepeatRatio, "paraphrase-ratio": c.ParaphraseRatio} {
		if !(v >= 0 && v <= 1) {
			bad("%s %g: must be in [0, 1]", name, v)
		}
	}
	if c.SharedPrefixTokens < 1 || c.SharedPrefixTokens > maxTokensPerDist {
		bad("shared-prefix-tokens %d: must be in [1, %d]", c.SharedPrefixTokens, maxTokensPerDist)
	}
	if c.PrefixTenants != 0 {
		c.validateTenants(kinds, bad)
	}
	if c.KeyPick != KeyRoundRobin && c.KeyPick != KeyRandom {
		bad("key-pick %q: want %s or %s", c.KeyPick, KeyRoundRobin, KeyRandom)
	}
	if c.MaxInflight < 1 {
		bad("max-inflight %d: must be >= 1", c.MaxInflight)
	}
	if c.Timeout < 0 {
		bad("timeout %v: must not be negative", c.Timeout)
	}
	return errors.Join(errs...)
}

// Bounds of the multi-tenant shared-prefix scenario: the tenants' contexts
// are built once, up front, so their total is capped (about 25 MB of text).
const (
	maxPrefixTenants     = 10000
	maxPrefixUsers       = 1000000
	maxTenantTokensTotal = 1 << 22
	maxPrefixSkew        = 10
)

// validateTenants checks the multi-tenant shared-prefix settings (defaults
// applied), reporting through bad.
func (c Config) validateTenants(kinds [numKinds]float64, bad func(string, ...any)) {
	if c.PrefixTenants < 0 || c.PrefixTenants > maxPrefixTenants {
		bad("prefix-tenants %d: must be in [0, %d]", c.PrefixTenants, maxPrefixTenants)
		return
	}
	if c.PrefixTokens < 1 || c.PrefixTokens > maxTokensPerDist {
		bad("prefix-tokens %d: must be in [1, %d]", c.PrefixTokens, maxTokensPerDist)
	} else if total := c.PrefixTenants * c.PrefixTokens; total > maxTenantTokensTotal {
		bad("prefix-tenants %d x prefix-tokens %d = %d tokens of contexts: must be at most %d", c.PrefixTenants, c.PrefixTokens, total, maxTenantTokensTotal)
	}
	if c.PrefixUsers < 1 || c.PrefixUsers > maxPrefixUsers {
		bad("prefix-users %d: must be in [1, %d]", c.PrefixUsers, maxPrefixUsers)
	}
	if !(c.PrefixSkew >= 0 && c.PrefixSkew <= maxPrefixSkew) {
		bad("prefix-skew %g: must be in [0, %d]", c.PrefixSkew, maxPrefixSkew)
	}
	if c.SharedPrefixRatio > 0 {
		bad("prefix-tenants and shared-prefix-ratio: use one or the other (the tenants' contexts are the shared prefixes)")
	}
	if kinds[kindChat]+kinds[kindStream]+kinds[kindCompletions] == 0 {
		bad("prefix-tenants: needs chat, stream or completions requests (embeddings have no context)")
	}
}

// kindWeights returns the weight of every kind for c's scenario.
func (c Config) kindWeights() ([numKinds]float64, error) {
	var w [numKinds]float64
	if c.Scenario != ScenarioMix {
		k, ok := parseKind(c.Scenario)
		if !ok {
			return w, fmt.Errorf("scenario %q: want one of %s, %s", c.Scenario, strings.Join(scenarioKinds[:], ", "), ScenarioMix)
		}
		w[k] = 1
		return w, nil
	}
	if len(c.Mix) == 0 {
		return w, errors.New("mix: scenario mix needs weights, e.g. chat=0.5,stream=0.5")
	}
	names := make([]string, 0, len(c.Mix))
	for name := range c.Mix {
		names = append(names, name)
	}
	sort.Strings(names)
	var sum float64
	for _, name := range names {
		k, ok := parseKind(name)
		v := c.Mix[name]
		if !ok {
			return w, fmt.Errorf("mix: unknown scenario %q", name)
		}
		if !(v >= 0) || math.IsInf(v, 0) {
			return w, fmt.Errorf("mix: weight %g of %s must be a non-negative number", v, name)
		}
		w[k] += v
		sum += v
	}
	if sum <= 0 {
		return w, errors.New("mix: weights sum to zero")
	}
	return w, nil
}
