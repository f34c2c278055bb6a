package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/internal/respool"
)

// logBuf collects a generation's log, for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// harness builds generations of test configs on one resource pool, as a
// server's reloads do, and closes them with the test.
type harness struct {
	t    *testing.T
	pool *respool.Pool
	log  *logBuf
	dir  string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, pool: respool.New(), log: &logBuf{}, dir: t.TempDir()}
	t.Cleanup(func() {
		if n := h.pool.Len(); n != 0 {
			t.Errorf("%d resources left in the pool after every generation closed", n)
		}
	})
	return h
}

// build builds a generation of a config holding tools (YAML of the
// tools.mcp list, indented as its items); live false builds it as
// `switchyard validate` does.
func (h *harness) build(servers string, live bool) (*gateway.Generation, *Registry) {
	h.t.Helper()
	path := filepath.Join(h.dir, "switchyard.yaml")
	cfg, err := config.Parse([]byte("tools:\n  mcp:\n"+servers), path)
	if err != nil {
		h.t.Fatalf("config:\n%s\n%v", servers, err)
	}
	reg := gateway.NewRegistry()
	Register(reg)
	g, err := gateway.Build(cfg, gateway.BuildOptions{Registry: reg, Resources: h.pool, StartSims: live,
		Log: slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		h.t.Fatalf("build: %v", err)
	}
	var once sync.Once
	h.t.Cleanup(func() { once.Do(g.Close) })
	r, _ := g.Service(ServiceName).(*Registry)
	if r == nil {
		h.t.Fatal("no registry in the generation")
	}
	return g, r
}

// httpEntry is a tools.mcp item for an HTTP server.
func httpEntry(name, url, extra string) string {
	return fmt.Sprintf("    - name: %s\n      url: %s\n%s", name, url, extra)
}

// stdioEntry is a tools.mcp item that runs the test binary as a stdio
// server.
func stdioEntry(t *testing.T, name, extra string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("    - name: %s\n      command: %s\n      env: {AGENT_TEST_MCP: stdio}\n%s", name, exe, extra)
}

// eventually polls cond until it holds or 10s passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func names(s *ToolSet) []string {
	var n []string
	for _, t := range s.Tools {
		n = append(n, t.Name)
	}
	return n
}

func status(r *Registry, name string) ServerStatus {
	for _, s := range r.Servers() {
		if s.Name == name {
			return s
		}
	}
	return ServerStatus{}
}

