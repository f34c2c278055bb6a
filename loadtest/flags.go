package loadtest

import (
	"flag"
	"fmt"
	"strings"
)

// RegisterFlags defines the load generator's flags on fs and returns a
// function that, after fs.Parse, turns them into a Config (distributions,
// mix and headers parsed; the Config is not yet validated; Run does that).
// Repeatable flags: --api-key and --header.
func RegisterFlags(fs *flag.FlagSet) (build func() (Config, error)) {
	var (
		c              Config
		keys, headers  multiFlag
		mix            string
		prompt, output string
	)
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "base URL of the OpenAI-compatible target (a trailing /v1 is fine)")
	fs.StringVar(&c.Model, "model", "", "model for chat and completions requests")
	fs.StringVar(&c.EmbedModel, "embed-model", "", "model for embeddings requests (default: --model)")
	fs.Var(&keys, "api-key", "API key sent as a Bearer token; repeat for several keys/tenants")
	fs.StringVar(&c.KeyPick, "key-pick", KeyRoundRobin, "how to pick among several keys: roundrobin or random")
	fs.StringVar(&c.Mode, "mode", ModeOpen, "open (constant arrival rate) or closed (fixed number of users)")
	fs.Float64Var(&c.Rate, "rate", 10, "open loop: requests per second")
	fs.IntVar(&c.Concurrency, "concurrency", 1, "closed loop: number of users")
	fs.DurationVar(&c.Duration, "duration", 0, "length of the measured phase, e.g. 30s (0: bounded by --requests)")
	fs.DurationVar(&c.Warmup, "warmup", 0, "load before the measured phase, left out of the report")
	fs.IntVar(&c.Requests, "requests", 0, "number of measured requests (0: bounded by --duration)")
	fs.StringVar(&c.Scenario, "scenario", ScenarioChat, "chat, stream, completions, embeddings or mix")
	fs.StringVar(&mix, "mix", "", `weights for --scenario mix, e.g. "chat=0.5,stream=0.3,embeddings=0.2"`)
	fs.StringVar(&prompt, "prompt-tokens", "fixed:128", `prompt length in tokens: "fixed:N", "uniform:MIN-MAX" or "normal:MEAN,STDDEV"`)
	fs.StringVar(&output, "output-tokens", "fixed:64", "max_tokens per request, same syntax as --prompt-tokens")
	fs.Float64Var(&c.SharedPrefixRatio, "shared-prefix-ratio", 0, "share of requests that start with one shared long system prompt (0-1)")
	fs.IntVar(&c.SharedPrefixTokens, "shared-prefix-tokens", defaultPrefixTokens, "length of the shared system prompt in tokens")
	fs.IntVar(&c.PrefixTenants, "prefix-tenants", 0, "multi-tenant shared-prefix scenario: number of tenants, each with its own long context (0: off)")
	fs.IntVar(&c.PrefixTokens, "prefix-tokens", defaultTenantTokens, "length of each tenant's context in tokens")
	fs.IntVar(&c.PrefixUsers, "prefix-users", defaultTenantUsers, `users per tenant, sent as "user": "tenantT-userU"`)
	fs.Float64Var(&c.PrefixSkew, "prefix-skew", 0, "Zipf exponent of the tenant choice: weight 1/(k+1)^S (0: uniform)")
	fs.Float64Var(&c.RepeatRatio, "repeat-ratio", 0, "share of requests that repeat an earlier prompt (0-1)")
	fs.Float64Var(&c.ParaphraseRatio, "paraphrase-ratio", 0, "share of repeats that are paraphrased instead of exact (0-1)")
	fs.BoolVar(&c.IgnoreEOS, "ignore-eos", false, `send "ignore_eos": true (vLLM) so servers generate exactly max_tokens`)
	fs.Int64Var(&c.Seed, "seed", defaultSeed, "seed for prompts and choices")
	fs.IntVar(&c.MaxInflight, "max-inflight", defaultMaxInflight, `most requests in flight; requests due beyond it count as "dropped"`)
	fs.DurationVar(&c.Timeout, "timeout", defaultTimeout, "timeout per request, streams included")
	fs.Var(&headers, "header", `extra request header "Name: value"; repeatable`)
	return func() (Config, error) {
		cfg := c
		cfg.APIKeys = append([]string(nil), keys...)
		var err error
		if cfg.PromptTokens, err = ParseDist(prompt); err != nil {
			return Config{}, fmt.Errorf("--prompt-tokens: %w", err)
		}
		if cfg.OutputTokens, err = ParseDist(output); err != nil {
			return Config{}, fmt.Errorf("--output-tokens: %w", err)
		}
		if mix != "" {
			if cfg.Mix, err = ParseMix(mix); err != nil {
				return Config{}, fmt.Errorf("--mix: %w", err)
			}
			switch {
			case !flagSet(fs, "scenario"):
				cfg.Scenario = ScenarioMix
			case cfg.Scenario != ScenarioMix:
				return Config{}, fmt.Errorf("--mix needs --scenario mix, not %q", cfg.Scenario)
			}
		}
		for _, h := range headers {
			name, value, ok := strings.Cut(h, ":")
			name = strings.TrimSpace(name)
			if !ok || name == "" {
				return Config{}, fmt.Errorf("--header %q: want \"Name: value\"", h)
			}
			if cfg.Headers == nil {
				cfg.Headers = map[string]string{}
			}
			cfg.Headers[name] = strings.TrimSpace(value)
		}
		return cfg, nil
	}
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// multiFlag collects the values of a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	*m = append(*m, v)
	return nil
}
