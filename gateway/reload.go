package gateway

import (
	"bytes"
	"crypto/sha256"
	"os"
	"reflect"
	"time"

	"switchyard/gateway/config"
)

// Reload loads the config file again and swaps the new generation in. A bad
// file leaves the current generation serving. Unchanged bytes skip the swap.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.gen.Load()
	raw, err := os.ReadFile(s.opts.ConfigPath)
	if err == nil && bytes.Equal(raw, old.Config.Raw) {
		return nil
	}
	cfg, err := config.Load(s.opts.ConfigPath)
	if err != nil {
		s.metrics.reloaded(false, nil)
		s.log.Error("config reload rejected; the previous config keeps serving", "file", s.opts.ConfigPath, "error", err)
		return err
	}
	// Previous: in-flight counts, ejections and health carry over by backend name.
	g, err := Build(cfg, BuildOptions{Registry: s.opts.Registry, Log: s.log, Metrics: s.metrics, StartSims: true, Previous: old.Router})
	if err != nil {
		s.metrics.reloaded(false, nil)
		s.log.Error("config reload rejected; the previous config keeps serving", "file", s.opts.ConfigPath, "error", err)
		return err
	}
	if cfg.Listen != old.Config.Listen || cfg.Admin.Listen != old.Config.Admin.Listen || !reflect.DeepEqual(cfg.Server, old.Config.Server) {
		s.log.Warn("listen, admin.listen and server settings change only on restart", "file", s.opts.ConfigPath)
	}
	s.gen.Store(g)
	s.metrics.reloaded(true, g)
	s.log.Info("config reloaded", "file", s.opts.ConfigPath, "generation", g.ID)
	s.retire(old)
	return nil
}

// retire closes old once its last request is done (or the drain timeout passes).
func (s *Server) retire(old *Generation) {
	old.retire()
	drain := old.Config.Server.DrainTimeout.D()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(drain)
		defer t.Stop()
		select {
		case <-old.done:
		case <-t.C:
			s.log.Warn("closing a retired config generation with requests still in flight", "generation", old.ID, "inflight", old.inflight.Load())
		case <-s.ctx.Done():
			// Shutdown: the server's own drain decides; wait for the requests.
			select {
			case <-old.done:
			case <-t.C:
			}
		}
		old.Close()
	}()
}

// watch polls the config file and reloads it when its bytes change.
func (s *Server) watch(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	var lastSum [32]byte
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		raw, err := os.ReadFile(s.opts.ConfigPath)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(raw)
		if sum == lastSum {
			continue
		}
		lastSum = sum
		_ = s.Reload()
	}
}