// TestRegistryTransports runs the same listing and calls against a
// server over streamable HTTP (both protocol eras) and over stdio.
func TestRegistryTransports(t *testing.T) {
	allow := "      allow: [echo, fail, slow, big, mixed, 'weird*', 't0?']\n      timeout: 300ms\n      max_result_size: 1KiB\n"
	for _, tc := range []struct {
		name  string
		entry func(t *testing.T) string
	}{
		{"http", func(t *testing.T) string {
			return httpEntry("srv", startHTTP(t, testServer(testServerOptions{pageSize: 2, many: 3})).url(), allow)
		}},
		{"http-legacy", func(t *testing.T) string {
			return httpEntry("srv", startHTTP(t, testServer(testServerOptions{legacy: true, pageSize: 2, many: 3})).url(), allow)
		}},
		{"stdio", func(t *testing.T) string { return stdioEntry(t, "srv", allow) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			_, r := h.build(tc.entry(t), true)
			st := status(r, "srv")
			if !st.Up {
				t.Fatalf("server not up after Open: %+v\nlog:\n%s", st, h.log)
			}
			set := r.Tools()
			want := []string{"srv__big", "srv__echo", "srv__fail", "srv__mixed", "srv__slow"}
			if tc.name != "stdio" {
				want = append(want, "srv__t01", "srv__t02", "srv__t03")
			}
			if got := names(set); !slices.Equal(got, want) {
				t.Errorf("offered tools %v, want %v (allow filters, weird.name and weird_name refused)", got, want)
			}
			if ref := strings.Join(set.Refused["srv"], "; "); !strings.Contains(ref, `"weird.name" "weird_name"`) || !strings.Contains(ref, "srv__weird_name") {
				t.Errorf("refused %q, want the collision of weird.name and weird_name", ref)
			}
			echo := set.Lookup("srv__echo")
			if echo == nil || echo.MCPName != "echo" || echo.Server != "srv" {
				t.Fatalf("lookup srv__echo: %+v", echo)
			}
			var fn struct {
				Type     string `json:"type"`
				Function struct {
					Name        string          `json:"name"`
					Description string          `json:"description"`
					Parameters  json.RawMessage `json:"parameters"`
				} `json:"function"`
			}
			if err := json.Unmarshal(echo.Function, &fn); err != nil || fn.Type != "function" || fn.Function.Name != "srv__echo" ||
				fn.Function.Description != "Echoes the text." || !strings.Contains(string(fn.Function.Parameters), `"text"`) {
				t.Errorf("function tool %s (%v)", echo.Function, err)
			}
			if d := set.Lookup("srv__slow"); d == nil || !strings.Contains(string(d.Function), `"description":"Slow"`) {
				t.Errorf("a tool without a description is described by its title: %v", d)
			}
			all := set.AppendFunctions([]byte("["), nil)
			var arr []json.RawMessage
			if err := json.Unmarshal(append(all, ']'), &arr); err != nil || len(arr) != len(want) {
				t.Errorf("AppendFunctions: %d tools (%v): %s", len(arr), err, all)
			}
			if got := string(set.AppendFunctions(nil, func(t *Tool) bool { return t.MCPName == "echo" })); got != string(echo.Function) {
				t.Errorf("AppendFunctions(echo only) = %s", got)
			}

			ctx := context.Background()
			for _, c := range []struct {
				name, tool, args string
				want             string // the result's text, or the error's substring
				isError          bool
				kind             error
				truncated        bool
			}{
				{"result", "srv__echo", `{"text":"hello"}`, "hello", false, nil, false},
				{"is error", "srv__fail", `{"text":"why"}`, "failed: why", true, nil, false},
				{"empty arguments", "srv__mixed", "", "a chart\n\n[image: image/png, 100 bytes]\n\n[resource link: file:///r.txt, \"r\", text/plain]", false, nil, false},
				{"not an object", "srv__echo", `["hello"]`, "arguments must be a JSON object, got an array", false, ErrBadArguments, false},
				{"not JSON", "srv__echo", `{"text":`, "arguments are not valid JSON", false, ErrBadArguments, false},
				{"unknown tool", "srv__nope", `{}`, `no tool is named "srv__nope"`, false, ErrUnknownTool, false},
				{"not allowed", "srv__add_tool", `{}`, `no tool is named "srv__add_tool"`, false, ErrUnknownTool, false},
				{"timeout", "srv__slow", `{"ms":5000}`, "server srv did not answer within 300ms", false, ErrTimeout, false},
				{"oversized", "srv__big", `{"n":5000}`, "[truncated: the tool's result was 5000 bytes; the first ", false, nil, true},
				{"after a timeout", "srv__echo", `{"text":"still here"}`, "still here", false, nil, false},
			} {
				t.Run(c.name, func(t *testing.T) {
					res, err := r.Call(ctx, c.tool, []byte(c.args))
					if c.kind != nil {
						var ce *CallError
						if !errors.Is(err, c.kind) || !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
							t.Fatalf("Call(%s, %s) = %+v, %v; want a %v error with %q", c.tool, c.args, res, err, c.kind, c.want)
						}
						if !strings.HasPrefix(err.Error(), "tool "+c.tool+": ") {
							t.Errorf("error %q does not name the tool first", err)
						}
						return
					}
					if err != nil {
						t.Fatalf("Call(%s, %s): %v", c.tool, c.args, err)
					}
					if res.IsError != c.isError || res.Truncated != c.truncated {
						t.Errorf("isError %v truncated %v, want %v %v", res.IsError, res.Truncated, c.isError, c.truncated)
					}
					if c.truncated {
						if !strings.Contains(res.Text, c.want) || len(res.Text) > 1024 || res.Size != 5000 {
							t.Errorf("truncated result: %d bytes (size %d), ends %q", len(res.Text), res.Size, res.Text[max(0, len(res.Text)-100):])
						}
						return
					}
					if res.Text != c.want {
						t.Errorf("text %q, want %q", res.Text, c.want)
					}
				})
			}
			if tc.name == "stdio" && !strings.Contains(h.log.String(), "line=\"test server starting\"") {
				t.Errorf("the stdio server's stderr is not in the log:\n%s", h.log)
			}
		})
	}
}

// TestListChanged: a tool the server adds is offered once its
// notification arrives, over HTTP (both protocol eras) and stdio.
func TestListChanged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry func(t *testing.T) string
	}{
		{"http", func(t *testing.T) string {
			return httpEntry("srv", startHTTP(t, testServer(testServerOptions{})).url(), "")
		}},
		{"http-legacy", func(t *testing.T) string {
			return httpEntry("srv", startHTTP(t, testServer(testServerOptions{legacy: true})).url(), "")
		}},
		{"stdio", func(t *testing.T) string { return stdioEntry(t, "srv", "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			_, r := h.build(tc.entry(t), true)
			before := r.Tools()
			if before.Lookup("srv__late") != nil {
				t.Fatal("late is there before it was added")
			}
			// A notification sent as a session starts can be lost (over
			// HTTP, before the client's SSE stream is there): the server
			// replaces the tool, notifying again, until it is seen.
			defer func() {
				if t.Failed() {
					t.Log(h.log)
				}
			}()
			eventually(t, "the tool added to be listed", func() bool {
				if r.Tools().Lookup("srv__late") != nil {
					return true
				}
				if res, err := r.Call(context.Background(), "srv__add_tool", nil); err != nil || res.Text != "added" {
					t.Fatalf("add_tool: %+v %v", res, err)
				}
				time.Sleep(200 * time.Millisecond)
				return false
			})
			if r.Tools() == before {
				t.Error("the tool set did not change")
			}
			if res, err := r.Call(context.Background(), "srv__late", nil); err != nil || res.Text != "late" {
				t.Errorf("late: %+v %v", res, err)
			}
			if s := r.Tools(); r.Tools() != s {
				t.Error("an unchanged registry returns a new tool set")
			}
		})
	}
}

