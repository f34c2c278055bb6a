package main

import (
	"bufio"
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// callDemo lists the demo server's tools and calls each once.
func callDemo(t *testing.T, cs *mcp.ClientSession) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	if strings.Join(names, ",") != "add,get_weather,lookup_order" {
		t.Errorf("tools %v", names)
	}
	for _, c := range []struct {
		tool    string
		args    map[string]any
		want    string
		isError bool
	}{
		{"add", map[string]any{"a": 2, "b": 40}, "2 + 40 = 42", false},
		{"get_weather", map[string]any{"city": "Paris"}, "Weather in Paris: ", false},
		{"lookup_order", map[string]any{"order_id": "A-1001"}, "Order A-1001: ", false},
		{"lookup_order", map[string]any{"order_id": "no such order!"}, `no order "no such order!"`, true},
	} {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
		if err != nil {
			t.Fatalf("%s: %v", c.tool, err)
		}
		text := res.Content[0].(*mcp.TextContent).Text
		if !strings.HasPrefix(text, c.want) || res.IsError != c.isError {
			t.Errorf("%s %v: %q (isError %v)", c.tool, c.args, text, res.IsError)
		}
	}
}

func TestMCPDemoStdio(t *testing.T) {
	cmd := command(t, context.Background(), "mcp-demo", "--stdio")
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	callDemo(t, cs)
	if err := cs.Close(); err != nil {
		t.Errorf("closing (the server should exit when its stdin closes): %v", err)
	}
}

func TestMCPDemoHTTP(t *testing.T) {
	cmd := command(t, context.Background(), "mcp-demo", "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("mcp-demo exited with %v after SIGTERM", err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("mcp-demo did not stop on SIGTERM")
		}
	}()
	sc := bufio.NewScanner(stderr)
	url := ""
	for sc.Scan() {
		if _, u, ok := strings.Cut(sc.Text(), "streamable HTTP) on "); ok {
			url = u
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
		done <- cmd.Wait()
	}()
	if !strings.HasSuffix(url, "/mcp") {
		t.Fatalf("no URL in mcp-demo's log (got %q)", url)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	callDemo(t, cs)
}
