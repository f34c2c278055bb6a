package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the switchyard binary: with SWITCHYARD_TEST_MAIN
// set it runs main() with the given arguments.
func TestMain(m *testing.M) {
	if os.Getenv("SWITCHYARD_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func command(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), "SWITCHYARD_TEST_MAIN=1")
	return cmd
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..")
}

func TestValidateExampleConfigs(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "configs", "*.yaml"))
	if len(files) < 2 {
		t.Fatalf("found %d example configs", len(files))
	}
	for _, f := range files {
		out, err := command(t, context.Background(), "validate", "--config", f).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": ok (") {
			t.Errorf("validate %s: %v\n%s", f, err, out)
		}
	}
}

func TestValidateReportsEveryErrorWithLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(`listen: 127.0.0.1:8080
backends:
  - name: a
    url: http://127.0.0.1:9000
    timeouts: {connect: soon}
models:
  - name: m
    targets: [{backend: nope}]
routes:
  - name: r
    chain: [{defaults: {max_tokenz: 3}}]
    to: missing
`), 0o600)
	out, err := command(t, context.Background(), "validate", "--config", path).CombinedOutput()
	if err == nil {
		t.Fatalf("a bad config validated:\n%s", out)
	}
	for _, want := range []string{"bad.yaml:5:", "bad.yaml:8:", "bad.yaml:12:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Stage options are checked too, once the rest is valid.
	os.WriteFile(path, []byte(`backends: [{name: a, url: "http://127.0.0.1:9000"}]
models: [{name: m, targets: [{backend: a}]}]
routes:
  - name: r
    chain:
      - defaults: {max_tokenz: 3}
      - nosuchstage
      - headers: {upstream: {set: {host: x}}}
`), 0o600)
	out, err = command(t, context.Background(), "validate", "--config", path).CombinedOutput()
	for _, want := range []string{"bad.yaml:6:", "max_tokenz", "bad.yaml:7:", `unknown stage kind "nosuchstage"`, "bad.yaml:8:", "managed by the gateway"} {
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("stage errors lack %q: %v\n%s", want, err, out)
		}
	}
}

// TestServeReloadAndStop runs `switchyard serve` on a config with an
// embedded simulator, reloads it with SIGHUP, and stops it with SIGTERM.
func TestServeReloadAndStop(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	path := filepath.Join(t.TempDir(), "serve.yaml")
	cfg := `
listen: ` + addr + `
server: {watch_interval: 0s}
backends: [{name: sim, kind: sim, sim: {model: sim-chat, profile: fast}}]
models: [{name: MODEL, targets: [{backend: sim, model: sim-chat}]}]
`
	os.WriteFile(path, []byte(strings.Replace(cfg, "MODEL", "before", 1)), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := command(t, ctx, "serve", "--config", path)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	models := func() string {
		resp, err := http.Get(base + "/v1/models")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; logs:\n%s", what, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("the gateway to serve", func() bool { return strings.Contains(models(), `"before"`) })

	resp, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"before","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var done bool
	for sc.Scan() {
		done = done || sc.Text() == "data: [DONE]"
	}
	resp.Body.Close()
	if !done {
		t.Errorf("stream through the served gateway did not end with [DONE]")
	}

	os.WriteFile(path, []byte(strings.Replace(cfg, "MODEL", "after", 1)), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	wait("SIGHUP to reload the config", func() bool { return strings.Contains(models(), `"after"`) })

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v; logs:\n%s", err, logs.String())
	}
	for _, want := range []string{`"msg":"switchyard listening"`, `"msg":"config reloaded"`, `"msg":"stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("JSON logs lack %s:\n%s", want, logs.String())
		}
	}
}

func TestPolicyTest(t *testing.T) {
	var b strings.Builder
	if err := policyTest(&b, filepath.Join(repoRoot(t), "plugins", "guard", "testdata", "rego"), true); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if !strings.Contains(b.String(), "3 tests, 3 passed, 0 failed") || !strings.Contains(b.String(), "PASS  data.switchyard_test.test_secret_denied") {
		t.Errorf("output:\n%s", b.String())
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package p\n\nx := 1\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "p_test.rego"), []byte("package p_test\n\nimport data.p\n\ntest_two if { p.x == 2 }\n"), 0o600)
	b.Reset()
	if err := policyTest(&b, dir, false); err == nil || !strings.Contains(b.String(), "FAIL  data.p_test.test_two (") || !strings.Contains(b.String(), "p_test.rego:5") {
		t.Errorf("a failing test: %v\n%s", err, b.String())
	}
}