// TestServerDown: a server that is not there is unavailable with a clear
// error, comes up and is connected; drops and is reconnected.
func TestServerDown(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			h := newHarness(t)
			addr := reservePort(t)
			_, r := h.build(httpEntry("srv", "http://"+addr+"/mcp", ""), true)
			st := status(r, "srv")
			if st.Up || !strings.Contains(st.Error, "connection refused") {
				t.Fatalf("status of a server not listening: %+v", st)
			}
			if len(r.Tools().Tools) != 0 {
				t.Errorf("tools of a server never reached: %v", names(r.Tools()))
			}
			_, err := r.Call(context.Background(), "srv__echo", []byte(`{"text":"x"}`))
			if !errors.Is(err, ErrUnknownTool) {
				t.Errorf("a tool never listed: %v, want unknown", err)
			}

			srv := startHTTPAt(t, testServer(testServerOptions{legacy: legacy}), addr)
			eventually(t, "the server to be connected", func() bool { return status(r, "srv").Up })
			if res, err := r.Call(context.Background(), "srv__echo", []byte(`{"text":"up"}`)); err != nil || res.Text != "up" {
				t.Fatalf("call after coming up: %+v %v", res, err)
			}

			srv.stop()
			eventually(t, "the drop to be noticed", func() bool { return !status(r, "srv").Up })
			set := r.Tools()
			if len(set.Tools) != 0 || set.Lookup("srv__echo") == nil || set.Lookup("srv__echo").Offered() {
				t.Errorf("while down: offered %v; echo known but not offered: %+v", names(set), set.Lookup("srv__echo"))
			}
			_, err = r.Call(context.Background(), "srv__echo", []byte(`{"text":"x"}`))
			var ce *CallError
			if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ce) || ce.Reason() != "unavailable" || !strings.Contains(err.Error(), "server srv is unavailable since") {
				t.Errorf("call while down: %v", err)
			}

			srv.start()
			eventually(t, "the server to be reconnected", func() bool { return status(r, "srv").Up })
			if res, err := r.Call(context.Background(), "srv__echo", []byte(`{"text":"back"}`)); err != nil || res.Text != "back" {
				t.Errorf("call after reconnecting: %+v %v", res, err)
			}
		})
	}
}

// TestStdioRestart: a stdio server whose process exits is started again.
func TestStdioRestart(t *testing.T) {
	h := newHarness(t)
	_, r := h.build(stdioEntry(t, "srv", ""), true)
	pid := status(r, "srv").PID
	if pid == 0 {
		t.Fatalf("no pid: %+v", status(r, "srv"))
	}
	_, err := r.Call(context.Background(), "srv__crash", nil)
	if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrFailed) {
		t.Errorf("a call whose server exited: %v", err)
	}
	eventually(t, "a new process", func() bool {
		st := status(r, "srv")
		return st.Up && st.PID != pid
	})
	if !gone(pid) {
		t.Errorf("the exited process %d was not reaped", pid)
	}
	if res, err := r.Call(context.Background(), "srv__echo", []byte(`{"text":"again"}`)); err != nil || res.Text != "again" {
		t.Errorf("after the restart: %+v %v", res, err)
	}
}

