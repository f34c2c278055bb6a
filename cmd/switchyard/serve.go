package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"switchyard/gateway"
	"switchyard/gateway/config"
	"switchyard/plugins"
)

func newRegistry() *gateway.Registry {
	reg := gateway.NewRegistry()
	plugins.RegisterAll(reg)
	return reg
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (YAML); required")
	listen := fs.String("listen", "", "address for the OpenAI API, HOST:PORT (overrides the config's listen)")
	adminListen := fs.String("admin-listen", "", "address for the admin API (overrides the config's admin.listen)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return errors.New("--config is required")
	}
	// Read the log level before anything else logs.
	level := "info"
	if cfg, err := config.Load(*cfgPath); err == nil {
		level = cfg.Log.Level
	}
	log := newLogger(level)
	slog.SetDefault(log)

	srv, err := gateway.New(gateway.Options{ConfigPath: *cfgPath, Listen: *listen, AdminListen: *adminListen, Registry: newRegistry(), Log: log, Version: version})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", srv.ListenAddr())
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return fmt.Errorf("listening on %s: %w", srv.ListenAddr(), err)
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if a := srv.AdminAddr(); a != "" {
		if adm := srv.Current().Config.Admin; adm.Token.Value() == "" && !adm.Insecure {
			_ = srv.Shutdown(context.Background())
			return fmt.Errorf("the admin API on %s needs admin.token in the config (or admin.insecure: true)", a)
		}
		aln, err := net.Listen("tcp", a)
		if err != nil {
			_ = srv.Shutdown(context.Background())
			return fmt.Errorf("listening on admin address %s: %w", a, err)
		}
		go func() { errc <- srv.ServeAdmin(aln) }()
		log.Info("admin API listening", "addr", aln.Addr().String())
	}
	log.Info("switchyard listening", "addr", ln.Addr().String(), "config", *cfgPath, "version", version)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-errc:
			_ = srv.Shutdown(context.Background())
			return fmt.Errorf("serving: %w", err)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				log.Info("SIGHUP: reloading config", "file", *cfgPath)
				_ = srv.Reload() // a bad file is logged and the old config stays
				continue
			}
			drain := srv.Current().Config.Server.DrainTimeout.D()
			log.Info("shutting down: draining requests in flight", "signal", sig.String(), "drain_timeout", drain.String())
			ctx, cancel := context.WithTimeout(context.Background(), drain)
			err := srv.Shutdown(ctx)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("shutting down: %w", err)
			}
			log.Info("stopped")
			return nil
		}
	}
}
