// Command switchyard is the Switchyard inference gateway: one binary with the
// gateway (serve, validate), the GPU-server simulator (sim), the load
// generator (load), policy tests, and retrieval's ingestion and
// evaluation (ingest, eval retrieval). It only parses flags and wires packages together.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `switchyard: a high-performance OpenAI-compatible inference gateway

Usage:
  switchyard serve    --config FILE [--listen HOST:PORT] [--admin-listen HOST:PORT]
  switchyard validate --config FILE
  switchyard sim      --listen HOST:PORT --model NAME [flags]
  switchyard load     --url URL --model NAME [flags]
  switchyard policy test [-v] [DIR]     (the Rego tests of a policy directory; default policy/rego)
  switchyard ingest   --config FILE --collection NAME [flags] PATH...
  switchyard eval retrieval --config FILE --collection NAME --dataset DIR|FILE [flags]
  switchyard mcp-demo [--listen HOST:PORT | --stdio]  (a demo MCP server: get_weather, add, lookup_order)
  switchyard version

Run "switchyard COMMAND -h" for the flags of one command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = runServe(args)
	case "validate":
		err = runValidate(args)
	case "sim":
		err = runSim(args)
	case "load":
		err = runLoad(args)
	case "policy":
		err = runPolicy(args)
	case "ingest":
		err = runIngest(args)
	case "eval":
		err = runEval(args)
	case "mcp-demo":
		err = runMCPDemo(args)
	case "version", "--version", "-version":
		fmt.Println("switchyard", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "switchyard: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "switchyard %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
