package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"switchyard/gateway"
	"switchyard/gateway/config"
)

func runValidate(args []string) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (YAML) to check; required")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return errors.New("--config is required")
	}
	return validateTo(os.Stdout, *cfgPath)
}

// validateTo checks a config the way serve would load it, without listening
// or starting simulators, and prints every error or a one-line summary.
func validateTo(w io.Writer, path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(w, err)
		return fmt.Errorf("%s is not valid", path)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := gateway.Build(cfg, gateway.BuildOptions{Registry: newRegistry(), Log: quiet})
	if err != nil {
		fmt.Fprintln(w, err)
		return fmt.Errorf("%s is not valid", path)
	}
	g.Close()
	fmt.Fprintf(w, "%s: ok (%d backends, %d models, %d routes, %d keys)\n", path, len(cfg.Backends), len(cfg.Models), len(g.Router.Routes()), len(cfg.Keys))
	return nil
}
