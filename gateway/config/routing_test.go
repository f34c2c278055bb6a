package config

import (
	"strings"
	"testing"
)

func TestRouting(t *testing.T) {
	const head = "backends:\n  - {name: a, kind: sim}\n  - {name: b, kind: sim}\nmodels:\n  - name: m\n    targets: [{backend: a}, {backend: b}]\n"
	tests := []struct {
		name, pool string
		err        string // "" = valid; else a substring, with its line
		check      func(t *testing.T, r *Routing)
	}{
		{"inference_aware defaults", "    strategy: inference_aware\n", "", func(t *testing.T, r *Routing) {
			if r.Weights != (RoutingWeights{Queue: 2, KV: 2, Prefix: 3}) || r.Saturation != (Saturation{Queue: 128, KV: 0.95}) {
				t.Errorf("%+v", *r)
			}
		}},
		{"a weight given as 0 stays 0, the others keep their defaults", "    strategy: inference_aware\n    routing: {weights: {prefix: 0, ttft: 1}}\n", "", func(t *testing.T, r *Routing) {
			if r.Weights != (RoutingWeights{Queue: 2, KV: 2, TTFT: 1}) {
				t.Errorf("%+v", r.Weights)
			}
		}},
		{"round_robin keeps the block empty", "    strategy: round_robin\n", "", func(t *testing.T, r *Routing) {
			if *r != (Routing{}) {
				t.Errorf("%+v", *r)
			}
		}},
		{"consistent_hash by header", "    strategy: consistent_hash\n    routing: {session: {by: header, header: x-session-id}}\n", "", func(t *testing.T, r *Routing) {
			if r.Replicas != 100 || r.Session.Header != "x-session-id" {
				t.Errorf("%+v", *r)
			}
		}},
		{"consistent_hash needs a session source", "    strategy: consistent_hash\n", ":5:5: models[0].routing.session.by: required by strategy consistent_hash", nil},
		{"negative weight", "    strategy: inference_aware\n    routing:\n      weights: {queue: -1}\n", ":9:24: models[0].routing.weights.queue: must be from 0 to 1000, got -1", nil},
		{"kv over 1", "    strategy: inference_aware\n    routing:\n      saturation: {kv: 1.5}\n", ":9:24: models[0].routing.saturation.kv: must be from 0 to 1", nil},
		{"unknown session source", "    strategy: inference_aware\n    routing: {session: {by: cookie}}\n", ":8:29: models[0].routing.session.by: unknown source \"cookie\"", nil},
		{"header source without a header", "    strategy: inference_aware\n    routing: {session: {by: header}}\n", "models[0].routing.session.header: want a header name", nil},
		{"session weight without a source", "    strategy: inference_aware\n    routing: {weights: {session: 5}}\n", "models[0].routing.weights.session: needs session.by", nil},
		{"header with another source", "    strategy: inference_aware\n    routing: {session: {by: user, header: x-a}}\n", "models[0].routing.session.header: only with session.by: header", nil},
		{"prefix index too large", "    strategy: inference_aware\n    routing: {prefix_index: {blocks: 999999999}}\n", "models[0].routing.prefix_index.blocks: must be from 0 to", nil},
		{"replicas negative", "    strategy: consistent_hash\n    routing: {replicas: -3, session: {by: key}}\n", "models[0].routing.replicas: must be from 1 to 10000", nil},
		{"unknown key", "    strategy: inference_aware\n    routing: {wieghts: {}}\n", "unknown key \"wieghts\"", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(head+tc.pool), "r.yaml")
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, &c.Models[0].Routing)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}
