package gateway_test

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/plugins"
)

// failingStage fails its Validate or Provision, to check how the registry
// places those errors.
type failingStage struct {
	Fail string `yaml:"fail"`
}

func (failingStage) Handle(x *gateway.Exchange, next gateway.Handler) error { return next.Handle(x) }

func (s *failingStage) Validate() error {
	if s.Fail == "validate" {
		return errors.New("validate says no")
	}
	return nil
}

func (s *failingStage) Provision(*gateway.Env) error {
	if s.Fail == "provision" {
		return errors.New("provision says no")
	}
	return nil
}

// TestStageErrorsHaveLineAndColumn: every kind of stage error starts with
// the chain entry's file:line:col and YAML path, as config errors do.
func TestStageErrorsHaveLineAndColumn(t *testing.T) {
	reg := gateway.NewRegistry()
	plugins.RegisterAll(reg)
	reg.Register(gateway.Factory{Kind: "test_failing", New: func() gateway.Stage { return &failingStage{} }})
	const head = `backends: [{name: a, url: "http://127.0.0.1:9"}]
models: [{name: m, targets: [{backend: a}]}]
routes:
  - name: r
    chain:
`
	for _, tc := range []struct {
		name, entry, want string
	}{
		{"unknown kind", "      - nosuchstage\n", `stages.yaml:6:9: routes[0].chain[0]: unknown stage kind "nosuchstage"`},
		{"unknown kind with options", "      - nosuchstage: {a: 1}\n", `stages.yaml:6:9: routes[0].chain[0]: unknown stage kind "nosuchstage"`},
		{"unknown option", "      - defaults: {max_tokenz: 3}\n", "stages.yaml:6:20: routes[0].chain[0].defaults.max_tokenz: "},
		{"validate error", "      - defaults: {max_tokens: -1}\n", "stages.yaml:6:9: routes[0].chain[0]: defaults.max_tokens must be >= 0"},
		{"validate error, indented more", "      -   test_failing: {fail: validate}\n", "stages.yaml:6:11: routes[0].chain[0]: validate says no"},
		{"provision error", "      - test_failing: {fail: provision}\n", "stages.yaml:6:9: routes[0].chain[0]: provisioning test_failing: provision says no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(head+tc.entry), "stages.yaml")
			if err != nil {
				t.Fatalf("parsing: %v", err)
			}
			g, err := gateway.Build(cfg, gateway.BuildOptions{Registry: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err == nil {
				g.Close()
				t.Fatalf("Build accepted %q", tc.entry)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error\n  %s\nwant it to start with\n  %s", err, tc.want)
			}
		})
	}
}
