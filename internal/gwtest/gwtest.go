// Package gwtest runs a real gateway for the tests of other packages: a
// config written to a temporary file, the built-in plugins registered, the
// API and the admin API on loopback ports, stopped with the test.
package gwtest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"switchyard/gateway"
	"switchyard/plugins"
)

// Gateway is a running gateway.
type Gateway struct {
	URL   string // the API, http://127.0.0.1:PORT
	Admin string // the admin API (answers 404 unless the config sets admin)
	Srv   *gateway.Server
	Path  string // the config file

	stop func()
}

// New checks cfg the way serve would and returns the error, for tests of
// config errors; nothing is served.
func New(t testing.TB, cfg string) (*gateway.Server, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "switchyard.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := gateway.NewRegistry()
	plugins.RegisterAll(reg)
	srv, err := gateway.New(gateway.Options{ConfigPath: path, Registry: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return srv, path, err
}

// Start serves cfg until the test ends (or Stop).
func Start(t testing.TB, cfg string) *Gateway {
	t.Helper()
	srv, path, err := New(t, cfg)
	if err != nil {
		t.Fatalf("starting the gateway: %v", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- srv.Serve(ln) }()
	go func() { done <- srv.ServeAdmin(aln) }()
	g := &Gateway{URL: "http://" + ln.Addr().String(), Admin: "http://" + aln.Addr().String(), Srv: srv, Path: path}
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			<-done
			<-done
		})
	}
	t.Cleanup(g.stop)
	return g
}

// Stop shuts the gateway down now (it is also stopped with the test).
func (g *Gateway) Stop() { g.stop() }
