package defaults

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"switchyard/gateway"
	"switchyard/gateway/config"
)

func newStage(t *testing.T, opts string) *Stage {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(opts), &n); err != nil {
		t.Fatal(err)
	}
	s := Factory.New().(*Stage)
	if len(n.Content) > 0 {
		if err := config.DecodeStrict("test.yaml", "chain[0].defaults", n.Content[0], s); err != nil {
			t.Fatalf("decoding %q: %v", opts, err)
		}
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("validate %q: %v", opts, err)
	}
	return s
}

func run(t *testing.T, s *Stage, body string) map[string]any {
	t.Helper()
	x, err := gateway.NewExchange(gateway.OpChat, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	called := false
	err = s.Handle(x, gateway.HandlerFunc(func(x *gateway.Exchange) error { called = true; return nil }))
	if err != nil || !called {
		t.Fatalf("handle: err %v, next called %v", err, called)
	}
	var out map[string]any
	if err := json.Unmarshal(x.Body, &out); err != nil {
		t.Fatalf("rewritten body %s is not JSON: %v", x.Body, err)
	}
	// The scanned fields follow the rewrite.
	if mt, ok := out["max_tokens"].(float64); ok && (!x.Fields.HasMaxTokens || x.Fields.MaxTokens != int64(mt)) {
		t.Errorf("Fields.MaxTokens = %d, body says %v", x.Fields.MaxTokens, mt)
	}
	return out
}

func TestDefaults(t *testing.T) {
	cases := []struct {
		name, opts, body string
		want             map[string]any
	}{
		{"set when absent", `{set: {temperature: 0.2, max_tokens: 64}}`,
			`{"model":"m","messages":[]}`,
			map[string]any{"model": "m", "messages": []any{}, "temperature": 0.2, "max_tokens": 64.0}},
		{"set keeps the client's value", `{set: {temperature: 0.2}}`,
			`{"model":"m","temperature":1}`,
			map[string]any{"model": "m", "temperature": 1.0}},
		{"override", `{override: {user: gw, metadata: {team: a}}}`,
			`{"model":"m","user":"client"}`,
			map[string]any{"model": "m", "user": "gw", "metadata": map[string]any{"team": "a"}}},
		{"cap lowers", `{max_tokens: 100}`,
			`{"model":"m","max_tokens":5000,"max_completion_tokens":7000}`,
			map[string]any{"model": "m", "max_tokens": 100.0, "max_completion_tokens": 100.0}},
		{"cap keeps smaller", `{max_tokens: 100}`,
			`{"model":"m","max_tokens":50}`,
			map[string]any{"model": "m", "max_tokens": 50.0}},
		{"cap after default", `{set: {max_tokens: 500}, max_tokens: 100}`,
			`{"model":"m"}`,
			map[string]any{"model": "m", "max_tokens": 100.0}},
		{"unknown fields pass through", `{max_tokens: 10}`,
			`{"model":"m","vendor_x":{"a":[1,2]},"max_tokens":11}`,
			map[string]any{"model": "m", "vendor_x": map[string]any{"a": []any{1.0, 2.0}}, "max_tokens": 10.0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := run(t, newStage(t, tc.opts), tc.body)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("opts %s on %s:\n got %v\nwant %v", tc.opts, tc.body, got, tc.want)
			}
		})
	}
}

func TestDefaultsRejects(t *testing.T) {
	for _, opts := range []string{`{max_tokens: -1}`, `{set: {model: x}}`, `{override: {stream: true}}`} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(opts), &n); err != nil {
			t.Fatal(err)
		}
		s := &Stage{}
		if err := config.DecodeStrict("t.yaml", "d", n.Content[0], s); err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", opts)
		}
	}
	var n yaml.Node
	_ = yaml.Unmarshal([]byte("{max_tokenz: 3}"), &n)
	err := config.DecodeStrict("t.yaml", "routes[0].chain[0].defaults", n.Content[0], &Stage{})
	if err == nil || !strings.Contains(err.Error(), "t.yaml:1") || !strings.Contains(err.Error(), "max_tokenz") {
		t.Errorf("unknown key error = %v, want one naming the key and its line", err)
	}
}

func BenchmarkDefaults(b *testing.B) {
	var n yaml.Node
	_ = yaml.Unmarshal([]byte(`{set: {temperature: 0.2}, max_tokens: 100}`), &n)
	s := &Stage{}
	_ = config.DecodeStrict("b.yaml", "d", n.Content[0], s)
	_ = s.Validate()
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens":500}`)
	x, _ := gateway.NewExchange(gateway.OpChat, body)
	next := gateway.HandlerFunc(func(*gateway.Exchange) error { return nil })
	b.ReportAllocs()
	for b.Loop() {
		x.Body = append(x.Body[:0], body...)
		_ = s.Handle(x, next)
	}
}
