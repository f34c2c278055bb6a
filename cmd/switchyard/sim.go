package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"switchyard/backends/sim"
)

// runSim runs the GPU model server simulator: one simulated server per
// --listen address, until SIGINT or SIGTERM.
func runSim(args []string) error {
	o, err := sim.ParseArgs("switchyard sim", args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var servers []*sim.Server
	closeAll := func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}
	errc := make(chan error, len(o.Listen))
	for _, so := range o.PerServer() {
		s, err := sim.New(so)
		if err != nil {
			closeAll()
			return err
		}
		ln, err := net.Listen("tcp", so.Listen[0])
		if err != nil {
			_ = s.Close()
			closeAll()
			return fmt.Errorf("listening on %s: %w", so.Listen[0], err)
		}
		servers = append(servers, s)
		if so.ClassifierModel != "" {
			log.Printf("switchyard sim: serving %v and the KServe v2 model %s on http://%s (profile %s, speed %g)", s.Models(), so.ClassifierModel, ln.Addr(), so.Profile, so.Speed[0])
		} else {
			log.Printf("switchyard sim: serving %v on http://%s (profile %s, speed %g)", s.Models(), ln.Addr(), so.Profile, so.Speed[0])
		}
		go func() { errc <- s.Serve(ln) }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case s := <-sig:
		log.Printf("switchyard sim: %v: stopping", s)
		closeAll()
		return nil
	case err := <-errc:
		closeAll()
		if err != nil {
			return fmt.Errorf("serving: %w", err)
		}
		return nil
	}
}
