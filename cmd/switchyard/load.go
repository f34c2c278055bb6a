package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"switchyard/loadtest"
)

// runLoad runs "switchyard load": it generates load against an
// OpenAI-compatible endpoint and prints the report as a table or, with
// --json, as JSON on stdout. It fails if no request succeeded, so scripts
// notice a dead target.
func runLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	build := loadtest.RegisterFlags(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: switchyard load --url URL --model NAME [flags]\n\n"+
			"Open loop (--mode open --rate R) sends at a constant arrival rate and measures latency from\n"+
			"each request's intended send time; closed loop (--mode closed --concurrency N) runs N users.\n"+
			"Bound the run with --duration and/or --requests.\n\nFlags:\n")
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
	cfg, err := build()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Mode == loadtest.ModeClosed {
		fmt.Fprintf(os.Stderr, "switchyard load: %s, closed loop, %d users, against %s\n", cfg.Scenario, cfg.Concurrency, cfg.URL)
	} else {
		fmt.Fprintf(os.Stderr, "switchyard load: %s, open loop, %g req/s, against %s\n", cfg.Scenario, cfg.Rate, cfg.URL)
	}
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
	} else if err := rep.WriteTable(os.Stdout); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	if rep.Successes == 0 {
		return fmt.Errorf("no successful requests (%d sent; errors: %v)", rep.Requests, rep.Errors)
	}
	return nil
}
