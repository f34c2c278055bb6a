package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"switchyard/internal/leaktest"
)

// The test binary doubles as a stdio MCP server: with AGENT_TEST_MCP set
// it serves testServer on stdin and stdout (as a tools.mcp command).
func TestMain(m *testing.M) {
	if os.Getenv("AGENT_TEST_MCP") == "stdio" {
		fmt.Fprintln(os.Stderr, "test server starting")
		err := testServer(testServerOptions{}).Run(context.Background(), &mcp.StdioTransport{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "test server:", err)
		}
		os.Exit(0)
	}
	// Short pauses, so that reconnecting and health checks happen within
	// a test's time.
	defaultTiming = timing{
		backoffMin:  20 * time.Millisecond,
		backoffMax:  200 * time.Millisecond,
		connect:     5 * time.Second,
		ping:        100 * time.Millisecond,
		pingTimeout: 500 * time.Millisecond,
		relist:      time.Minute, // longer than a test: a change is seen by its notification
		startWait:   5 * time.Second,
		terminate:   time.Second,
	}
	goleak.VerifyTestMain(m, leaktest.Options()...)
}

// testServerOptions shape a test MCP server.
type testServerOptions struct {
	legacy   bool // only protocol 2025-11-25: sessions and the standalone SSE stream
	pageSize int  // tools per tools/list page (0: the SDK's default)
	many     int  // extra tools "t01".."tNN", to page through
}

type textIn struct {
	Text string `json:"text"`
}

type slowIn struct {
	MS int `json:"ms"`
}

type bigIn struct {
	N int `json:"n"`
}

// testServer is the MCP server of the tests. Its tools:
//
//	echo {text}    the text back
//	fail {text}    an isError result with the text
//	slow {ms}      answers after ms milliseconds (or when cancelled)
//	big {n}        n bytes of text ("é" and "x")
//	mixed          text, an image and a resource link
//	add_tool       adds the tool "late" (a tools/list_changed)
//	crash          exits the process (stdio)
//	weird.name     a name that needs mapping
//	weird_name     collides with weird.name once mapped
//	headers        the request's X-Test header (HTTP)
func testServer(o testServerOptions) *mcp.Server {
	so := &mcp.ServerOptions{PageSize: o.pageSize}
	if os.Getenv("AGENT_DEBUG") != "" {
		so.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.legacy {
		so.SupportedProtocolVersions = []string{"2025-11-25"}
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, so)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echoes the text."}, func(_ context.Context, _ *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		return textResult(in.Text), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "fail", Description: "Fails."}, func(_ context.Context, _ *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		return errorResult("failed: " + in.Text), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "slow", Title: "Slow"}, func(ctx context.Context, _ *mcp.CallToolRequest, in slowIn) (*mcp.CallToolResult, any, error) {
		t := time.NewTimer(time.Duration(in.MS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			return textResult("slept"), nil, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	})
	mcp.AddTool(s, &mcp.Tool{Name: "big"}, func(_ context.Context, _ *mcp.CallToolRequest, in bigIn) (*mcp.CallToolResult, any, error) {
		var b strings.Builder
		for b.Len() < in.N {
			b.WriteString("é")
			b.WriteString("x")
		}
		return textResult(b.String()[:in.N]), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "mixed"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{
			&mcp.TextContent{Text: "a chart"},
			&mcp.ImageContent{MIMEType: "image/png", Data: make([]byte, 100)},
			&mcp.ResourceLink{URI: "file:///r.txt", Name: "r", MIMEType: "text/plain"},
		}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "add_tool"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		mcp.AddTool(s, &mcp.Tool{Name: "late", Description: "Added later."}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return textResult("late"), nil, nil
		})
		return textResult("added"), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "crash"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		os.Exit(3)
		return nil, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "weird.name"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return textResult("dot"), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "weird_name"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return textResult("underscore"), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "headers"}, func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		h := ""
		if req.Extra != nil && req.Extra.Header != nil {
			h = req.Extra.Header.Get("X-Test")
		}
		return textResult("x-test=" + h), nil, nil
	})
	for i := 1; i <= o.many; i++ {
		mcp.AddTool(s, &mcp.Tool{Name: fmt.Sprintf("t%02d", i)}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return textResult("t"), nil, nil
		})
	}
	return s
}

// httpServer is a test MCP server on 127.0.0.1 that can be stopped and
// started again on the same port.
type httpServer struct {
	t    *testing.T
	srv  *mcp.Server
	addr string

	mu   sync.Mutex
	hs   *http.Server
	done chan struct{}
}

// startHTTP serves srv on a free loopback port until the test ends.
func startHTTP(t *testing.T, srv *mcp.Server) *httpServer {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &httpServer{t: t, srv: srv, addr: ln.Addr().String()}
	h.serve(ln)
	t.Cleanup(h.stop)
	return h
}

// reservePort returns a loopback address with nothing listening (yet).
func reservePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startHTTPAt serves srv at addr (once it is free) until the test ends.
func startHTTPAt(t *testing.T, srv *mcp.Server, addr string) *httpServer {
	t.Helper()
	h := &httpServer{t: t, srv: srv, addr: addr}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *httpServer) url() string { return "http://" + h.addr + "/mcp" }

func (h *httpServer) start() {
	h.t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp4", h.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	h.serve(ln)
}

func (h *httpServer) serve(ln net.Listener) {
	h.mu.Lock()
	defer h.mu.Unlock()
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return h.srv }, nil))
	h.hs = &http.Server{Handler: mux}
	h.done = make(chan struct{})
	hs, done := h.hs, h.done
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
}

// stop closes the listener and every connection, and the sessions.
func (h *httpServer) stop() {
	h.mu.Lock()
	hs, done := h.hs, h.done
	h.hs = nil
	h.mu.Unlock()
	if hs == nil {
		return
	}
	_ = hs.Close()
	<-done
	// Sessions whose client did not end them (the server stopped under
	// it) are the server's to close.
	for ss := range h.srv.Sessions() {
		_ = ss.Close()
	}
}
