// Package defaults is the `defaults` stage: it sets request fields the
// client left out (a default temperature, say) and caps others (max_tokens).
//
//	chain:
//	  - defaults:
//	      set:                 # applied only when the request lacks the field
//	        temperature: 0.2
//	        max_tokens: 256
//	      override:            # always applied
//	        user: internal-app
//	      max_tokens: 1024     # cap: larger max_tokens / max_completion_tokens are lowered
package defaults

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"switchyard/gateway"
	"switchyard/internal/jsonscan"
)

// Factory registers the stage kind "defaults".
var Factory = gateway.Factory{
	Kind: "defaults",
	Doc:  "set request fields when absent, override others, cap max_tokens",
	New:  func() gateway.Stage { return &Stage{} },
}

// Stage holds the stage's settings; the YAML keys are documented in the
// package comment and docs/stages.md.
type Stage struct {
	// Set lists top-level request fields to add when the request lacks them.
	Set map[string]any `yaml:"set"`
	// Override lists top-level request fields that always take this value.
	Override map[string]any `yaml:"override"`
	// MaxTokens caps max_tokens and max_completion_tokens (0: no cap). A
	// request that sets neither is left alone; combine with set.max_tokens
	// to give it a default.
	MaxTokens int64 `yaml:"max_tokens"`

	set, override []field
	capRaw        []byte
}

type field struct {
	key string
	raw []byte
}

func compile(m map[string]any) ([]field, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]field, 0, len(keys))
	for _, k := range keys {
		if k == "model" || k == "stream" {
			return nil, fmt.Errorf("field %q cannot be set by the defaults stage", k)
		}
		raw, err := json.Marshal(m[k])
		if err != nil {
			return nil, fmt.Errorf("field %q: value cannot be written as JSON: %w", k, err)
		}
		out = append(out, field{key: k, raw: raw})
	}
	return out, nil
}

// Validate checks and precompiles the settings.
func (s *Stage) Validate() error {
	if s.MaxTokens < 0 {
		return fmt.Errorf("defaults.max_tokens must be >= 0, got %d", s.MaxTokens)
	}
	var err error
	if s.set, err = compile(s.Set); err != nil {
		return fmt.Errorf("defaults.set: %w", err)
	}
	if s.override, err = compile(s.Override); err != nil {
		return fmt.Errorf("defaults.override: %w", err)
	}
	s.capRaw = strconv.AppendInt(nil, s.MaxTokens, 10)
	return nil
}

// Handle rewrites the request body, then continues the chain.
func (s *Stage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	for _, f := range s.set {
		if _, ok := jsonscan.Lookup(x.Body, f.key); ok {
			continue
		}
		if err := x.SetField(f.key, f.raw); err != nil {
			return err
		}
	}
	for _, f := range s.override {
		if err := x.SetField(f.key, f.raw); err != nil {
			return err
		}
	}
	if s.MaxTokens > 0 {
		if x.Fields.HasMaxTokens && x.Fields.MaxTokens > s.MaxTokens {
			if err := x.SetField("max_tokens", s.capRaw); err != nil {
				return err
			}
		}
		if x.Fields.HasMaxCompletionTokens && x.Fields.MaxCompletionTokens > s.MaxTokens {
			if err := x.SetField("max_completion_tokens", s.capRaw); err != nil {
				return err
			}
		}
	}
	return next.Handle(x)
}
