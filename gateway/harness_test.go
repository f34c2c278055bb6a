package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"switchyard/internal/testsvc"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchyard/backends/sim"
	"switchyard/gateway"
	"switchyard/plugins"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's date updater, dialer cache cleaner, compression workers
		// and idle-connection cleaners are package-level workers that live
		// for the process; everything of ours must be gone.
		goleak.IgnoreTopFunction("github.com/valyala/fasthttp.init.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp/stackless.funcWorker"),
		// The PostgreSQL server of the store tests stops after the check.
		goleak.Cleanup(func(code int) {
			testsvc.StopAll()
			os.Exit(code)
		}),
	)
}

// gw is a gateway running on 127.0.0.1 for one test.
type gw struct {
	t    *testing.T
	srv  *gateway.Server
	url  string // http://127.0.0.1:PORT
	path string // the config file
}

// startGateway writes cfg (with %s placeholders already filled) to a temp
// file and serves it on a loopback port until the test ends.
func startGateway(t *testing.T, cfg string) *gw {
	t.Helper()
	return startGatewayLog(t, cfg, nil)
}

// startGatewayLog is startGateway with the gateway's log written to logOut
// too (as text), when it is not nil.
func startGatewayLog(t *testing.T, cfg string, logOut io.Writer) *gw {
	t.Helper()
	path := filepath.Join(t.TempDir(), "switchyard.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := gateway.NewRegistry()
	plugins.RegisterAll(reg)
	registerTestStages(reg)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if logOut != nil {
		w := logOut
		if testing.Verbose() {
			w = io.MultiWriter(logOut, os.Stderr)
		}
		log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := gateway.New(gateway.Options{ConfigPath: path, Registry: reg, Log: log})
	if err != nil {
		t.Fatalf("starting the gateway: %v", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		// A test that ends at once (a skip) may shut down before Serve
		// has taken the listener; closing it ends that Serve too.
		_ = ln.Close()
		<-done
	})
	return &gw{t: t, srv: srv, url: "http://" + ln.Addr().String(), path: path}
}

// startSim runs a standalone simulator on a loopback port and returns its URL.
func startSim(t *testing.T, flags map[string]string) (string, *sim.Server) {
	t.Helper()
	m := map[string]string{"model": "sim-chat", "embed-model": "sim-embed", "profile": "fast"}
	for k, v := range flags {
		m[k] = v
	}
	o, err := sim.OptionsFromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	return "http://" + ln.Addr().String(), s
}

// post sends a JSON body and returns status, headers and body.
func post(t *testing.T, url, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// simConfig is a gateway config with an embedded fast simulator.
func simConfig(extra string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - name: sim
    kind: sim
    sim: {model: sim-chat, embed-model: sim-embed, profile: fast, itl: 1ms}
models:
  - name: sim-chat
    targets: [{backend: sim}]
  - name: sim-embed
    targets: [{backend: sim}]
%s`, extra)
}
