package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"switchyard/policy"
)

// runPolicy is `switchyard policy test [DIR]`: the Rego tests of a policy
// directory (default policy/rego), run the way the guard stage runs them
// before it takes a policy set.
func runPolicy(args []string) error {
	if len(args) == 0 || args[0] != "test" {
		return errors.New("usage: switchyard policy test [-v] [DIR]")
	}
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	verbose := fs.Bool("v", false, "list every test, not only the failures")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir := "policy/rego"
	if fs.NArg() > 0 {
		dir = fs.Arg(0)
	}
	return policyTest(os.Stdout, dir, *verbose)
}

func policyTest(w io.Writer, dir string, verbose bool) error {
	results, err := policy.Test(context.Background(), dir, nil)
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		switch {
		case r.Err != nil:
			failed++
			fmt.Fprintf(w, "ERROR %s (%s:%d): %v\n", r.Name, r.File, r.Line, r.Err)
		case r.Fail:
			failed++
			fmt.Fprintf(w, "FAIL  %s (%s:%d)\n", r.Name, r.File, r.Line)
		case verbose:
			fmt.Fprintf(w, "PASS  %s (%s:%d) %v\n", r.Name, r.File, r.Line, r.Duration)
		}
	}
	fmt.Fprintf(w, "%s: %d tests, %d passed, %d failed\n", dir, len(results), len(results)-failed, failed)
	if len(results) == 0 {
		return fmt.Errorf("%s has no Rego tests", dir)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d tests failed", failed, len(results))
	}
	return nil
}
