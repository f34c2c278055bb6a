package main

import (
	"bytes"
	"errors"
	"flag"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"switchyard/gateway/config"
)

func TestParseRates(t *testing.T) {
	f := func(in string, want []float64, ok bool) {
		t.Helper()
		got, err := parseRates(in)
		if (err == nil) != ok || !slices.Equal(got, want) {
			t.Errorf("parseRates(%q) = %v, %v; want %v, ok %v", in, got, err, want, ok)
		}
	}
	f("500,1000,2000", []float64{500, 1000, 2000}, true)
	f(" 250 , 1e3 ,", []float64{250, 1000}, true)
	f("", nil, false)
	f("0", nil, false)
	f("-5", nil, false)
	f("fast", nil, false)
	f("NaN", nil, false)
}

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags(nil, &stderr)
	if err != nil || o.repeats != 7 || o.duration != 2*time.Second || !slices.Equal(o.rates, []float64{500, 1000, 2000}) {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"--quick", "--repeats", "2"}, &stderr)
	if err != nil || o.repeats != 2 || o.duration != time.Second || o.warmup != 300*time.Millisecond || !slices.Equal(o.rates, []float64{500, 2000}) {
		t.Errorf("quick with an explicit repeat count: %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"--repeats", "0"}, {"--rates", "x"}, {"--duration", "0s"}, {"extra"}, {"--concurrency", "0"}} {
		if _, err := parseFlags(bad, &stderr); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
	if _, err := parseFlags([]string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"--rates", "500,1000", "--out", "/tmp/a b.md", "it's", ""})
	want := `--rates 500,1000 --out '/tmp/a b.md' 'it'\''s' ''`
	if got != want {
		t.Errorf("shellQuote = %s, want %s", got, want)
	}
}

// The generated pass-through config must be one the gateway accepts.
func TestGatewayConfigValid(t *testing.T) {
	text := gatewayConfig("127.0.0.1:18080", "127.0.0.1:18000")
	cfg, err := config.Parse([]byte(text), "bench.yaml")
	if err != nil {
		t.Fatalf("gateway rejects the generated config: %v\n%s", err, text)
	}
	if cfg.Log.Level != "warn" || cfg.Log.Requests {
		t.Errorf("log settings %+v, want warn without request logs", cfg.Log)
	}
}

func TestProcStartStop(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	ps := &procs{}
	p, err := ps.start("sleeper", "", t.TempDir()+"/sleep.log", []string{sleep, "60"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.alive(); err != nil {
		t.Fatalf("alive right after start: %v", err)
	}
	ps.stopAll()
	if err := p.alive(); err == nil || !strings.Contains(err.Error(), "sleeper exited") {
		t.Errorf("after stopAll: %v", err)
	}
	p.stop() // idempotent

	// waitReady gives up as soon as the process exits.
	f, err := ps.start("false", "", t.TempDir()+"/false.log", []string{"sh", "-c", "echo boom; exit 3"})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	err = waitReady(t.Context(), f, "http://"+addr+"/")
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("waitReady on a dead process: %v", err)
	}
	ps.stopAll()
}
