package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"switchyard/plugins/agent"
)

// runMCPDemo serves the demo MCP server (agent.DemoServer: get_weather,
// add, lookup_order) over streamable HTTP at --listen, or over stdin and
// stdout with --stdio, until SIGINT or SIGTERM (or, for stdio, the end of
// stdin).
func runMCPDemo(args []string) error {
	fs := flag.NewFlagSet("switchyard mcp-demo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8931", "serve streamable HTTP on this address (HOST:PORT)")
	path := fs.String("path", "/mcp", "the MCP endpoint's path")
	stdio := fs.Bool("stdio", false, "serve over stdin and stdout instead (for tools.mcp[].command)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: switchyard mcp-demo [--listen HOST:PORT] [--path /mcp] | --stdio\n\n"+
			"Serves an MCP server with harmless, deterministic demo tools: get_weather {city},\n"+
			"add {a, b} and lookup_order {order_id}.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv := agent.DemoServer()
	if *stdio {
		// stdout carries the protocol: nothing else may be written there.
		err := srv.Run(ctx, &mcp.StdioTransport{})
		if err != nil && ctx.Err() == nil && !errors.Is(err, mcp.ErrConnectionClosed) {
			return err
		}
		return nil
	}
	if len(*path) == 0 || (*path)[0] != '/' {
		return fmt.Errorf("--path %q: must start with /", *path)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle(*path, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("switchyard mcp-demo: serving MCP (streamable HTTP) on http://%s%s", ln.Addr(), *path)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
		log.Printf("switchyard mcp-demo: stopping")
		_ = hs.Close() // open sessions' SSE streams would hold a graceful Shutdown up
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	}
}