// gone says whether no process pid exists (it exited and was reaped).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// TestReload: a config that keeps a server keeps its session (the same
// connection, the same process), with new allow and timeout at once; a
// changed server reconnects; closing every generation stops everything.
func TestReload(t *testing.T) {
	h := newHarness(t)
	srv := startHTTP(t, testServer(testServerOptions{}))
	entries := func(allow, header string) string {
		return httpEntry("web", srv.url(), "      allow: ["+allow+"]\n      headers: {X-Test: "+header+"}\n") +
			stdioEntry(t, "local", "      allow: ["+allow+"]\n")
	}
	g1, r1 := h.build(entries("echo", "one"), true)
	pid := status(r1, "local").PID
	g2, r2 := h.build(entries("'*'", "one"), true)
	if r1.byName["web"].conn != r2.byName["web"].conn || r1.byName["local"].conn != r2.byName["local"].conn {
		t.Error("an unchanged server got a new connection")
	}
	if p := status(r2, "local").PID; p != pid {
		t.Errorf("the stdio server was restarted: pid %d then %d", pid, p)
	}
	if got := names(r1.Tools()); !slices.Equal(got, []string{"local__echo", "web__echo"}) {
		t.Errorf("generation 1 offers %v", got)
	}
	if r2.Tools().Lookup("web__headers") == nil {
		t.Errorf("generation 2's allow did not apply: %v", names(r2.Tools()))
	}
	if res, err := r2.Call(context.Background(), "web__headers", nil); err != nil || res.Text != "x-test=one" {
		t.Errorf("headers: %+v %v", res, err)
	}
	g1.Close()
	g3, r3 := h.build(entries("'*'", "two"), true)
	if r3.byName["web"].conn == r2.byName["web"].conn {
		t.Error("a server with new headers kept its connection")
	}
	if r3.byName["local"].conn != r2.byName["local"].conn {
		t.Error("the unchanged stdio server got a new connection")
	}
	if res, err := r3.Call(context.Background(), "web__headers", nil); err != nil || res.Text != "x-test=two" {
		t.Errorf("headers after the change: %+v %v", res, err)
	}
	old := r2.byName["web"].conn
	g2.Close()
	select {
	case <-old.done:
	default:
		t.Error("the replaced connection still runs after its last generation closed")
	}
	g3.Close()
	if !gone(pid) {
		t.Errorf("the stdio server %d outlived every generation", pid)
	}
	if h.pool.Len() != 0 {
		t.Errorf("%d resources left", h.pool.Len())
	}
}

// TestValidateConnectsNowhere: a generation built for validation has no
// tools and starts nothing.
func TestValidateConnectsNowhere(t *testing.T) {
	h := newHarness(t)
	_, r := h.build(stdioEntry(t, "local", "")+httpEntry("web", "http://127.0.0.1:1/mcp", ""), false)
	for _, s := range r.servers {
		if s.conn != nil {
			t.Errorf("validation connected %s", s.name)
		}
	}
	if len(r.Tools().Tools) != 0 {
		t.Errorf("tools while validating: %v", names(r.Tools()))
	}
	st := r.Servers()
	if len(st) != 2 || st[0].Up || !strings.Contains(st[0].Error, "only being validated") || st[1].Transport != "http" {
		t.Errorf("status while validating: %+v", st)
	}
}

// TestCallCanceled: a call whose context ends is canceled, not timed out.
func TestCallCanceled(t *testing.T) {
	h := newHarness(t)
	_, r := h.build(httpEntry("srv", startHTTP(t, testServer(testServerOptions{})).url(), ""), true)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := r.Call(ctx, "srv__slow", []byte(`{"ms":5000}`))
	if !errors.Is(err, ErrCanceled) {
		t.Errorf("canceled call: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Call(ctx, "srv__slow", []byte(`{"ms":5000}`)); !errors.Is(err, ErrTimeout) {
		t.Errorf("a call past its context's deadline: %v", err)
	}
}

// TestMetrics: calls are counted by server, tool and result; the
// server's up gauge follows it.
func TestMetrics(t *testing.T) {
	h := newHarness(t)
	srv := startHTTP(t, testServer(testServerOptions{}))
	_, r := h.build(httpEntry("srv", srv.url(), ""), true)
	for _, c := range [][2]string{{"srv__echo", `{"text":"a"}`}, {"srv__echo", `{"text":""}`}, {"srv__fail", `{"text":"x"}`}, {"srv__echo", `[]`}, {"nope", ``}} {
		_, _ = r.Call(context.Background(), c[0], []byte(c[1]))
	}
	tool := r.Tools().Lookup("srv__echo")
	if got := tool.calls[resOK].Load().Get(); got != 2 {
		t.Errorf("ok calls of echo: %d", got)
	}
	if got := tool.calls[resBadArguments].Load().Get(); got != 1 {
		t.Errorf("bad_arguments calls of echo: %d", got)
	}
	if got := r.Tools().Lookup("srv__fail").calls[resToolError].Load().Get(); got != 1 {
		t.Errorf("tool_error calls of fail: %d", got)
	}
	if got := r.unknown.Get(); got != 1 {
		t.Errorf("unknown tool calls: %d", got)
	}
	g := r.byName["srv"].conn.gauges.Load()
	if g.up.Get() != 1 || g.tools.Get() < 5 || g.connects.Get() != 1 {
		t.Errorf("gauges: up %v tools %v connects %v", g.up.Get(), g.tools.Get(), g.connects.Get())
	}
	srv.stop()
	eventually(t, "the up gauge to drop", func() bool { return g.up.Get() == 0 })
}
