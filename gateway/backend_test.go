package gateway_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/plugins/simbackend"
)

// closeCounter counts Close calls.
type closeCounter struct{ n atomic.Int32 }

func (c *closeCounter) Close() error { c.n.Add(1); return nil }

// TestBackendKinds: the gateway knows no kind but openai; the others come
// from the registry, and their errors carry the backend's file:line.
func TestBackendKinds(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const tail = "models: [{name: m, targets: [{backend: s}]}]\n"
	withSim := func() *gateway.Registry {
		reg := gateway.NewRegistry()
		reg.RegisterBackend(simbackend.Kind)
		return reg
	}
	tests := []struct {
		name, backends string
		reg            func() *gateway.Registry
		start          bool
		want           string // "" = builds
	}{
		{"openai is built in", "backends:\n  - {name: s, url: \"http://127.0.0.1:9\"}\n", gateway.NewRegistry, false, ""},
		{"sim not registered", "backends:\n  - {name: o, url: \"http://127.0.0.1:9\"}\n  - {name: s, kind: sim}\n", gateway.NewRegistry, false,
			`kinds.yaml:3: backends[1].kind: backend kind "sim" is not registered in this binary (registered: [kserve openai])`},
		{"sim checked without starting", "backends:\n  - {name: s, kind: sim, sim: {model: x, profile: fast}}\n", withSim, false, ""},
		{"sim started", "backends:\n  - {name: s, kind: sim, sim: {model: x, profile: fast}}\n", withSim, true, ""},
		{"bad sim option, validating", "backends:\n  - {name: s, kind: sim, sim: {profile: nosuch}}\n", withSim, false,
			"kinds.yaml:2: backends[0] (s): sim options: "},
		{"every backend reported", "backends:\n  - {name: s, kind: sim, sim: {nosuch: 1}}\n  - {name: t, kind: sim, sim: {nosuch: 2}}\n", withSim, false,
			"kinds.yaml:3: backends[1] (t): sim options: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tc.backends+tail), "kinds.yaml")
			if err != nil {
				t.Fatalf("parsing: %v", err)
			}
			g, err := gateway.Build(cfg, gateway.BuildOptions{Registry: tc.reg(), Log: quiet, StartSims: tc.start})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				g.Close()
				return
			}
			if err == nil {
				g.Close()
				t.Fatalf("Build accepted:\n%s", tc.backends)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error\n  %v\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

// TestBackendKindLifecycle: a kind sees whether to start, the gateway calls
// the URL it gives, and what it started is closed with the generation.
func TestBackendKindLifecycle(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var starts []bool
	closer := new(closeCounter)
	reg := gateway.NewRegistry()
	reg.RegisterBackend(gateway.BackendKind{Name: config.KindSim, Open: func(env *gateway.BackendEnv, b *config.Backend) (gateway.Backend, error) {
		starts = append(starts, env.Start)
		if b.Sim["fail"] != "" {
			return gateway.Backend{}, errors.New("told to fail")
		}
		if !env.Start {
			return gateway.Backend{}, nil
		}
		return gateway.Backend{URL: "http://" + ln.Addr().String(), Closer: closer}, nil
	}})
	build := func(sim string, start bool) (*gateway.Generation, error) {
		cfg, err := config.Parse([]byte("backends:\n  - {name: s, kind: sim, sim: "+sim+"}\nmodels: [{name: m, targets: [{backend: s}]}]\n"), "life.yaml")
		if err != nil {
			t.Fatalf("parsing: %v", err)
		}
		return gateway.Build(cfg, gateway.BuildOptions{Registry: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), StartSims: start})
	}
	g, err := build("{}", false)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if g, err = build("{}", true); err != nil {
		t.Fatal(err)
	}
	if closer.n.Load() != 0 {
		t.Fatal("closed before the generation")
	}
	g.Close()
	if closer.n.Load() != 1 {
		t.Fatalf("Close called %d times with the generation; want 1", closer.n.Load())
	}
	if _, err := build("{fail: yes}", true); err == nil || !strings.HasPrefix(err.Error(), "life.yaml:2: backends[0] (s): told to fail") {
		t.Fatalf("error %v; want it at life.yaml:2", err)
	}
	if want := []bool{false, true, true}; len(starts) != 3 || starts[0] != want[0] || starts[1] != want[1] {
		t.Fatalf("Open saw Start %v; want %v", starts, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering openai twice did not panic")
		}
	}()
	reg.RegisterBackend(gateway.OpenAIBackend)
}
